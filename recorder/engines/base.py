"""The interface every wake-word engine implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np


class WakeEngine(Protocol):
    """Turns frames into a score per wake word (model name, or model:class for multi-class).

    `process` is called once per 80 ms frame (1280 samples, float in int16 units) and returns
    one score in [0, 1] per name; `reset` forgets all audio heard so far.
    """

    @property
    def names(self) -> Sequence[str]: ...

    def process(self, samples: np.ndarray) -> Mapping[str, float]: ...

    def reset(self) -> None: ...
