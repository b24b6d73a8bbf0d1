"""Speech to text over the Wyoming protocol, on a Unix socket only.

One transcription is one connection: `describe` (to learn the server's program name), then
`transcribe`, `audio-start`, the samples as `audio-chunk`s of 16 kHz s16le mono, `audio-stop`,
and the server's `transcript`. The whole exchange has one deadline. The `wyoming` package
(`wakeword-recorder[wyoming]`) is imported only here, and only when a transcription runs.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.audio import SAMPLE_RATE
from recorder.errors import RecorderError

if TYPE_CHECKING:
    import asyncio

CHUNK_SAMPLES = 1024
"""Samples per `audio-chunk` (64 ms)."""
MAX_TEXT_CHARS = 100_000


class TranscriptionError(Exception):
    """The server could not be reached, did not answer in time, or answered nonsense."""


@dataclass(frozen=True)
class Transcript:
    text: str
    program: str | None
    seconds: float
    """Wall-clock time from connecting to the transcript."""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "program": self.program, "seconds": round(self.seconds, 3)}


def require_wyoming() -> None:
    """Exit 2 at start when the optional package is missing."""
    try:
        import wyoming.client  # noqa: F401
    except ImportError:
        raise RecorderError(
            "[handoff] wyoming needs the wyoming package: pip install 'wakeword-recorder[wyoming]'"
        ) from None


def socket_path(uri: str) -> str:
    if not uri.startswith("unix://"):
        raise RecorderError(f"[handoff] wyoming: only unix:///PATH is accepted, got {uri!r}")
    return uri[len("unix://") :]


def transcribe(uri: str, samples: np.ndarray, timeout_s: float, language: str = "") -> Transcript:
    """Send exactly `samples` (int16, 16 kHz mono) and return the server's transcript."""
    import asyncio  # here, not at the top: asyncio costs the daemon ~5 MB of memory

    path = socket_path(uri)
    started = time.monotonic()
    try:
        text, program = asyncio.run(asyncio.wait_for(_exchange(path, samples, language), timeout_s))
    except TimeoutError:
        raise TranscriptionError(f"no transcript within {timeout_s:g} s") from None
    except (ConnectionError, FileNotFoundError, OSError) as e:
        raise TranscriptionError(
            f"cannot reach {uri}: {getattr(e, 'strerror', None) or e}"
        ) from None
    except TranscriptionError:
        raise
    except Exception as e:  # a garbled stream: junk JSON, wrong types, ...
        raise TranscriptionError(f"unreadable answer from {uri}: {e.__class__.__name__}") from None
    return Transcript(text, program, time.monotonic() - started)


MAX_EVENT_BYTES = 1 << 20
"""An event's data or payload longer than this is not an answer to a transcription."""


async def _read_event(reader: asyncio.StreamReader) -> Any:
    """The next event, None at the end of the stream; TranscriptionError for anything that is
    not a Wyoming event (the wyoming package's reader takes junk for the end)."""
    import asyncio

    from wyoming.event import Event

    try:
        line = await reader.readline()
    except ValueError:  # a line over the reader's limit
        raise TranscriptionError("the server sent an over-long line") from None
    if not line:
        return None
    try:
        header = json.loads(line)
        if not isinstance(header, dict) or not isinstance(header.get("type"), str):
            raise ValueError
        data = header.get("data") or {}
        data_length = int(header.get("data_length") or 0)
        payload_length = int(header.get("payload_length") or 0)
        if not (0 <= data_length <= MAX_EVENT_BYTES and 0 <= payload_length <= MAX_EVENT_BYTES):
            raise ValueError
        if data_length:
            data = {**data, **json.loads(await reader.readexactly(data_length))}
        payload = await reader.readexactly(payload_length) if payload_length else None
        if not isinstance(data, dict):
            raise ValueError
    except (ValueError, TypeError, asyncio.IncompleteReadError):
        raise TranscriptionError("the server sent something that is not a Wyoming event") from None
    return Event(type=header["type"], data=data, payload=payload)


async def _exchange(path: str, samples: np.ndarray, language: str) -> tuple[str, str | None]:
    import asyncio

    from wyoming.asr import Transcribe
    from wyoming.asr import Transcript as WyTranscript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.event import async_write_event
    from wyoming.info import Describe, Info

    pcm = np.ascontiguousarray(samples, dtype="<i2").tobytes()
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        await async_write_event(Describe().event(), writer)
        program = None
        while True:
            event = await _read_event(reader)
            if event is None:
                raise TranscriptionError("the server closed the connection before its info")
            if Info.is_type(event.type):
                info = Info.from_event(event)
                names = [p.name for p in info.asr if p.installed] or [p.name for p in info.asr]
                program = names[0] if names else None
                break
        await async_write_event(Transcribe(language=language or None).event(), writer)
        fmt = {"rate": SAMPLE_RATE, "width": 2, "channels": 1}
        await async_write_event(AudioStart(**fmt).event(), writer)
        step = CHUNK_SAMPLES * 2
        for i in range(0, len(pcm), step):
            await async_write_event(AudioChunk(audio=pcm[i : i + step], **fmt).event(), writer)
        await async_write_event(AudioStop().event(), writer)
        while True:
            event = await _read_event(reader)
            if event is None:
                raise TranscriptionError("the server closed the connection without a transcript")
            if WyTranscript.is_type(event.type):
                text = WyTranscript.from_event(event).text
                if not isinstance(text, str):
                    raise TranscriptionError("the transcript has no text")
                return text[:MAX_TEXT_CHARS], program
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
