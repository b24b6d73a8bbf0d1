"""The journal's events: one frozen dataclass per kind of record, and their one JSON form.

A record is `{"event": NAME, "seq": N, "time": T, **fields}`; `fields()` is the one place an
event becomes its JSON fields, for the event stream, the audit log and the hand-off alike, so
what the daemon publishes and what a consumer reads back are declared here together.
A field marked `omitted_when_default` is left out of the record while it has its default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

_OMIT = "omitted_when_default"


def omitted_when_default(default: Any = None) -> Any:
    """A field that the record leaves out while it holds `default`."""
    return field(default=default, metadata={_OMIT: True})


@dataclass(frozen=True, kw_only=True)
class JournalEvent:
    """The base of every event: its record's `event` name and its fields, in order."""

    event: ClassVar[str]

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get(_OMIT) and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, kw_only=True)
class Started(JournalEvent):
    event = "started"
    source: str
    models: tuple[str, ...]
    pid: int
    muted: bool


@dataclass(frozen=True, kw_only=True)
class Stopped(JournalEvent):
    event = "stopped"
    reason: str
    """`eof`, `shutdown` or `fault`."""
    saved: int


@dataclass(frozen=True, kw_only=True)
class Reloaded(JournalEvent):
    event = "reloaded"


@dataclass(frozen=True, kw_only=True)
class StateShown(JournalEvent):
    event = "state"
    state: str
    previous: str | None


@dataclass(frozen=True, kw_only=True)
class Wake(JournalEvent):
    event = "wake"
    model: str
    score: float
    offset_s: float


@dataclass(frozen=True, kw_only=True)
class WakeIgnored(JournalEvent):
    """A detection that the device's own playback explains: nothing was recorded."""

    event = "wake_ignored"
    model: str
    score: float
    offset_s: float
    reason: str
    """`playback`."""
    playback_score: float


@dataclass(frozen=True, kw_only=True)
class SavedFiles:
    """What a save wrote: the recording's id, its files and their hashes."""

    id: str
    sidecar: str
    audio: str
    audio_sha256: str | None
    written: Mapping[str, str]
    sealed: bool


@dataclass(frozen=True, kw_only=True)
class Saved(JournalEvent):
    """A saved request; `files` is None in a dry run, which writes nothing."""

    event = "saved"
    files: SavedFiles | None
    wake_word: str
    duration_s: float
    end_reason: str
    source_offset_s: float

    def fields(self) -> dict[str, Any]:
        head = (
            {"dry_run": True}
            if self.files is None
            else {f.name: getattr(self.files, f.name) for f in dataclasses.fields(self.files)}
        )
        return {
            **head,
            "wake_word": self.wake_word,
            "duration_s": self.duration_s,
            "end_reason": self.end_reason,
            "source_offset_s": self.source_offset_s,
        }


@dataclass(frozen=True)
class SavedRequest:
    """What the hand-off reads back of a `saved` record: the files of a request written."""

    id: str
    sidecar: Path
    audio: Path
    wake_word: str

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> SavedRequest | None:
        """The request a record saved; None for another event or a dry run."""
        if record.get("event") != Saved.event or record.get("dry_run"):
            return None
        return cls(
            record["id"],
            Path(record["sidecar"]),
            Path(record["audio"]),
            record.get("wake_word") or "",
        )


@dataclass(frozen=True, kw_only=True)
class Transcribed(JournalEvent):
    """A request's transcript (the text and its details), or why there is none."""

    event = "transcribed"
    id: str
    transcript: Mapping[str, Any] | None = omitted_when_default()
    error: str | None = omitted_when_default()


@dataclass(frozen=True, kw_only=True)
class Discarded(JournalEvent):
    event = "discarded"
    reason: str
    wake_word: str


@dataclass(frozen=True, kw_only=True)
class Deleted(JournalEvent):
    event = "deleted"
    id: str
    why: str
    """`retention`, or `transcribed` (keep_audio = "until_transcribed")."""
    audio_only: bool = omitted_when_default(False)


@dataclass(frozen=True, kw_only=True)
class Muted(JournalEvent):
    """`uid`: who asked over the control socket (None: the switch file, the mute switch or the
    mute button); `switch`: the physical mute switch did it; `button`: the mute button."""

    event = "muted"
    uid: int | None
    switch: bool = omitted_when_default(False)
    button: bool = omitted_when_default(False)


@dataclass(frozen=True, kw_only=True)
class Unmuted(JournalEvent):
    event = "unmuted"
    uid: int | None
    switch: bool = omitted_when_default(False)
    button: bool = omitted_when_default(False)


@dataclass(frozen=True, kw_only=True)
class DeviceLost(JournalEvent):
    event = "device_lost"
    reason: str


@dataclass(frozen=True, kw_only=True)
class DeviceRestored(JournalEvent):
    event = "device_restored"


EVENT_TYPES: tuple[type[JournalEvent], ...] = (
    Started,
    Stopped,
    Reloaded,
    StateShown,
    Wake,
    WakeIgnored,
    Saved,
    Transcribed,
    Discarded,
    Deleted,
    Muted,
    Unmuted,
    DeviceLost,
    DeviceRestored,
)
EVENTS = tuple(t.event for t in EVENT_TYPES)
"""Every record's `event` name."""
