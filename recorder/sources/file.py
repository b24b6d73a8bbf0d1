"""A WAV file as a source: converted to 16 kHz mono, read as fast as the CPU allows or at 1x.

The file is read a block at a time, so memory stays the same whatever its length; its header is
checked when the source is opened, so a file that cannot be used is refused before the daemon
starts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from recorder.audio import FRAME_S, Frame, WavReader, reframe
from recorder.sources.base import StopFlag, Unclosable
from recorder.sources.loopback import Pair, wav_frames


class FileSource(Unclosable):
    """`pair`: keep the microphone's channel and the playback reference's (`loopback`)
    instead of averaging the channels."""

    def __init__(self, path: Path, realtime: bool = False, pair: Pair | None = None):
        self.path = path
        with WavReader(path) as reader:  # a file that cannot be read is refused here
            if pair is not None:
                pair.check(reader.info.channels, str(path))
                self.info = {"channel": pair.mic, "reference_channel": pair.reference}
        self.pair = pair
        self.realtime = realtime
        self.description = f"file:{path}"
        self.live = False

    def frames(self, should_stop: StopFlag) -> Iterator[Frame]:
        t0 = time.monotonic()
        with WavReader(self.path) as reader:
            frames = (
                reframe(reader.blocks()) if self.pair is None else wav_frames(reader, self.pair)
            )
            for frame in frames:
                if self.realtime:
                    delay = t0 + frame.index * FRAME_S - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                if should_stop():
                    return
                yield frame

    def close(self) -> None:
        pass
