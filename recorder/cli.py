"""The `recorder` command line. User errors print one line and exit with status 2.

Each subcommand has one home: its `add_*` function beside its `cmd_*` handler (in
`cli_daemon`, `cli_recordings`, `cli_setup`, or its tool's module), paired in `SUBCOMMANDS`;
the flags several share are in `cli_args`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import recorder.tools.events as events_tool
import recorder.tools.transcribe as transcribe_tool
from recorder import __version__, cli_daemon, cli_recordings, cli_setup
from recorder.cli_args import Handler, Parser, stderr_is_journal
from recorder.cli_args import load_config as load_config
from recorder.errors import RecorderError
from recorder.tools import calibrate, enroll, export, score, train_verifier, tune


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="recorder", description="Wake-word gated, on-device voice recorder.")
    parser.add_argument("--version", action="version", version=f"recorder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add, _ in SUBCOMMANDS:
        add(sub)
    return parser


SUBCOMMANDS: list[tuple[Callable[[Any], None], dict[str, Handler]]] = [
    (cli_daemon.add_run, {"run": cli_daemon.cmd_run}),
    (cli_daemon.add_monitor, {"monitor": cli_daemon.cmd_monitor}),
    (cli_daemon.add_mute, {"mute": cli_daemon.cmd_mute, "unmute": cli_daemon.cmd_mute}),
    (cli_daemon.add_status, {"status": cli_daemon.cmd_status}),
    (cli_recordings.add_delete, {"delete": cli_recordings.cmd_delete}),
    (cli_recordings.add_prune, {"prune": cli_recordings.cmd_prune}),
    (cli_recordings.add_audit, {"audit": cli_recordings.cmd_audit}),
    (cli_recordings.add_list, {"list": cli_recordings.cmd_list}),
    (cli_setup.add_devices, {"devices": cli_setup.cmd_devices}),
    (cli_setup.add_doctor, {"doctor": cli_setup.cmd_doctor}),
    (cli_setup.add_config_command, {"config": cli_setup.cmd_config}),
    (cli_setup.add_models, {"models": cli_setup.cmd_models}),
    (cli_recordings.add_export, {"keygen": export.cmd_keygen, "export": cli_recordings.cmd_export}),
    (score.add_parser, {"score": score.cmd_score}),
    (events_tool.add_parser, {"events": events_tool.cmd_events}),
    (transcribe_tool.add_parser, {"transcribe": transcribe_tool.cmd_transcribe}),
    (tune.add_parser, {"tune": tune.cmd_tune}),
    (calibrate.add_parser, {"calibrate": calibrate.cmd_calibrate}),
    (enroll.add_parser, {"enroll": enroll.cmd_enroll}),
    (train_verifier.add_parser, {"train-verifier": train_verifier.cmd_train_verifier}),
]
"""Each subcommand's parser (in the order `--help` lists them) with the handlers of the
commands it adds."""
COMMANDS: dict[str, Handler] = {n: h for _, handlers in SUBCOMMANDS for n, h in handlers.items()}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except RecorderError as e:
        prefix = "<3>" if stderr_is_journal(sys.stderr) else ""  # filed as an error
        print(f"{prefix}recorder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # a reader that went away (`| head`) is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
