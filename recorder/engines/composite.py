"""Several wake-word engines on one stream: each hears every frame, their scores are merged.

The openWakeWord member (if any) serves `recent_embeddings` (the second-stage verifiers, near
misses and the tools look for it with getattr) and owns the speech gate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recorder.engines.base import WakeEngine
from recorder.errors import RecorderError
from recorder.vad import SpeechDetector


class CompositeEngine:
    """Calls each engine on the same frame and returns all their scores."""

    def __init__(self, engines: Sequence[WakeEngine]):
        if not engines:
            raise RecorderError("no wake-word model given")
        self.engines = list(engines)
        names = [n for e in self.engines for n in e.names]
        if len(set(names)) != len(names):
            raise RecorderError(f"wake-word models with the same name: {', '.join(names)}")
        self.names: list[str] = names
        self.default_thresholds: dict[str, float] = {}
        """Per model whose engine has its own, the least score that detects."""
        for e in self.engines:
            self.default_thresholds.update(getattr(e, "default_thresholds", {}))
        self._oww = next((e for e in self.engines if hasattr(e, "recent_embeddings")), None)
        if self._oww is not None:
            # only then: callers look for it with getattr
            self.recent_embeddings = self._oww.recent_embeddings

    @property
    def gate(self) -> SpeechDetector | None:
        """The openWakeWord member's speech gate (None: no gate, or no such member)."""
        return getattr(self._oww, "gate", None)

    @gate.setter
    def gate(self, value: SpeechDetector | None) -> None:
        if self._oww is not None:
            self._oww.gate = value  # type: ignore[attr-defined]

    def process(self, samples: np.ndarray) -> dict[str, float]:
        scores: dict[str, float] = {}
        for e in self.engines:
            scores.update(e.process(samples))
        return scores

    def reset(self) -> None:
        for e in self.engines:
            e.reset()
