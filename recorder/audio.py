"""Frames, WAV reading and writing, and conversion to 16 kHz mono int16."""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
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


def read_wav(path: Path, content: bytes | None = None) -> np.ndarray:
    """Read any supported WAV file (or its bytes, `content`, already in memory) as 16 kHz mono
    int16.

    16 kHz mono 16-bit files are returned bit-exact; other rates are resampled and channels
    averaged. Anything that cannot be read correctly raises RecorderError.
    """
    name = str(path)
    try:
        with open(path, "rb") if content is None else io.BytesIO(content) as f:
            info = read_wav_info(f, name)
            raw = f.read(info.n_frames * info.sample_width * info.channels)
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
    if (
        info.sample_rate == SAMPLE_RATE
        and info.channels == 1
        and info.sample_width == 2
        and not info.is_float
    ):
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16)
    data = _decode(raw, info).mean(axis=1)
    if info.sample_rate != SAMPLE_RATE:
        data = resample(data, info.sample_rate, SAMPLE_RATE)
    samples: np.ndarray = np.clip(np.round(data * 32768.0), -32768, 32767).astype(np.int16)
    return samples


def resample(x: np.ndarray, rate_in: int, rate_out: int, half_taps: int = 32) -> np.ndarray:
    """Band-limited resampling with a Kaiser-windowed sinc (about 80 dB stop-band)."""
    if rate_in == rate_out or len(x) == 0:
        return x.astype(np.float64)
    n_out = int(np.floor(len(x) * rate_out / rate_in))
    cutoff = min(rate_in, rate_out) / rate_in / 2 * 0.95  # cycles per input sample
    scale = rate_in / rate_out  # input samples per output sample
    width = int(np.ceil(half_taps * max(1.0, scale)))
    beta = 8.0
    out = np.empty(n_out)
    offsets = np.arange(-width + 1, width + 1)
    padded = np.concatenate([np.zeros(width), x, np.zeros(width + 1)])
    block = max(256, min(8192, (1 << 20) // (2 * width)))  # bounded memory at high rates
    for start in range(0, n_out, block):
        t = np.arange(start, min(start + block, n_out)) * scale  # positions in input samples
        base = np.floor(t).astype(np.int64)
        idx = base[:, None] + offsets[None, :]  # input sample indices
        d = t[:, None] - idx  # distance from each tap
        h = 2 * cutoff * np.sinc(2 * cutoff * d)
        h *= np.i0(beta * np.sqrt(np.clip(1.0 - (d / width) ** 2, 0.0, None))) / np.i0(beta)
        out[start : start + len(t)] = (padded[idx + width] * h).sum(axis=1)
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
