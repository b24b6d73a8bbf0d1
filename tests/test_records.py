"""The journal's typed events: each one's record, key for key and in order."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from recorder import records
from recorder.journal import Journal
from recorder.records import SavedFiles, SavedRequest

FILES = SavedFiles(
    id="20261128T035801.123Z",
    sidecar="/r/20261128T035801.123Z.json",
    audio="/r/20261128T035801.123Z.wav",
    audio_sha256="ab",
    written={"20261128T035801.123Z.wav": "cd"},
    sealed=False,
)
SUMMARY = {"wake_word": "hey_jarvis", "duration_s": 2.5, "end_reason": "silence"}

CASES = [
    (
        records.Started(source="mic", models=("hey_jarvis", "alexa"), pid=7, muted=False),
        {"source": "mic", "models": ["hey_jarvis", "alexa"], "pid": 7, "muted": False},
    ),
    (records.Stopped(reason="eof", saved=2), {"reason": "eof", "saved": 2}),
    (records.Reloaded(), {}),
    (
        records.StateShown(state="listening", previous=None),
        {"state": "listening", "previous": None},
    ),
    (
        records.Wake(model="alexa", score=0.9, offset_s=1.2),
        {"model": "alexa", "score": 0.9, "offset_s": 1.2},
    ),
    (
        records.WakeIgnored(
            model="alexa", score=0.7, offset_s=2.4, reason="playback", playback_score=0.98
        ),
        {
            "model": "alexa",
            "score": 0.7,
            "offset_s": 2.4,
            "reason": "playback",
            "playback_score": 0.98,
        },
    ),
    (
        records.Saved(files=FILES, source_offset_s=1.0, **SUMMARY),
        {
            "id": FILES.id,
            "sidecar": FILES.sidecar,
            "audio": FILES.audio,
            "audio_sha256": "ab",
            "written": {"20261128T035801.123Z.wav": "cd"},
            "sealed": False,
            **SUMMARY,
            "source_offset_s": 1.0,
        },
    ),
    (
        records.Saved(files=None, source_offset_s=1.0, **SUMMARY),
        {"dry_run": True, **SUMMARY, "source_offset_s": 1.0},
    ),
    (
        records.Transcribed(id="X", transcript={"text": "lights on"}),
        {"id": "X", "transcript": {"text": "lights on"}},
    ),
    (records.Transcribed(id="X", error="timed out"), {"id": "X", "error": "timed out"}),
    (
        records.Discarded(reason="no speech", wake_word="alexa"),
        {"reason": "no speech", "wake_word": "alexa"},
    ),
    (records.Deleted(id="X", why="retention"), {"id": "X", "why": "retention"}),
    (
        records.Deleted(id="X", why="transcribed", audio_only=True),
        {"id": "X", "why": "transcribed", "audio_only": True},
    ),
    (records.Muted(uid=1000), {"uid": 1000}),
    (records.Muted(uid=None, switch=True), {"uid": None, "switch": True}),
    (records.Unmuted(uid=None), {"uid": None}),
    (records.Unmuted(uid=None, switch=True), {"uid": None, "switch": True}),
    (records.Muted(uid=None, button=True), {"uid": None, "button": True}),
    (records.Unmuted(uid=None, button=True), {"uid": None, "button": True}),
    (records.DeviceLost(reason="stalled"), {"reason": "stalled"}),
    (records.DeviceRestored(), {}),
]


@pytest.mark.parametrize(("event", "fields"), CASES, ids=lambda c: getattr(c, "event", ""))
def test_each_event_becomes_its_record_key_for_key_in_order(event, fields):
    journal, got = Journal(), []
    journal.subscribe(got.append)
    journal.publish(event)
    [record] = got
    assert list(record)[:3] == ["event", "seq", "time"] and record["event"] == event.event
    body = {k: v for k, v in record.items() if k not in ("event", "seq", "time")}
    assert json.dumps(body) == json.dumps(fields)  # the same keys in the same order
    assert dataclasses.is_dataclass(event)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.x = 1  # type: ignore[attr-defined]


def test_every_event_has_a_case_and_a_name_of_its_own():
    assert {type(e) for e, _ in CASES} == set(records.EVENT_TYPES)
    assert len(set(records.EVENTS)) == len(records.EVENTS)


def test_a_typed_event_carries_its_own_fields():
    with pytest.raises(TypeError):
        Journal().publish(records.Reloaded(), extra=1)


def test_the_hand_off_reads_back_what_a_save_published():
    journal, got = Journal(), []
    journal.subscribe(got.append)
    journal.publish(records.Saved(files=FILES, source_offset_s=1.0, **SUMMARY))
    journal.publish(records.Saved(files=None, source_offset_s=1.0, **SUMMARY))
    journal.publish(records.Deleted(id="X", why="retention"))
    requests = [SavedRequest.of(r) for r in got]
    assert requests == [
        SavedRequest(FILES.id, Path(FILES.sidecar), Path(FILES.audio), "hey_jarvis"),
        None,  # a dry run wrote nothing
        None,
    ]


def test_the_audit_keeps_only_fields_the_events_have():
    from recorder.audit import FIELDS

    keys: dict[str, set[str]] = {}
    for event, fields in CASES:
        keys.setdefault(event.event, set()).update(fields)
    for name, kept in FIELDS.items():
        assert name in records.EVENTS and set(kept) <= keys[name], name
