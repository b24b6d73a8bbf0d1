"""The command line's shared pieces: a parser whose errors are one line, the flags several
subcommands take (`--config`, `--recordings`, `--runtime-dir`, `--state-dir`, `--json`), and
what they select: the configuration in force, the state directory, the audit log."""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

from recorder import config as config_mod
from recorder.audit import AuditLog
from recorder.config import Config
from recorder.errors import RecorderError

Handler = Callable[[argparse.Namespace], int]
"""Runs one subcommand: its exit status."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, told the terminal's width: argparse would ask shutil for it (for every
    argument added), and shutil brings the compression modules into the daemon (0.6 MB)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
        **kwargs: Any,
    ) -> None:
        width = _columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width, **kwargs)


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise RecorderError(f"{self.prog}: {message}")


def _columns() -> int:
    """The terminal's width, as `shutil.get_terminal_size` gives it: $COLUMNS, else standard
    output's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


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
            "else [storage] state_dir, else $XDG_STATE_HOME/recorder or "
            "~/.local/state/recorder)",
        )


def add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def load_config(args: argparse.Namespace) -> Config:
    """The config file in force with whichever of the command's flags were given."""
    overrides = config_mod.Overrides.from_args(args)
    return overrides.apply(config_mod.load(config_mod.locate(args.config)))


LOG_FORMAT = "%(levelname)s %(message)s"


def journal_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 3 (err), 4 (warning), 6 (info), 7 (debug)."""
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class JournalFormatter(logging.Formatter):
    """Each line of a record prefixed `<N>` with its syslog priority (sd-daemon(3)), which
    journald strips and files the line under; continuation lines (tracebacks) too."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def stderr_is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal's: $JOURNAL_STREAM ("DEVICE:INODE", set by systemd for
    a service whose stderr it connected to the journal) names the stream's own file. A child
    that inherited the variable but writes elsewhere (a pipe, a file) does not match."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def log_formatter(stream: TextIO) -> logging.Formatter:
    """For the journal, each line with its priority prefix; for a terminal, a local time
    (`12:03:04.123`) first; otherwise (a file, a pipe) the level and the message."""
    if stderr_is_journal(stream):
        return JournalFormatter(LOG_FORMAT)
    if stream.isatty():
        return logging.Formatter("%(asctime)s.%(msecs)03d " + LOG_FORMAT, datefmt="%H:%M:%S")
    return logging.Formatter(LOG_FORMAT)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(sys.stderr))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def state_dir(args: argparse.Namespace, config: Config | None = None) -> Path:
    """`--state-dir`, else $STATE_DIRECTORY, else [storage] state_dir of `config` (None: the
    configuration in force, loaded only then), else the default state directory."""
    if getattr(args, "state_dir", None) is not None:
        return Path(args.state_dir)
    return config_mod.state_dir(config if config is not None else load_config(args))


def audit_log(directory: Path) -> AuditLog:
    """The audit log of the state directory `directory`, prepared: a directory others can
    write to is refused (exit 2) before the command changes anything."""
    log = AuditLog(directory)
    log.prepare()
    return log


def audit(log: AuditLog, event: str, **fields: object) -> None:
    """One entry in the audit log, by the command line."""
    try:
        log.append(event, by="cli", **fields)
    except OSError as e:
        raise RecorderError(f"audit log in {log.state_dir}: {e.strerror}") from None
