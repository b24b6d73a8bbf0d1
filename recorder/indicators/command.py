"""The indicator hook: `[indicator] command` run as `CMD STATE` on every state change."""

from __future__ import annotations

import os
import shlex

from recorder.errors import RecorderError
from recorder.indicators.base import IndicatorError
from recorder.machine import State

KEY = "[indicator] command"


def check_command(command: str) -> str:
    """The program `command` runs, as `CommandIndicator` runs it (a path, relative to the
    working directory, or a name on $PATH), checked at start: it exists and may be run.
    Raises RecorderError (exit 2) naming the key and the program."""
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise RecorderError(f"{KEY}: cannot parse {command!r} ({e})") from None
    if not argv:
        raise RecorderError(f"{KEY}: empty command")
    program = argv[0]
    if "/" in program:
        if not os.path.isfile(program):
            raise RecorderError(f"{KEY}: {program}: no such file")
    else:
        import shutil  # here, as subprocess below: only a configured command needs them

        found = shutil.which(program)
        if found is None:
            raise RecorderError(f"{KEY}: {program!r} not found on $PATH")
        program = found
    if not os.access(program, os.X_OK):
        raise RecorderError(f"{KEY}: {program}: not executable")
    return program


class CommandIndicator:
    """Runs `command STATE` with RECORDER_STATE / RECORDER_PREVIOUS_STATE in its environment."""

    def __init__(self, command: str, timeout_s: float):
        self.argv = shlex.split(command)
        self.timeout_s = timeout_s

    def show(self, state: State, previous: State) -> None:
        env = {
            **os.environ,
            "RECORDER_STATE": state.value,
            "RECORDER_PREVIOUS_STATE": previous.value,
        }
        import subprocess

        try:
            proc = subprocess.run(
                [*self.argv, state.value],
                env=env,
                timeout=self.timeout_s,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except subprocess.TimeoutExpired:
            raise IndicatorError(
                f"indicator command timed out after {self.timeout_s:g} s"
            ) from None
        except OSError as e:
            raise IndicatorError(f"indicator command {self.argv[0]!r}: {e.strerror}") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            detail = f": {err[-1]}" if err else ""
            raise IndicatorError(f"indicator command exited {proc.returncode}{detail}")
