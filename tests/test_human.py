"""Values as a person reads them, and the lines `recorder status` and `recorder list` make of
them."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from recorder import human
from recorder.cli_daemon import status_lines
from recorder.cli_recordings import LIST_JSON_KEYS, list_entry, list_lines
from recorder.storage import Storage


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.0 s"),
        (0.14, "0.1 s"),
        (9.96, "10.0 s"),
        (42.7, "42 s"),
        (65, "1 min 05 s"),
        (3 * 3600 + 12 * 60 + 59, "3 h 12 min"),
        (2 * 86400 + 3 * 3600, "2 d 03 h"),
        (None, "?"),
        (-1.0, "?"),
        (float("nan"), "?"),
    ],
)
def test_durations(seconds, text):
    assert human.duration(seconds) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (4_123_456, "4.1 MB"),
        (3 * 10**12, "3000.0 GB"),
    ],
)
def test_sizes_count_in_the_units_of_max_total_mb(n, text):
    assert human.size(n) == text


def test_values_read_as_words():
    assert human.value(True) == "yes" and human.value(False) == "no"
    assert human.value(["hey_jarvis", "alexa"]) == "hey_jarvis, alexa"
    assert human.value([]) == "(none)" and human.value(None) == "-"
    assert human.value({"transcribed": 2, "skipped": 0}) == "transcribed 2, skipped 0"
    assert human.value("a\x1b[2Jb\nc") == "a?[2Jb c"  # no terminal escapes from a file


def test_numbers_are_finite_and_never_booleans():
    assert human.number(3) == 3.0 and human.number(0.5) == 0.5
    assert [human.number(v) for v in (True, "1", None, float("inf"), 10**400)] == [None] * 5


def test_times_are_local(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30, no summer time
    time.tzset()
    try:
        t = datetime(2026, 12, 7, 6, 1, 2, 123456, tzinfo=UTC)
        assert human.local_time(t) == "2026-12-07 11:31:02"
        assert human.local_iso(t) == "2026-12-07T11:31:02.123+05:30"
        other = datetime(2026, 12, 7, 1, 1, 2, tzinfo=timezone(timedelta(hours=-5)))
        assert human.local_time(other) == "2026-12-07 11:31:02"
        edge = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)  # no local time: shown as it is
        assert human.local_iso(edge) == "9999-12-31T23:00:00.000+00:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_aligned_puts_the_values_in_one_column():
    assert human.aligned([("state", "listening"), ("last audio", "0.1 s ago"), ("x", "")]) == [
        "state:      listening",
        "last audio: 0.1 s ago",
        "x:",
    ]


def test_table_aligns_columns_and_right_aligns_numbers():
    lines = human.table(
        ["A", "NUM", "LAST"], [["xyz", "1.5", "a b"], ["q", "12.25", "c"]], right=frozenset({1})
    )
    assert lines == ["A      NUM  LAST", "xyz    1.5  a b", "q    12.25  c"]


STATUS = {
    "running": True,
    "state": "listening",
    "muted": False,
    "recordings": 12,
    "recordings_bytes": 4_123_456,
    "saved_since_start": 3,
    "uptime_s": 11575.2,
    "audio_s": 11570.0,
    "source": "mic:default",
    "models": ["hey_jarvis", "alexa"],
    "recordings_dir": "/var/lib/recorder/recordings",
    "pid": 4242,
    "last_audio_at": "2026-12-07T06:01:02.100Z",
    "last_audio_s_ago": 0.1,
    "handoff": {"commands_run": 3, "waiting": 0},
    "subscribers": 1,
    "last_event_seq": 57,
    "something_new": [1, 2],
}


def test_status_lines(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert status_lines(STATUS) == [
        "state:             listening",
        "running:           yes (pid 4242)",
        "muted:             no",
        "models:            hey_jarvis, alexa",
        "source:            mic:default",
        "uptime:            3 h 12 min",
        "audio taken in:    3 h 12 min",
        "last audio:        0.1 s ago (2026-12-07 06:01:02)",
        "recordings:        12 (4.1 MB) in /var/lib/recorder/recordings",
        "saved since start: 3",
        "hand-off:          commands_run 3, waiting 0",
        "event subscribers: 1",
        "last event:        57",
        "something new:     1, 2",
    ]


def test_status_lines_without_a_daemon_or_audio():
    assert status_lines({"state": "off", "muted": True, "running": False}) == [
        "state:   off",
        "running: no (no daemon answered on its control socket)",
        "muted:   yes",
    ]
    lines = status_lines({**STATUS, "last_audio_at": None, "last_audio_s_ago": None})
    assert "last audio:        none yet" in lines


def test_list_entries_and_lines_of_each_kind(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    storage = Storage(tmp_path / "rec")
    storage.prepare()
    audio = np.zeros(16000 * 2, dtype=np.int16)
    base = {"wake_word": "hey_jarvis", "score": 0.87654, "duration_s": 2.0, "end_reason": "silence"}
    kept = storage.save("a", audio, {**base, "started_at": "2026-12-07T06:00:00.000Z"})
    said = storage.save(
        "b",
        audio,
        {
            **base,
            "started_at": "2026-12-07T06:01:00.000Z",
            "transcript": {"text": "play some music", "program": "p", "seconds": 0.2},
        },
    )
    gone = storage.save("c", audio, {**base, "started_at": "2026-12-07T06:02:00.000Z"})
    storage.drop_audio(gone, "transcribed")
    entries = [list_entry(r) for r in storage.list()]
    assert [list(e) for e in entries] == [list(LIST_JSON_KEYS)] * 3
    assert [e["id"] for e in entries] == ["a", "b", "c"]
    assert entries[0]["started_at"] == "2026-12-07T06:00:00.000+00:00"
    assert entries[0]["audio"] == str(kept.wav.absolute()) and entries[0]["score"] == 0.87654
    assert entries[1]["transcript"] == "play some music" and entries[1]["audio"] is not None
    assert entries[2]["audio"] is None and entries[2]["audio_deleted"] == "transcribed"
    lines = list_lines(entries)
    assert lines[0] == "ID  TIME                 WAKE WORD   SCORE  LENGTH  TRANSCRIPT OR AUDIO"
    assert lines[1] == f"a   2026-12-07 06:00:00  hey_jarvis  0.877   2.0 s  {kept.wav.absolute()}"
    assert lines[2] == "b   2026-12-07 06:01:00  hey_jarvis  0.877   2.0 s  play some music"
    assert lines[3] == "c   2026-12-07 06:02:00  hey_jarvis  0.877   2.0 s  (audio deleted)"
    total = sum(e["size_bytes"] for e in entries)
    assert total == sum(p.stat().st_size for p in (tmp_path / "rec").iterdir())
    assert lines[4] == f"3 recordings, 6.0 s, {human.size(total)}" and len(lines) == 5
    assert said.id == "b"


def test_list_lines_of_odd_sidecars(tmp_path: Path):
    rec = tmp_path / "rec"
    rec.mkdir(mode=0o700)
    (rec / "d.wav").write_bytes(b"RIFF")
    (rec / "d.json").write_text(
        '{"id": "d", "duration_s": "long", "wake_word": null, "score": true,'
        ' "transcript": {"text": "x\\u001b[2Jy"}}'
    )
    [entry] = [list_entry(r) for r in Storage(rec).list()]
    assert entry["duration_s"] is None and entry["wake_word"] is None and entry["score"] is None
    header, row, totals = list_lines([entry])
    assert re.fullmatch(
        r"d   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  -              -       \?  x\?\[2Jy", row
    )
    assert totals == "1 recording, 0.0 s, " + human.size(entry["size_bytes"])
