"""The command line's shared pieces: a parser whose errors are one line, the flags several
subcommands take (`--config`, `--recordings`, `--runtime-dir`, `--state-dir`, `--json`), and
what they select: the configuration in force, the state directory, the audit log."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from recorder import config as config_mod
from recorder.audit import AuditLog
from recorder.config import Config
from recorder.dirs import default_state_dir
from recorder.errors import RecorderError

Handler = Callable[[argparse.Namespace], int]
"""Runs one subcommand: its exit status."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise RecorderError(f"{self.prog}: {message}")


def add_config(p: argparse.ArgumentParser, recordings: bool = True) -> None:
    p.add_argument("--config", type=Path, metavar="PATH", help=config_mod.CONFIG_HELP)
    if recordings:
        p.add_argument(
            "--recordings",
            type=Path,
            metavar="DIR",
            help="recordings directory (overrides [storage] directory)",
        )


def add_dirs(p: argparse.ArgumentParser, runtime: bool, state: bool) -> None:
    if runtime:
        p.add_argument(
            "--runtime-dir",
            type=Path,
            metavar="DIR",
            help="control socket directory (default: $RUNTIME_DIRECTORY, "
            "$XDG_RUNTIME_DIR/recorder or /run/recorder)",
        )
    if state:
        p.add_argument(
            "--state-dir",
            type=Path,
            metavar="DIR",
            help="where the mute switch and the audit log are kept (default: $STATE_DIRECTORY, "
            "$XDG_STATE_HOME/recorder or ~/.local/state/recorder)",
        )


def add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def load_config(args: argparse.Namespace) -> Config:
    """The config file in force with whichever of the command's flags were given."""
    overrides = config_mod.Overrides.from_args(args)
    return overrides.apply(config_mod.load(config_mod.locate(args.config)))


def setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(levelname)s %(message)s")


def state_dir(args: argparse.Namespace) -> Path:
    """`--state-dir`, else the default state directory."""
    return args.state_dir or default_state_dir()


def audit(args: argparse.Namespace, event: str, **fields: object) -> None:
    """One entry in the audit log of the state directory, by the command line."""
    try:
        AuditLog(state_dir(args)).append(event, by="cli", **fields)
    except OSError as e:
        raise RecorderError(f"audit log in {state_dir(args)}: {e.strerror}") from None
