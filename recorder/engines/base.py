"""The interface every wake-word engine implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

Embeddings = Callable[[int], np.ndarray]
"""The last `n` openWakeWord embeddings, (n, 96), oldest first: what a second-stage verifier
and the near misses read."""


class WakeEngine(Protocol):
    """Turns frames into a score per wake word (model name, or model:class for multi-class).

    `process` is called once per 80 ms frame (1280 samples, float in int16 units) and returns
    one score in [0, 1] per name; `reset` forgets all audio heard so far, a speech gate's
    picture of the room included.
    """

    @property
    def names(self) -> Sequence[str]: ...

    @property
    def default_thresholds(self) -> Mapping[str, float]:
        """The engine's own threshold per score name, for the names that have one
        (microWakeWord's: just above each model's probability_cutoff); the other names get
        the configuration's default."""
        ...

    @property
    def embeddings(self) -> Embeddings | None:
        """openWakeWord's recent embeddings; None for an engine without them."""
        ...

    def takes_verifier(self, name: str) -> bool:
        """Whether the score `name` comes from a model a verifier can check: one that reads
        the embeddings."""
        ...

    def process(self, samples: np.ndarray) -> Mapping[str, float]: ...

    def reset(self) -> None: ...
