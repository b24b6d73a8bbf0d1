"""What every audio source is: frames in order, plus changes in the device's health."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recorder.audio import FRAME_SAMPLES, Frame

StopFlag = Callable[[], bool]


@dataclass(frozen=True)
class DeviceLost:
    reason: str


@dataclass(frozen=True)
class DeviceRestored:
    description: str


@dataclass(frozen=True)
class Gap:
    """Samples the device captured but that were lost before reaching the frames (an input
    overflow, the queue full): `samples` 16 kHz samples missing just before the delivered
    sample `position` (counted like the frames: frame index * 1280 + offset in the frame)."""

    position: int
    samples: int


SourceItem = Frame | DeviceLost | DeviceRestored | None
"""A frame, a change in the device's health, or None: no audio yet (a live source's tick)."""


class Source(Protocol):
    description: str
    live: bool
    """Live sources (microphone, stdin) obey the mute switch and serve the control socket."""

    def frames(self, should_stop: StopFlag) -> Iterator[SourceItem]:
        """Frames in order, indexed from 0; ends at the source's end or when should_stop().

        Live sources also yield None at least every 0.1 s while no audio arrives.
        """
        ...

    def close(self) -> None: ...


def chunk(samples: np.ndarray, first_index: int = 0) -> Iterator[Frame]:
    for i, start in enumerate(range(0, len(samples), FRAME_SAMPLES), first_index):
        yield Frame(i, samples[start : start + FRAME_SAMPLES])
