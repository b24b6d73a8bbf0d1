"""Several engines on the same audio: one score dictionary, one state machine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recorder.engines.base import WakeEngine
from recorder.errors import RecorderError


class CompositeEngine:
    """Calls each engine on every frame and merges their scores (names must not clash)."""

    def __init__(self, engines: Sequence[WakeEngine]):
        self.engines = list(engines)
        names = [n for e in self.engines for n in e.names]
        if len(set(names)) != len(names):
            raise RecorderError(f"wake-word models with the same name: {', '.join(names)}")
        self.names: list[str] = names
        self.default_thresholds: dict[str, float] = {}
        for e in self.engines:
            self.default_thresholds.update(getattr(e, "default_thresholds", {}))
        # openWakeWord's embeddings, for the second-stage verifiers and the near misses
        self.recent_embeddings: Callable[[int], np.ndarray] | None = next(
            (r for e in self.engines if (r := getattr(e, "recent_embeddings", None))), None
        )

    def process(self, samples: np.ndarray) -> dict[str, float]:
        scores: dict[str, float] = {}
        for e in self.engines:
            scores.update(e.process(samples))
        return scores

    def reset(self) -> None:
        for e in self.engines:
            e.reset()
