"""The `recorder` command line. User errors print one line and exit with status 2.

Each subcommand has one home: its `add_*` function beside its `cmd_*` handler (in
`cli_daemon`, `cli_recordings`, `cli_setup`, or its tool's module), named in `SUBCOMMANDS`;
the flags several share are in `cli_args`. A command line naming a subcommand imports that
subcommand's module alone (`recorder run` starts without the tools' modules); `--help`,
`--version`, no subcommand or an unknown one build the whole parser."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, cast

from recorder import __version__
from recorder.cli_args import Handler, Parser, stderr_is_journal
from recorder.cli_args import load_config as load_config
from recorder.errors import RecorderError

SUBCOMMANDS: list[tuple[str, str, dict[str, str]]] = [
    ("recorder.cli_daemon", "add_run", {"run": "cmd_run"}),
    ("recorder.cli_daemon", "add_monitor", {"monitor": "cmd_monitor"}),
    ("recorder.cli_daemon", "add_mute", {"mute": "cmd_mute", "unmute": "cmd_mute"}),
    ("recorder.cli_daemon", "add_status", {"status": "cmd_status"}),
    ("recorder.cli_recordings", "add_delete", {"delete": "cmd_delete"}),
    ("recorder.cli_recordings", "add_prune", {"prune": "cmd_prune"}),
    ("recorder.cli_recordings", "add_audit", {"audit": "cmd_audit"}),
    ("recorder.cli_recordings", "add_list", {"list": "cmd_list"}),
    ("recorder.cli_setup", "add_devices", {"devices": "cmd_devices"}),
    ("recorder.cli_setup", "add_doctor", {"doctor": "cmd_doctor"}),
    ("recorder.cli_setup", "add_config_command", {"config": "cmd_config"}),
    ("recorder.cli_setup", "add_models", {"models": "cmd_models"}),
    (
        "recorder.cli_recordings",
        "add_export",
        {"keygen": "recorder.tools.export:cmd_keygen", "export": "cmd_export"},
    ),
    ("recorder.tools.score", "add_parser", {"score": "cmd_score"}),
    ("recorder.tools.events", "add_parser", {"events": "cmd_events"}),
    ("recorder.tools.transcribe", "add_parser", {"transcribe": "cmd_transcribe"}),
    ("recorder.tools.tune", "add_parser", {"tune": "cmd_tune"}),
    ("recorder.tools.calibrate", "add_parser", {"calibrate": "cmd_calibrate"}),
    ("recorder.tools.enroll", "add_parser", {"enroll": "cmd_enroll"}),
    ("recorder.tools.train_verifier", "add_parser", {"train-verifier": "cmd_train_verifier"}),
]
"""Each subcommand's parser, in the order `--help` lists them: its module, the function there
that adds it, and the handler of each command it adds (`module:function` when the handler
lives in another module). Modules are imported when a command line needs them."""


def _where(module: str, handler: str) -> tuple[str, str]:
    """A handler's module and name, from its entry in `SUBCOMMANDS`."""
    home, _, name = handler.rpartition(":")
    return (home or module, name)


COMMANDS: dict[str, tuple[str, str]] = {
    name: _where(module, h) for module, _, handlers in SUBCOMMANDS for name, h in handlers.items()
}
"""Each command's handler: its module and its name there."""


def _function(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def handler(command: str) -> Handler:
    """The handler of `command` (importing its module)."""
    return cast(Handler, _function(*COMMANDS[command]))


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of `argv`: when it starts with a command, with that command's subcommand
    alone; otherwise (and by default) with every subcommand, for `--help`, `--version` and
    the error naming the choices."""
    parser = Parser(prog="recorder", description="Wake-word gated, on-device voice recorder.")
    parser.add_argument("--version", action="version", version=f"recorder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    chosen = [s for s in SUBCOMMANDS if argv and argv[0] in s[2]]
    for module, add, _ in chosen or SUBCOMMANDS:
        _function(module, add)(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
        return handler(args.command)(args)
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
