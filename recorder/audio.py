"""Frames, WAV reading and writing, and conversion to 16 kHz mono int16."""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from recorder.errors import RecorderError

SAMPLE_RATE = 16000
FRAME_SAMPLES = 1280  # 80 ms: openWakeWord's native step
FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class Frame:
    """One step of the stream: up to FRAME_SAMPLES int16 samples and the frame's index.

    Only the last frame of a finite source may be shorter than FRAME_SAMPLES.
    """

    index: int
    samples: np.ndarray
    reference: np.ndarray | None = field(default=None, repr=False)
    """What the speaker played over the same samples (`[audio] reference_channel`), or None."""

    @property
    def start_s(self) -> float:
        return self.index * FRAME_S

    @property
    def end_s(self) -> float:
        return (self.index + 1) * FRAME_S


def frames_to_s(n_frames: int) -> float:
    return n_frames * FRAME_S


def s_to_frames(seconds: float) -> int:
    """Whole frames covering `seconds` (rounded to the nearest frame, at least 0)."""
    return max(0, round(seconds / FRAME_S))


def reframe(blocks: Iterable[np.ndarray], first_index: int = 0) -> Iterator[Frame]:
    """Blocks of samples of any sizes as frames of FRAME_SAMPLES (the last may be shorter),
    indexed from `first_index`; each frame owns its samples, so a frame kept holds no block."""
    index = first_index
    pending = np.empty(0, dtype=np.int16)
    for block in blocks:
        if len(pending):
            block = np.concatenate([pending, block])
        whole = len(block) - len(block) % FRAME_SAMPLES
        for start in range(0, whole, FRAME_SAMPLES):
            yield Frame(index, block[start : start + FRAME_SAMPLES].copy())
            index += 1
        pending = block[whole:].copy()
    if len(pending):
        yield Frame(index, pending)


_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_IEEE_FLOAT = 3
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
MAX_FMT_BYTES = 1024
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    sample_width: int  # bytes
    is_float: bool
    n_frames: int
    data_offset: int


def read_wav_info(f: BinaryIO, name: str) -> WavInfo:
    """Parse a RIFF/WAVE header (PCM 8/16/24/32-bit, float 32/64, extensible).

    Sizes are never trusted: a chunk cannot reach past the end of the file, and a data chunk
    longer than the file (or of unknown length) holds what the file holds.
    """
    file_size = f.seek(0, 2)
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise RecorderError(f"{name}: not a WAV file")
    fmt = None
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            raise RecorderError(f"{name}: WAV file has no audio data")
        cid, size = chunk[0:4], struct.unpack("<I", chunk[4:8])[0]
        if cid == b"fmt ":
            fmt = _read_fmt_chunk(f, size, name)
        elif cid == b"data":
            if fmt is None:
                raise RecorderError(f"{name}: WAV data before its format")
            is_float = _is_float(fmt, name)
            _, channels, rate, bits = fmt
            width = bits // 8
            data_offset = f.tell()
            if size == 0xFFFFFFFF or size == 0 or data_offset + size > file_size:
                size = file_size - data_offset  # streamed (unknown length) or truncated: to the end
            return WavInfo(rate, channels, width, is_float, size // (width * channels), data_offset)
        else:
            f.seek(size + (size & 1), 1)


def _read_fmt_chunk(f: BinaryIO, size: int, name: str) -> tuple[int, int, int, int]:
    """The format chunk's (format tag, channels, rate, bits), an extensible format's own tag."""
    if size > MAX_FMT_BYTES:
        raise RecorderError(f"{name}: invalid WAV header (format chunk of {size} bytes)")
    body = f.read(size + (size & 1))
    if len(body) < 16 or size < 16:
        raise RecorderError(f"{name}: truncated WAV header")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]
    return (tag, channels, rate, bits)


def _is_float(fmt: tuple[int, int, int, int], name: str) -> bool:
    """Whether the samples are floats (else PCM); an encoding or a layout not read is refused."""
    tag, channels, rate, bits = fmt
    if tag == _WAVE_FORMAT_PCM and bits in (8, 16, 24, 32):
        is_float = False
    elif tag == _WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        is_float = True
    else:
        raise RecorderError(
            f"{name}: unsupported WAV encoding (format {tag}, {bits} bits); "
            "use PCM 8/16/24/32-bit or float"
        )
    if not (1 <= channels <= MAX_CHANNELS and 1000 <= rate <= MAX_SAMPLE_RATE):
        raise RecorderError(f"{name}: invalid WAV format ({channels} ch, {rate} Hz)")
    return is_float


