"""Showing the recorder's state: a command hook, a state file and the log."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from recorder.machine import State

log = logging.getLogger("recorder.indicator")


class IndicatorError(Exception):
    """The state could not be shown."""


class Indicator(Protocol):
    def show(self, state: State, previous: State) -> None: ...


class CommandIndicator:
    """Runs `command STATE` with RECORDER_STATE / RECORDER_PREVIOUS_STATE in its environment."""

    def __init__(self, command: str, timeout_s: float):
        self.argv = shlex.split(command)
        self.timeout_s = timeout_s

    def show(self, state: State, previous: State) -> None:
        env = {**os.environ, "RECORDER_STATE": state.value,
               "RECORDER_PREVIOUS_STATE": previous.value}
        try:
            proc = subprocess.run([*self.argv, state.value], env=env, timeout=self.timeout_s,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        except subprocess.TimeoutExpired:
            raise IndicatorError(
                f"indicator command timed out after {self.timeout_s:g} s") from None
        except OSError as e:
            raise IndicatorError(f"indicator command {self.argv[0]!r}: {e.strerror}") from None
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            detail = f": {err[-1]}" if err else ""
            raise IndicatorError(f"indicator command exited {proc.returncode}{detail}")


class StateFileIndicator:
    """Rewrites a file with the current state (one word and a newline), atomically."""

    def __init__(self, path: Path):
        self.path = path

    def show(self, state: State, previous: State) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "w") as f:
                f.write(state.value + "\n")
            os.replace(tmp, self.path)
        except OSError as e:
            raise IndicatorError(f"state file {self.path}: {e.strerror}") from None


class LogIndicator:
    def show(self, state: State, previous: State) -> None:
        log.info("state %s -> %s", previous.value, state.value)


class Indicators:
    """Shows a state on every indicator; raises if any of them failed."""

    def __init__(self, indicators: Sequence[Indicator]):
        self.indicators = list(indicators)

    def show(self, state: State, previous: State) -> None:
        errors = []
        for indicator in self.indicators:
            try:
                indicator.show(state, previous)
            except IndicatorError as e:
                errors.append(str(e))
        if errors:
            raise IndicatorError("; ".join(errors))
