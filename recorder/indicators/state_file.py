"""`[indicator] state_file`: a file rewritten atomically with the current state."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.indicators.base import IndicatorError
from recorder.machine import State


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