def _decode(raw: bytes, info: WavInfo) -> np.ndarray:
    """Raw WAV bytes to a (n, channels) float64 array in [-1, 1), or int16 when already s16."""
    w = info.sample_width
    usable = len(raw) - len(raw) % (w * info.channels)
    raw = raw[:usable]
    if info.is_float:
        with np.errstate(invalid="ignore"):  # a signalling NaN raises the flag in the cast
            data = np.frombuffer(raw, dtype="<f4" if w == 4 else "<f8").astype(np.float64)
        data = np.clip(np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    elif w == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif w == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif w == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        data = v.astype(np.float64) / float(1 << 23)
    else:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    return data.reshape(-1, info.channels)


READ_BLOCK_BYTES = 1 << 17
"""The WAV data read at a time (128 KiB): memory does not grow with the file's length."""


@contextmanager
def _read_errors(name: str) -> Iterator[None]:
    """The errors of opening and reading a WAV file as one-line RecorderErrors."""
    try:
        yield
    except FileNotFoundError:
        raise RecorderError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise RecorderError(f"{name}: is a directory, not a WAV file") from None
    except PermissionError:
        raise RecorderError(f"{name}: permission denied") from None
    except struct.error:
        raise RecorderError(f"{name}: truncated WAV header") from None
    except (OSError, ValueError) as e:
        raise RecorderError(f"{name}: cannot read ({getattr(e, 'strerror', None) or e})") from None


def _open_binary(path: Path, content: bytes | None) -> BinaryIO:
    return io.BytesIO(content) if content is not None else open(path, "rb")


class WavReader:
    """A WAV file (or its bytes already in memory, `content`) read block by block as 16 kHz
    mono int16: the samples `read_wav` returns, without holding the whole file.

    The header is read and checked on opening, so a file that cannot be used is refused before
    any of its audio is; each call of `blocks` reads the data from its start.
    """

    def __init__(
        self, path: Path, content: bytes | None = None, block_bytes: int = READ_BLOCK_BYTES
    ):
        self.name = str(path)
        self.block_bytes = block_bytes
        with _read_errors(self.name):
            self._file = _open_binary(path, content)  # `close`, or leaving `with`, closes it
            try:
                self.info = read_wav_info(self._file, self.name)
            except BaseException:
                self._file.close()
                raise

    def __enter__(self) -> WavReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def is_native(self) -> bool:
        """16 kHz mono 16-bit PCM: the samples are the file's, bit-exact."""
        info = self.info
        return (info.sample_rate, info.channels, info.sample_width, info.is_float) == (
            SAMPLE_RATE,
            1,
            2,
            False,
        )

    def raw_blocks(self) -> Iterator[bytes]:
        """The data chunk in blocks of whole sample frames (a partial last frame is left out)."""
        info = self.info
        frame_bytes = info.sample_width * info.channels
        block = max(1, self.block_bytes // frame_bytes) * frame_bytes
        left = info.n_frames * frame_bytes
        with _read_errors(self.name):
            self._file.seek(info.data_offset)
        while left > 0:
            with _read_errors(self.name):
                raw = self._file.read(min(block, left))
            usable = len(raw) - len(raw) % frame_bytes
            if usable:
                yield raw[:usable]
            if len(raw) < min(block, left):  # the file ends early
                return
            left -= len(raw)

    def blocks(self) -> Iterator[np.ndarray]:
        """The samples as 16 kHz mono int16, in blocks; together, exactly `read_wav`'s."""
        if self.is_native:
            for raw in self.raw_blocks():
                yield np.frombuffer(raw, dtype="<i2").astype(np.int16)
            return
        info = self.info
        resampler = (
            BlockResampler(info.sample_rate, SAMPLE_RATE)
            if info.sample_rate != SAMPLE_RATE
            else None
        )
        for raw in self.raw_blocks():
            data = _decode(raw, info).mean(axis=1)
            if resampler is not None:
                data = resampler.push(data)
            if len(data):
                yield _float_to_int16(data)
        if resampler is not None:
            tail = resampler.finish()
            if len(tail):
                yield _float_to_int16(tail)


def _float_to_int16(data: np.ndarray) -> np.ndarray:
    samples: np.ndarray = np.clip(np.round(data * 32768.0), -32768, 32767).astype(np.int16)
    return samples


def read_wav(path: Path, content: bytes | None = None) -> np.ndarray:
    """Read any supported WAV file (or its bytes, `content`, already in memory) as 16 kHz mono
    int16.

    16 kHz mono 16-bit files are returned bit-exact; other rates are resampled and channels
    averaged. Anything that cannot be read correctly raises RecorderError. For a file of any
    length, `WavReader.blocks` gives the same samples a block at a time.
    """
    with WavReader(path, content) as reader:
        parts = list(reader.blocks())
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int16)


_KAISER_BETA = 8.0


class _SincKernel:
    """The Kaiser-windowed sinc from `rate_in` to `rate_out` (about 80 dB stop-band)."""

    def __init__(self, rate_in: int, rate_out: int, half_taps: int = 32):
        self.rate_in, self.rate_out = rate_in, rate_out
        self.scale = rate_in / rate_out
        """Input samples per output sample."""
        self.cutoff = min(rate_in, rate_out) / rate_in / 2 * 0.95
        """Cycles per input sample."""
        self.width = int(np.ceil(half_taps * max(1.0, self.scale)))
        """Input samples on each side of an output sample."""
        self.block = max(256, min(8192, (1 << 20) // (2 * self.width)))
        """Output samples computed at once: bounded memory at high rates."""

    def n_out(self, n_in: int) -> int:
        return int(np.floor(n_in * self.rate_out / self.rate_in))

    def last_input(self, stop: int) -> int:
        """The last input sample that output samples before `stop` use."""
        return int(np.floor((stop - 1) * self.scale)) + self.width

    def first_input(self, start: int) -> int:
        """The first input sample that output samples from `start` on use."""
        return int(np.floor(start * self.scale)) - self.width + 1

    def apply(self, window: np.ndarray, first: int, start: int, stop: int) -> np.ndarray:
        """Output samples `start` to `stop` - 1 from `window`, the input from sample `first`."""
        width = self.width
        offsets = np.arange(-width + 1, width + 1)
        t = np.arange(start, stop) * self.scale  # positions in input samples
        base = np.floor(t).astype(np.int64)
        idx = base[:, None] + offsets[None, :]  # input sample indices
        d = t[:, None] - idx  # distance from each tap
        h = 2 * self.cutoff * np.sinc(2 * self.cutoff * d)
        h *= np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (d / width) ** 2, 0.0, None))) / np.i0(
            _KAISER_BETA
        )
        out: np.ndarray = (window[idx - first] * h).sum(axis=1)
        return out


