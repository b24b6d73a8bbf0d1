"""Raw s16le 16 kHz mono from standard input (e.g. piped from arecord); with a playback
reference, several interleaved channels."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Iterator

import numpy as np

from recorder.audio import FRAME_SAMPLES, Frame
from recorder.sources.base import SourceItem, StopFlag, Unclosable
from recorder.sources.loopback import Pair, split_interleaved


class StdinSource(Unclosable):
    """Raw s16le 16 kHz mono from standard input; SIGTERM is noticed within 0.1 s."""

    def __init__(self, fd: int | None = None, channels: int = 1, pair: Pair | None = None):
        """`channels` interleaved, of which `pair` keeps the microphone's and the playback
        reference's (`loopback`); without `pair`, one channel."""
        if pair is not None:
            pair.check(channels, "stdin ([audio] device_channels)")
            self.info = {"channel": pair.mic, "reference_channel": pair.reference}
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.description = "stdin"
        self.live = True
        self.channels, self.pair = channels, pair

    def frames(self, should_stop: StopFlag) -> Iterator[SourceItem]:
        want = FRAME_SAMPLES * 2 * self.channels
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
            usable = len(buf) - len(buf) % (2 * self.channels)
            if usable and self.pair is not None:
                yield Frame(index, *split_interleaved(bytes(buf), self.channels, self.pair))
                index += 1
            elif usable:
                yield Frame(index, np.frombuffer(bytes(buf[:usable]), dtype="<i2").copy())
                index += 1
            buf.clear()

    def close(self) -> None:
        pass
