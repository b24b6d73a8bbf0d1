"""Recordings on disk: atomic pairs, permissions, crash leftovers, write failures."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import read_pcm, small_tmpfs

from recorder.errors import RecorderError
from recorder.storage import Storage, StorageError

AUDIO = (np.arange(16000) % 2000 - 1000).astype(np.int16)


def test_save_writes_a_private_bit_exact_pair(tmp_path):
    d = tmp_path / "rec"
    s = Storage(d)
    s.prepare()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    rec = s.save("20261125T101010.000Z", AUDIO, {"wake_word": "alexa"})
    assert sorted(p.name for p in d.iterdir()) == [
        "20261125T101010.000Z.json",
        "20261125T101010.000Z.wav",
    ]
    for p in (rec.wav, rec.sidecar):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    meta = json.loads(rec.sidecar.read_text())
    assert meta["id"] == "20261125T101010.000Z" and meta["audio_file"] == rec.wav.name
    assert np.array_equal(read_pcm(rec.wav), AUDIO)
    assert [r.id for r in s.list()] == [rec.id]


def test_same_time_gets_a_distinct_id_that_sorts_after(tmp_path):
    s = Storage(tmp_path)
    s.prepare()
    ids = [s.save("20261125T101010.000Z", AUDIO, {}).id for _ in range(3)]
    assert ids == ["20261125T101010.000Z", "20261125T101010.000Z_1", "20261125T101010.000Z_2"]
    assert [r.id for r in s.list()] == ids
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == [f"{i}.wav" for i in ids]


@pytest.fixture
def small_disk(tmp_path):
    """A real 96 KiB tmpfs: room for two seconds of audio, not three."""
    with small_tmpfs(tmp_path / "small", 96) as mnt:
        yield mnt


def test_disk_full_drops_that_recording_only(small_disk):
    s = Storage(small_disk / "rec")
    s.prepare()
    first = s.save("A", AUDIO, {})
    second = s.save("B", AUDIO, {})
    with pytest.raises(StorageError, match="No space left"):
        s.save("C", AUDIO, {})
    assert sorted(p.name for p in (small_disk / "rec").iterdir()) == [
        "A.json",
        "A.wav",
        "B.json",
        "B.wav",
    ]
    assert np.array_equal(read_pcm(first.wav), AUDIO)
    second.wav.unlink()
    second.sidecar.unlink()
    assert s.save("C", AUDIO, {}).id == "C"  # works again once there is room


def test_crash_leftovers_are_completed_or_removed(tmp_path):
    s = Storage(tmp_path)
    s.prepare()
    good = s.save("A", AUDIO, {})
    # a crash between the two renames: sidecar in place, WAV still a complete temp file
    b = s.save("B", AUDIO, {})
    os.rename(b.wav, tmp_path / ".B.wav.tmp")
    # a crash before the renames: both temp files
    (tmp_path / ".C.wav.tmp").write_bytes(b"partial")
    (tmp_path / ".C.json.tmp").write_text("{")
    # an interrupted deletion: sidecar whose WAV is gone
    d = s.save("D", AUDIO, {})
    d.wav.unlink()
    s.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.json", "A.wav", "B.json", "B.wav"]
    assert np.array_equal(read_pcm(tmp_path / "B.wav"), AUDIO)
    assert [r.id for r in s.list()] == [good.id, "B"]


@pytest.mark.parametrize("kind", ["file", "missing-parent-is-file"])
def test_unusable_directory_is_a_user_error(tmp_path, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    target = blocker if kind == "file" else blocker / "rec"
    with pytest.raises(RecorderError, match=str(target)):
        Storage(target).prepare()


def test_update_meta_rewrites_the_sidecar_atomically_and_keeps_the_audio(tmp_path):
    s = Storage(tmp_path)
    s.prepare()
    rec = s.save("A", AUDIO, {"wake_word": "alexa"})
    wav_before = rec.wav.read_bytes()
    updated = s.update_meta(rec, transcript={"text": "lights on"})
    assert json.loads(rec.sidecar.read_text()) == updated.meta
    assert (
        updated.meta["transcript"] == {"text": "lights on"} and updated.meta["wake_word"] == "alexa"
    )
    assert rec.wav.read_bytes() == wav_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.json", "A.wav"]  # no temp left


def test_dropped_audio_leaves_a_sidecar_that_says_so_and_survives_recovery(tmp_path):
    s = Storage(tmp_path)
    s.prepare()
    rec = s.save("A", AUDIO, {})
    kept = s.drop_audio(rec, "transcribed")
    assert not rec.wav.exists() and not kept.has_audio
    assert json.loads(rec.sidecar.read_text())["audio_deleted"] == "transcribed"
    # a crash between the sidecar's rewrite and the WAV's removal: recovery removes the WAV
    b = s.save("B", AUDIO, {})
    s.update_meta(b, audio_file=None, audio_deleted="transcribed")
    s.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.json", "B.json"]
    assert [(r.id, r.has_audio) for r in s.list()] == [("A", False), ("B", False)]
    assert s.list()[0].size_bytes() == rec.sidecar.stat().st_size
    assert [r.id for r in s.enforce(0, 1, 0, datetime.now(UTC))] == ["A"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["B.json"]