def resample(x: np.ndarray, rate_in: int, rate_out: int, half_taps: int = 32) -> np.ndarray:
    """Band-limited resampling with a Kaiser-windowed sinc (about 80 dB stop-band)."""
    if rate_in == rate_out or len(x) == 0:
        return x.astype(np.float64)
    kernel = _SincKernel(rate_in, rate_out, half_taps)
    n_out = kernel.n_out(len(x))
    width = kernel.width
    out = np.empty(n_out)
    padded = np.concatenate([np.zeros(width), x, np.zeros(width + 1)])
    for start in range(0, n_out, kernel.block):
        stop = min(start + kernel.block, n_out)
        out[start:stop] = kernel.apply(padded, -width, start, stop)
    return out


class BlockResampler:
    """`resample` of a signal that arrives in blocks: the same output, sample for sample,
    holding only the input that the next output block needs."""

    def __init__(self, rate_in: int, rate_out: int, half_taps: int = 32):
        self.kernel = _SincKernel(rate_in, rate_out, half_taps)
        self._window = np.zeros(self.kernel.width)  # `resample`'s padding before the input
        self._first = -self.kernel.width  # the input sample at _window[0]
        self._n_in = 0
        self._next_out = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add input samples; returns the output samples that are now complete."""
        self._window = np.concatenate([self._window, np.asarray(x, dtype=np.float64)])
        self._n_in += len(x)
        k = self.kernel
        ready = k.n_out(self._n_in)
        parts = []
        while True:
            start = self._next_out
            stop = start + k.block
            if stop > ready or k.last_input(stop) >= self._n_in:
                break
            parts.append(self._emit(start, stop))
        return np.concatenate(parts) if parts else np.empty(0)

    def finish(self) -> np.ndarray:
        """The input has ended: the remaining output samples."""
        k = self.kernel
        if self._n_in == 0:
            return np.empty(0)
        self._window = np.concatenate([self._window, np.zeros(k.width + 1)])
        n_out = k.n_out(self._n_in)
        parts = []
        while self._next_out < n_out:
            parts.append(self._emit(self._next_out, min(self._next_out + k.block, n_out)))
        return np.concatenate(parts) if parts else np.empty(0)

    def _emit(self, start: int, stop: int) -> np.ndarray:
        out = self.kernel.apply(self._window, self._first, start, stop)
        self._next_out = stop
        drop = self.kernel.first_input(stop) - self._first
        if drop > 0:
            self._window = self._window[drop:]
            self._first += drop
        return out


def write_wav(f: BinaryIO, samples: np.ndarray) -> None:
    """Write 16 kHz mono int16 samples as a WAV file to an open binary file."""
    with wave.open(f, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


class StreamResampler:
    """Streaming resampling of float samples in [-1, 1) to 16 kHz int16, block by block.

    Uses soxr (libsoxr's "HQ" quality: a linear-phase, anti-aliased polyphase filter) with its
    state carried across blocks, so the output is one continuous stream with no clicks at block
    boundaries; it lags the input by the filter's delay (`delay_samples`, a few milliseconds).
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE):
        import soxr  # imported here: only a microphone at another rate needs it

        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="HQ")

    @property
    def delay_samples(self) -> float:
        """The resampler's current delay, in output samples."""
        return float(self._stream.delay())

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample one block (float, mono); returns the int16 samples ready so far."""
        out = self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))
        return to_int16(out)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1) to int16, rounded and clipped."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(
        np.int16
    )
