"""Where frames come from: a WAV file, raw stdin, or the microphone (see mic.py)."""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from recorder.audio import FRAME_S, FRAME_SAMPLES, Frame, read_wav
from recorder.errors import RecorderError

StopFlag = Callable[[], bool]


@dataclass(frozen=True)
class DeviceLost:
    reason: str


@dataclass(frozen=True)
class DeviceRestored:
    description: str


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


class FileSource:
    def __init__(self, path: Path, realtime: bool = False):
        self.samples = read_wav(path)
        self.realtime = realtime
        self.description = f"file:{path}"
        self.live = False

    def frames(self, should_stop: StopFlag) -> Iterator[Frame]:
        t0 = time.monotonic()
        for frame in chunk(self.samples):
            if self.realtime:
                delay = t0 + frame.index * FRAME_S - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if should_stop():
                return
            yield frame

    def close(self) -> None:
        pass


class StdinSource:
    """Raw s16le 16 kHz mono from standard input; SIGTERM is noticed within 0.1 s."""

    def __init__(self, fd: int | None = None):
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.description = "stdin"
        self.live = True

    def frames(self, should_stop: StopFlag) -> Iterator[SourceItem]:
        want = FRAME_SAMPLES * 2
        buf = bytearray()
        index = 0
        eof = False
        while not eof:
            while len(buf) < want and not eof:
                if should_stop():
                    return
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready:
                    yield None
                    continue
                data = os.read(self.fd, want - len(buf))
                eof = not data
                buf += data
            usable = len(buf) - len(buf) % 2
            if usable:
                yield Frame(index, np.frombuffer(bytes(buf[:usable]), dtype="<i2").copy())
                index += 1
            buf.clear()

    def close(self) -> None:
        pass


def open_source(spec: str, realtime: bool = False, wait_for_device: bool = False) -> Source:
    """`mic`, `mic:NAME_OR_INDEX`, `file:PATH` or `stdin`."""
    kind, _, arg = spec.partition(":")
    if kind == "file":
        if not arg:
            raise RecorderError("source file: needs a path, e.g. --source file:clip.wav")
        return FileSource(Path(arg), realtime)
    if kind == "stdin" and not arg:
        return StdinSource()
    if kind == "mic":
        from recorder.mic import MicSource

        return MicSource(arg or None, wait_for_device)
    raise RecorderError(f"unknown source {spec!r}: use mic, mic:NAME_OR_INDEX, file:PATH or stdin")
