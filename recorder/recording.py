"""A saved request's metadata (the sidecar's record), built in one place, and the id format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from recorder import __version__
from recorder.audio import SAMPLE_RATE, frames_to_s
from recorder.machine import UtteranceReady


def utc_iso(t: datetime) -> str:
    """`2026-11-28T03:58:01.123Z`: ISO 8601, UTC, milliseconds."""
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def time_id(t: datetime) -> str:
    """`20261128T035801.123Z`: a UTC time as an id, so that names sort by time."""
    return t.strftime("%Y%m%dT%H%M%S.") + f"{t.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class RecordingMeta:
    """What the sidecar says of a request (storage adds `id`, `audio_file`, `audio_sha256`)."""

    wake_word: str
    score: float
    threshold: float
    started_at: datetime
    """The first saved sample's time: the run's start plus its offset in the source."""
    samples: int
    end_reason: str
    source: str
    source_offset_s: float
    """Where the first saved sample sits in the source (seconds since it started)."""
    wake_offset_s: float
    """The end of the frame that detected the wake word, in the same time base."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Optional keys of other parts: the chime's offset and duration, the device's format."""

    @classmethod
    def of(
        cls,
        event: UtteranceReady,
        run_started_at: datetime,
        threshold: float,
        source: str,
        extra: Mapping[str, Any] | None = None,
    ) -> RecordingMeta:
        offset_s = frames_to_s(event.start_frame)
        return cls(
            wake_word=event.wake.wake_word,
            score=event.wake.score,
            threshold=threshold,
            started_at=run_started_at + timedelta(seconds=offset_s),
            samples=len(event.audio),
            end_reason=event.end_reason.value,
            source=source,
            source_offset_s=offset_s,
            wake_offset_s=frames_to_s(event.wake.frame_index + 1),
            extra=dict(extra or {}),
        )

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def id(self) -> str:
        return time_id(self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "wake_word": self.wake_word,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "started_at": utc_iso(self.started_at),
            "duration_s": round(self.duration_s, 4),
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "sample_format": "s16le",
            "samples": self.samples,
            "end_reason": self.end_reason,
            "source": self.source,
            "source_offset_s": round(self.source_offset_s, 4),
            "wake_offset_s": round(self.wake_offset_s, 4),
            "recorder_version": __version__,
            **self.extra,
        }
