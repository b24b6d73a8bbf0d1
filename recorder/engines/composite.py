"""Several engines on the same audio: one score dictionary, one state machine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recorder.engines.base import Embeddings, WakeEngine
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
            self.default_thresholds.update(e.default_thresholds)
        # openWakeWord's embeddings, for the second-stage verifiers and the near misses
        self.embeddings: Embeddings | None = next(
            (r for e in self.engines if (r := e.embeddings) is not None), None
        )

    def takes_verifier(self, name: str) -> bool:
        return any(e.takes_verifier(name) for e in self.engines)

    def process(self, samples: np.ndarray) -> dict[str, float]:
        scores: dict[str, float] = {}
        for e in self.engines:
            scores.update(e.process(samples))
        return scores

    def reset(self) -> None:
        for e in self.engines:
            e.reset()
