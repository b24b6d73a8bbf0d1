"""The playback reference read beside the microphone: two channels of one capture stream.

A sound card that loops what the speaker plays back into its capture stream (the ReSpeaker
arrays do) delivers it sample-synchronous with the microphones. With `[audio]
reference_channel`, a source keeps two channels of each block, the microphone's and the
reference's, converts both the same way, and hands them on together: each frame's `samples`
(the microphone) and `reference`. The reference lives only in those frames; the echo stage
(`recorder.echo`) consumes it before anything else sees the frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from recorder.audio import FRAME_SAMPLES, BlockResampler, Frame, WavReader, _decode, to_int16
from recorder.errors import RecorderError


@dataclass(frozen=True)
class Pair:
    """The microphone's channel and the reference's, 0-based, in one capture stream."""

    mic: int
    reference: int

    @property
    def needs(self) -> int:
        """The channels a stream must have to carry both."""
        return max(self.mic, self.reference) + 1

    def check(self, channels: int, name: str) -> None:
        if channels < self.needs:
            raise RecorderError(
                f"{name}: [audio] channel = {self.mic} and reference_channel = {self.reference} "
                f"need {self.needs} channels, it has {channels}"
            )


class PairFramer:
    """Blocks of (microphone, reference) samples of equal lengths as frames of FRAME_SAMPLES
    that carry both (the last may be shorter), indexed from `first_index`."""

    def __init__(self, first_index: int = 0):
        self.index = first_index
        self._mic = np.zeros(0, dtype=np.int16)
        self._ref = np.zeros(0, dtype=np.int16)

    @property
    def position(self) -> int:
        """The next delivered sample's number (frame index * FRAME_SAMPLES + offset)."""
        return self.index * FRAME_SAMPLES + len(self._mic)

    def push(self, mic: np.ndarray, ref: np.ndarray) -> Iterator[Frame]:
        n = min(len(mic), len(ref))  # the resamplers of both channels run in step
        self._mic = np.concatenate([self._mic, mic[:n]])
        self._ref = np.concatenate([self._ref, ref[:n]])
        while len(self._mic) >= FRAME_SAMPLES:
            yield Frame(self.index, self._mic[:FRAME_SAMPLES], self._ref[:FRAME_SAMPLES])
            self._mic, self._ref = self._mic[FRAME_SAMPLES:], self._ref[FRAME_SAMPLES:]
            self.index += 1

    def finish(self) -> Iterator[Frame]:
        if len(self._mic):
            yield Frame(self.index, self._mic, self._ref)
            self.index += 1
            self._mic, self._ref = self._mic[:0], self._ref[:0]


def wav_frames(reader: WavReader, pair: Pair) -> Iterator[Frame]:
    """A multi-channel WAV file's frames with their reference: both channels converted to
    16 kHz int16 like `WavReader.blocks` converts a mono file (16-bit at 16 kHz bit-exact)."""
    info = reader.info
    pair.check(info.channels, reader.name)
    resample = info.sample_rate != 16000
    mic_rs = BlockResampler(info.sample_rate, 16000) if resample else None
    ref_rs = BlockResampler(info.sample_rate, 16000) if resample else None
    framer = PairFramer()
    for raw in reader.raw_blocks():
        data = _decode(raw, info)
        mic, ref = data[:, pair.mic], data[:, pair.reference]
        if mic_rs is not None and ref_rs is not None:
            mic, ref = mic_rs.push(mic), ref_rs.push(ref)
        yield from framer.push(to_int16(mic), to_int16(ref))
    if mic_rs is not None and ref_rs is not None:
        yield from framer.push(to_int16(mic_rs.finish()), to_int16(ref_rs.finish()))
    yield from framer.finish()


def split_interleaved(raw: bytes, channels: int, pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved s16le samples of `channels` channels: the microphone's and the reference's."""
    usable = len(raw) - len(raw) % (2 * channels)
    data = np.frombuffer(raw[:usable], dtype="<i2").reshape(-1, channels)
    return data[:, pair.mic].astype(np.int16), data[:, pair.reference].astype(np.int16)
