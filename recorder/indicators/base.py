"""What every indicator is (`show(state, previous)`), its error, the log line, and the fan-out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from recorder.machine import State

log = logging.getLogger("recorder.indicator")


class IndicatorError(Exception):
    """The state could not be shown."""


class Indicator(Protocol):
    def show(self, state: State, previous: State) -> None: ...


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
