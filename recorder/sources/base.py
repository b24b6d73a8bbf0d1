"""What every audio source is: frames in order, plus changes in the device's health."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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

    @property
    def info(self) -> Mapping[str, Any]:
        """What a saved request's sidecar tells of the device (its format); may be empty."""
        ...

    @property
    def gaps(self) -> Sequence[Gap]:
        """The latest samples lost before reaching the frames, oldest first."""
        ...

    @property
    def closable(self) -> bool:
        """Whether `set_closed` releases a device (a muted microphone is closed)."""
        ...

    @property
    def closed(self) -> bool:
        """The device is released after `set_closed(True)` (False for a source that is not
        closable)."""
        ...

    def set_closed(self, closed: bool) -> None:
        """Ask for the device to be released or reopened; the frames' generator acts on it."""
        ...

    def frames(self, should_stop: StopFlag) -> Iterator[SourceItem]:
        """Frames in order, indexed from 0; ends at the source's end or when should_stop().

        Live sources also yield None at least every 0.1 s while no audio arrives.
        """
        ...

    def close(self) -> None: ...


class Unclosable:
    """The abilities of a source without a device to release: no format to tell, no gaps,
    nothing to close."""

    info: Mapping[str, Any] = {}
    gaps: Sequence[Gap] = ()
    closable = False
    closed = False

    def set_closed(self, closed: bool) -> None:
        pass


def chunk(samples: np.ndarray, first_index: int = 0) -> Iterator[Frame]:
    for i, start in enumerate(range(0, len(samples), FRAME_SAMPLES), first_index):
        yield Frame(i, samples[start : start + FRAME_SAMPLES])
