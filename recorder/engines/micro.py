"""microWakeWord models as a wake-word engine, through the pymicro-wakeword package.

The package's own streaming pieces do the work: `MicroWakeWordFeatures` turns 10 ms of audio
into one feature row (one frontend, shared by every model), and each `MicroWakeWord` runs its
TFLite model on every `stride` rows and keeps the mean of its last `sliding_window_size`
probabilities (0 until that window is full). microWakeWord detects when that mean exceeds the
model's `probability_cutoff`.

An 80 ms frame holds 8 feature rows, so 2 or 3 model runs. A frame's score is the highest
sliding-window mean reached inside it (0 when no run completed): the score reaches a threshold
exactly when some mean inside the frame does, so with the threshold just above the cutoff
(`MicroModelSpec.default_threshold`) the frames that detect are the frames in which
microWakeWord's own loop detects.

pymicro_wakeword is imported here only, when a micro model is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recorder.audio import FRAME_SAMPLES
from recorder.errors import RecorderError
from recorder.models import MICRO_EXTRA, MicroModelSpec


def _package(name: str) -> Any:
    try:
        import pymicro_wakeword
    except ImportError:
        raise RecorderError(
            f"micro model {name} needs the optional package pymicro-wakeword: {MICRO_EXTRA}"
        ) from None
    return pymicro_wakeword


def _load(package: Any, spec: MicroModelSpec) -> Any:
    try:
        model = package.MicroWakeWord.from_config(spec.config)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise RecorderError(f"micro model {spec.config}: cannot be loaded ({e})") from None
    if not model.interpreter:
        raise RecorderError(f"micro model {spec.config}: cannot be loaded")
    return model


class MicroWakeWordEngine:
    """One microWakeWord frontend feeding every micro model, one 80 ms frame at a time."""

    def __init__(self, specs: Sequence[MicroModelSpec]):
        if not specs:
            raise RecorderError("no wake-word model given")
        package = _package(specs[0].name)
        self.specs = list(specs)
        self.names: list[str] = [s.name for s in specs]
        if len(set(self.names)) != len(self.names):
            raise RecorderError(f"wake-word models with the same name: {', '.join(self.names)}")
        self.default_thresholds: dict[str, float] = {s.name: s.default_threshold for s in specs}
        """Per model, the least score that detects as microWakeWord does."""
        self._models = [_load(package, s) for s in specs]
        self._features = package.MicroWakeWordFeatures()

    def reset(self) -> None:
        """Forget all audio: frontend, pending feature rows, probabilities and model state."""
        self._features.reset()
        for m in self._models:
            m.reset()

    def process(self, samples: np.ndarray) -> dict[str, float]:
        pcm = np.clip(np.rint(samples[:FRAME_SAMPLES]), -32768, 32767).astype("<i2")
        scores = dict.fromkeys(self.names, 0.0)
        for row in self._features.process_streaming(pcm.tobytes()):
            for name, model in zip(self.names, self._models, strict=True):
                p = model.process_streaming_prob(row)
                if p is not None and p > scores[name]:
                    scores[name] = float(p)
        return scores

    def close(self) -> None:
        """Release the TFLite interpreters."""
        for m in self._models:
            m.close()
