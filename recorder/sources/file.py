"""A WAV file as a source: converted to 16 kHz mono, read as fast as the CPU allows or at 1x."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from recorder.audio import FRAME_S, Frame, read_wav
from recorder.sources.base import StopFlag, Unclosable, chunk


class FileSource(Unclosable):
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
