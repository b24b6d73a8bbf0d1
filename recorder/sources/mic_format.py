"""What a microphone is opened at, and its blocks made into frames.

`negotiate` picks the format to open a device at: the configured one, else 16 kHz mono when the
device accepts it, else a rate and channel count it supports. `Reframer` keeps one channel (or
the average of all) and resamples to 16 kHz as a stream, in 80 ms frames. PortAudio itself is
asked through the `sd` module that `recorder.sources.mic` passes in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from recorder.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame, StreamResampler, to_int16
from recorder.errors import RecorderError
from recorder.sources.loopback import Pair, PairFramer


class FormatError(RecorderError):
    """The configured format does not fit the device: retrying cannot help."""


@dataclass(frozen=True)
class MicFormat:
    """What was asked for: None means "16 kHz / mono if the device accepts it"."""

    rate: int | None = None
    channels: int | None = None
    channel: int | str = 0  # a 0-based channel number or "mix"
    pair: Pair | None = None
    """The microphone's channel and the playback reference's (`[audio] reference_channel`)."""


@dataclass(frozen=True)
class OpenFormat:
    """What a device is opened at."""

    rate: int
    channels: int
    channel: int | str
    pair: Pair | None = None

    @property
    def info(self) -> dict[str, Any]:
        info = {"device_rate": self.rate, "device_channels": self.channels, "channel": self.channel}
        if self.pair is not None:
            info["reference_channel"] = self.pair.reference
        return info

    def describe(self) -> str:
        layout = "mono" if self.channels == 1 else f"{self.channels} channels"
        return f"{self.rate} Hz {layout}"


def accepts(sd: Any, device: int, rate: int, channels: int) -> bool:
    try:
        sd.check_input_settings(device=device, samplerate=rate, channels=channels, dtype="int16")
    except Exception:  # PortAudioError, ValueError: not this format
        return False
    return True


def negotiate(sd: Any, device: int, info: dict[str, Any], want: MicFormat) -> OpenFormat:
    """The format to open `device` at: the configured one, else 16 kHz mono if accepted, else
    the device's default rate and (if mono is refused) its maximum channel count."""
    name, max_ch = info["name"], int(info["max_input_channels"])
    if want.channels is not None and want.channels > max_ch:
        raise FormatError(
            f"input device {name!r}: [audio] device_channels = {want.channels}, "
            f"but it has {max_ch} input channel(s)"
        )
    rates = [want.rate] if want.rate else [SAMPLE_RATE, int(info["default_samplerate"])]
    counts = [want.channels] if want.channels else [1, max_ch]
    if want.pair is not None and not want.channels:  # both channels, or the most there are
        counts = [c for c in counts if c >= want.pair.needs] or [max_ch]
    fmt = next(
        (
            OpenFormat(r, c, want.channel, want.pair)
            for c in counts
            for r in rates
            if accepts(sd, device, r, c)
        ),
        None,
    )
    if fmt is None:  # let opening the stream report PortAudio's reason
        fmt = OpenFormat(rates[0], counts[0], want.channel, want.pair)
    if fmt.pair is not None:
        try:
            fmt.pair.check(fmt.channels, f"input device {name!r}")
        except RecorderError as e:
            raise FormatError(str(e)) from None
    if isinstance(fmt.channel, int) and fmt.channel >= fmt.channels:
        raise FormatError(
            f"input device {name!r}: [audio] channel = {fmt.channel}, but it is "
            f"opened with {fmt.channels} channel(s) (0 to {fmt.channels - 1})"
        )
    return fmt


class Reframer:
    """Device blocks (n, channels) of int16 to 80 ms frames of 16 kHz mono int16.

    Keeps one channel, or averages them ("mix"), then resamples to 16 kHz as one stream
    (StreamResampler). 16 kHz with one kept channel is passed through bit-exact.
    """

    def __init__(self, fmt: OpenFormat, first_index: int = 0):
        self.fmt = fmt
        self.index = first_index
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler = StreamResampler(fmt.rate) if fmt.rate != SAMPLE_RATE else None
        self._pairs: PairReframer | None = (
            PairReframer(fmt.rate, fmt.pair, first_index) if fmt.pair is not None else None
        )

    @property
    def position(self) -> int:
        """The next delivered sample's number (frame index * FRAME_SAMPLES + offset)."""
        if self._pairs is not None:
            return self._pairs.framer.position
        return self.index * FRAME_SAMPLES + len(self._pending)

    def push(self, block: np.ndarray) -> Iterator[Frame]:
        if self._pairs is not None:
            yield from self._pairs.push(block)
            self.index = self._pairs.framer.index
            return
        samples = self._convert(block)
        self._pending = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        while len(self._pending) >= FRAME_SAMPLES:
            yield Frame(self.index, self._pending[:FRAME_SAMPLES])
            self._pending = self._pending[FRAME_SAMPLES:]
            self.index += 1

    def _convert(self, block: np.ndarray) -> np.ndarray:
        block = block.reshape(len(block), -1)
        if self.fmt.channel == "mix":
            mono: np.ndarray = block.astype(np.float64).mean(axis=1) / 32768.0
        else:
            mono = block[:, int(self.fmt.channel)]
            if self._resampler is None:
                return mono.astype(np.int16, copy=True)
            mono = mono / 32768.0
        if self._resampler is None:
            return to_int16(mono)
        return self._resampler.process(mono)


class PairReframer:
    """Device blocks to frames that carry the microphone's channel and the playback reference's,
    each resampled to 16 kHz by its own stream (`pair`: which channels)."""

    def __init__(self, rate: int, pair: Pair, first_index: int = 0):
        self.pair = pair
        self.framer = PairFramer(first_index)
        self._resamplers = (
            (StreamResampler(rate), StreamResampler(rate)) if rate != SAMPLE_RATE else None
        )

    def push(self, block: np.ndarray) -> Iterator[Frame]:
        block = block.reshape(len(block), -1)
        mic, ref = block[:, self.pair.mic], block[:, self.pair.reference]
        if self._resamplers is None:
            yield from self.framer.push(mic.astype(np.int16), ref.astype(np.int16))
            return
        mic_rs, ref_rs = self._resamplers
        yield from self.framer.push(mic_rs.process(mic / 32768.0), ref_rs.process(ref / 32768.0))
