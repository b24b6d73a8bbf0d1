"""A saved request's metadata (the sidecar's record), built and read back in one place, and the
id format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from recorder import __version__
from recorder.audio import FRAME_SAMPLES, SAMPLE_RATE, frames_to_s
from recorder.machine import UtteranceReady

if TYPE_CHECKING:
    from recorder.sources.base import Gap


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
    gaps: tuple[tuple[float, int], ...] = ()
    """(offset_s, samples): `samples` were lost just before this point of the saved audio."""
    recorder_version: str = __version__
    """The version that wrote the sidecar."""

    @classmethod
    def of(
        cls,
        event: UtteranceReady,
        run_started_at: datetime,
        threshold: float,
        source: str,
        extra: Mapping[str, Any] | None = None,
        gaps: Sequence[Gap] = (),
    ) -> RecordingMeta:
        """The frames count delivered samples only; the samples the source lost (`gaps`)
        are added back to the offsets, so they stay true to the source's time."""
        start = event.start_frame * FRAME_SAMPLES
        end = start + len(event.audio)
        wake_end = (event.wake.frame_index + 1) * FRAME_SAMPLES

        def lost_before(position: int) -> int:
            return sum(g.samples for g in gaps if g.position <= position)

        offset_s = frames_to_s(event.start_frame) + lost_before(start) / SAMPLE_RATE
        inside = tuple(
            (round((g.position - start) / SAMPLE_RATE, 4), g.samples)
            for g in gaps
            if start < g.position < end
        )
        return cls(
            wake_word=event.wake.wake_word,
            score=event.wake.score,
            threshold=threshold,
            started_at=run_started_at + timedelta(seconds=offset_s),
            samples=len(event.audio),
            end_reason=event.end_reason.value,
            source=source,
            source_offset_s=offset_s,
            wake_offset_s=(wake_end + lost_before(wake_end)) / SAMPLE_RATE,
            extra=dict(extra or {}),
            gaps=inside,
        )

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RecordingMeta:
        """A sidecar's record read back. The keys other parts wrote (storage's id and hashes,
        the chime's and the device's keys, a transcript) stay in `extra`, so `to_json` gives
        the same record again. Raises ValueError when a field is missing or of the wrong kind.
        """
        try:
            started_at = datetime.fromisoformat(_field(d, "started_at", str))
            gaps = tuple(
                (float(_field(g, "offset_s", float)), _field(g, "samples", int))
                for g in d.get("gaps", ())
            )
            return cls(
                wake_word=_field(d, "wake_word", str),
                score=float(_field(d, "score", float)),
                threshold=float(_field(d, "threshold", float)),
                started_at=started_at,
                samples=_field(d, "samples", int),
                end_reason=_field(d, "end_reason", str),
                source=_field(d, "source", str),
                source_offset_s=float(_field(d, "source_offset_s", float)),
                wake_offset_s=float(_field(d, "wake_offset_s", float)),
                extra={k: v for k, v in d.items() if k not in _WRITTEN},
                gaps=gaps,
                recorder_version=_field(d, "recorder_version", str),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a recording's sidecar record: {e}") from None

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
            "recorder_version": self.recorder_version,
            **(
                {"gaps": [{"offset_s": o, "samples": n} for o, n in self.gaps]} if self.gaps else {}
            ),
            **self.extra,
        }


_WRITTEN = frozenset(
    (
        "wake_word",
        "score",
        "threshold",
        "started_at",
        "duration_s",
        "sample_rate",
        "channels",
        "sample_format",
        "samples",
        "end_reason",
        "source",
        "source_offset_s",
        "wake_offset_s",
        "recorder_version",
        "gaps",
    )
)
"""The keys `to_json` writes from the fields; every other key of a sidecar is `extra`."""


def _field(d: Mapping[str, Any], key: str, kind: type) -> Any:
    value = d[key]
    ok = isinstance(value, int | float) if kind is float else isinstance(value, kind)
    if not ok or isinstance(value, bool):
        raise TypeError(f"{key} is not {'a number' if kind is float else kind.__name__}")
    return value
