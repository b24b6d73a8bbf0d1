"""microWakeWord models on pymicro-wakeword (its TFLite runtime and TFLite Micro's front end).

One feature stream (40 mel-like features per 10 ms, computed by the microfrontend) feeds every
micro model; each model runs on every third feature (30 ms) and keeps a sliding window of its
last `sliding_window_size` probabilities. pymicro-wakeword's own loop detects when the window's
mean is strictly above the model's `probability_cutoff`.

The score of an 80 ms frame is the highest sliding-window mean reached inside it (0 until the
window is full), so a frame's score is above the cutoff exactly when pymicro-wakeword's loop
detects inside that frame. The default threshold is the smallest float above the cutoff, so
that "score >= threshold" is microWakeWord's "mean > cutoff".

Unlike openWakeWord's engine, this one cannot skip quiet frames: the front end's noise
estimate and the models' streaming state carry over from frame to frame, so every frame is
processed (a few percent of openWakeWord's cost; see scripts/bench.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from recorder.engines.base import Embeddings
from recorder.errors import RecorderError
from recorder.models import MICRO_EXTRA, MicroModelSpec


def _package(name: str) -> ModuleType:
    try:
        import pymicro_wakeword
    except ImportError:
        raise RecorderError(
            f"model {name}: microWakeWord models need the optional package pymicro-wakeword: "
            f"{MICRO_EXTRA}"
        ) from None
    return pymicro_wakeword


def default_threshold(spec: MicroModelSpec) -> float:
    """The smallest threshold a score must reach to be a detection: just above the cutoff."""
    return math.nextafter(spec.probability_cutoff, 1.0)


class MicroEngine:
    """Several microWakeWord models on one feature stream, scored per 80 ms frame."""

    def __init__(self, specs: Sequence[MicroModelSpec]):
        if not specs:
            raise RecorderError("no wake-word model given")
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise RecorderError(f"wake-word models with the same name: {', '.join(names)}")
        package = _package(names[0])
        self.names: list[str] = names
        self.default_thresholds = {s.name: default_threshold(s) for s in specs}
        self.embeddings: Embeddings | None = None  # the models read their own features
        self._features = package.MicroWakeWordFeatures()
        self._models: list[Any] = []
        for s in specs:
            try:
                model = package.MicroWakeWord.from_config(s.config)
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                raise RecorderError(f"model {s.config}: cannot be loaded ({e})") from None
            # the checked values, whatever the JSON says on a second reading
            model.probability_cutoff = s.probability_cutoff
            model.sliding_window_size = s.sliding_window_size
            self._models.append(model)

    def takes_verifier(self, name: str) -> bool:
        return False

    def process(self, samples: np.ndarray) -> dict[str, float]:
        x = np.asarray(samples)
        if x.dtype != np.int16:
            x = np.clip(np.round(x), -32768, 32767)
        pcm = np.ascontiguousarray(x, dtype="<i2").tobytes()
        best = [0.0] * len(self._models)
        for features in self._features.process_streaming(pcm):
            for i, model in enumerate(self._models):
                p = model.process_streaming_prob(features)
                if p is not None and p > best[i]:
                    best[i] = p
        return dict(zip(self.names, best, strict=True))

    def reset(self) -> None:
        """Forget all audio: the front end and every model start afresh."""
        self._features.reset()
        for model in self._models:
            model.reset()
