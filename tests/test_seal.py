"""Sealed storage: age ciphertext only, decrypted bit-exact by the real `age` tool."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import read_pcm, small_tmpfs

from recorder.errors import RecorderError
from recorder.seal import Sealer, Unsealer, keygen, sealer_for
from recorder.storage import Storage, StorageError

AUDIO = (np.arange(16000) % 2000 - 1000).astype(np.int16)
RID = "20261125T101010.000Z"

needs_age = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is not installed")


@pytest.fixture
def key(tmp_path):
    identity, recipient = keygen()
    path = tmp_path / "key.txt"
    path.write_text(f"# recipient: {recipient}\n{identity}\n")
    return path, recipient


def age_decrypt(key_path, path) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(key_path), str(path)], check=True, capture_output=True
    ).stdout


def sealed_storage(directory, recipient) -> Storage:
    s = Storage(directory, Sealer([recipient]))
    s.prepare()
    return s


@needs_age
def test_sealed_pair_decrypts_bit_exact_with_the_age_tool(tmp_path, key):
    key_path, recipient = key
    d = tmp_path / "rec"
    s = sealed_storage(d, recipient)
    rec = s.save(RID, AUDIO, {"wake_word": "alexa", "started_at": "2026-11-25T10:10:10.000Z"})
    assert sorted(p.name for p in d.iterdir()) == [
        f"{RID}.json",
        f"{RID}.json.age",
        f"{RID}.wav.age",
    ]
    for p in d.iterdir():
        assert p.stat().st_mode & 0o777 == 0o600
    assert b"RIFF" not in rec.wav.read_bytes() and AUDIO.tobytes()[:64] not in rec.wav.read_bytes()
    wav = tmp_path / "out.wav"
    wav.write_bytes(age_decrypt(key_path, rec.wav))
    assert np.array_equal(read_pcm(wav), AUDIO)
    full = json.loads(age_decrypt(key_path, rec.sealed_meta))
    assert full["wake_word"] == "alexa" and full["audio_sha256"] == rec.meta["audio_sha256"]
    index = json.loads(rec.sidecar.read_text())
    assert index == {
        "id": RID,
        "started_at": "2026-11-25T10:10:10.000Z",
        "audio_file": f"{RID}.wav.age",
        "meta_file": f"{RID}.json.age",
        "encrypted": True,
    }
    assert [r.id for r in s.list()] == [RID] and s.list()[0].sealed
    assert set(rec.written) == {f"{RID}.json", f"{RID}.json.age", f"{RID}.wav.age"}
    for name, digest in rec.written.items():
        assert hashlib.sha256((d / name).read_bytes()).hexdigest() == digest


def test_sealed_delete_and_retention_remove_all_three(tmp_path, key):
    _, recipient = key
    d = tmp_path / "rec"
    s = sealed_storage(d, recipient)
    a = s.save("A", AUDIO, {"started_at": "2020-01-01T00:00:00.000Z"})
    s.save("B", AUDIO, {"started_at": "2099-01-01T00:00:00.000Z"})
    s.delete(s.list()[0])
    assert sorted(p.name for p in d.iterdir()) == ["B.json", "B.json.age", "B.wav.age"]
    assert not a.wav.exists()
    s.save("C", AUDIO, {"started_at": "2099-01-01T00:00:01.000Z"})
    gone = s.enforce(0, 1, 0, datetime.now(UTC))
    assert [r.id for r in gone] == ["B"]
    assert sorted(p.name for p in d.iterdir()) == ["C.json", "C.json.age", "C.wav.age"]
    # a plain Storage (the CLI's delete and prune) handles sealed recordings just as well
    Storage(d).delete(Storage(d).list()[0])
    assert list(d.iterdir()) == []


@needs_age
def test_update_meta_reseals_and_drop_audio_keeps_the_sealed_sidecar(tmp_path, key):
    key_path, recipient = key
    d = tmp_path / "rec"
    s = sealed_storage(d, recipient)
    rec = s.save(RID, AUDIO, {"wake_word": "alexa"})
    rec = s.update_meta(rec, transcript="turn on the light")
    assert "transcript" not in rec.sidecar.read_text()
    assert json.loads(age_decrypt(key_path, rec.sealed_meta))["transcript"] == "turn on the light"
    rec = s.drop_audio(rec, "keep_audio")
    assert not rec.wav.exists()
    assert json.loads(rec.sidecar.read_text())["audio_deleted"] == "keep_audio"
    s.recover()
    [listed] = s.list()
    assert not listed.has_audio and listed.sealed_meta.exists()
    with pytest.raises(StorageError, match="sealed"):
        s.update_meta(listed, transcript="x")  # only the index is readable here


def test_sealed_crash_leftovers_are_completed_or_removed(tmp_path, key):
    _, recipient = key
    d = tmp_path / "rec"
    s = sealed_storage(d, recipient)
    s.save("A", AUDIO, {})
    b = s.save("B", AUDIO, {})
    os.rename(b.wav, d / ".B.wav.age.tmp")  # a crash before the last rename
    c = s.save("C", AUDIO, {})
    os.rename(c.wav, d / ".C.wav.age.tmp")  # a crash before the index's rename
    os.rename(c.sidecar, d / ".C.json.tmp")
    e = s.save("E", AUDIO, {})
    os.unlink(e.wav)  # an interrupted deletion
    s.recover()
    names = sorted(p.name for p in d.iterdir())
    assert names == [f"{x}{ext}" for x in "AB" for ext in (".json", ".json.age", ".wav.age")]


def test_sealed_disk_full_leaves_nothing(tmp_path, key):
    _, recipient = key
    with small_tmpfs(tmp_path / "small", 96) as mnt:
        s = sealed_storage(mnt / "rec", recipient)
        s.save("A", AUDIO, {})
        s.save("B", AUDIO, {})
        with pytest.raises(StorageError, match="No space left"):
            s.save("C", AUDIO, {})
        names = sorted(p.name for p in (mnt / "rec").iterdir())
        assert names == [f"{x}{ext}" for x in "AB" for ext in (".json", ".json.age", ".wav.age")]


def test_recipients_file_and_bad_recipients(tmp_path, key):
    _, recipient = key
    (tmp_path / "recipients.txt").write_text(f"# the owner's laptop\n{recipient}\n")
    assert sealer_for("recipients.txt", tmp_path).recipients == (recipient,)
    assert sealer_for("", tmp_path) is None
    with pytest.raises(RecorderError, match="not an age X25519 recipient"):
        sealer_for(["age1nope"], tmp_path)
    with pytest.raises(RecorderError, match="recipients file .*missing.txt"):
        sealer_for("missing.txt", tmp_path)
    bad = tmp_path / "bad-key.txt"
    bad.write_text("AGE-SECRET-KEY-1XYZ\n")
    with pytest.raises(RecorderError, match="not an age identity"):
        Unsealer(bad)


def test_without_pyrage_sealing_is_a_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from recorder import cli

    monkeypatch.setitem(sys.modules, "pyrage", None)  # as if the crypto extra were missing
    with pytest.raises(RecorderError, match=r"recorder\[crypto\]"):
        sealer_for("age1qqqq", tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[storage]\nencrypt_to = "age1qqqq"\n')
    wav = tmp_path / "a.wav"
    assert cli.main(["keygen"]) == 2
    assert cli.main(["run", "--config", str(cfg), "--source", f"file:{wav}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("recorder: error: [storage] encrypt_to needs the pyrage package")


def test_saved_activations_are_sealed_too(tmp_path, key):
    from conftest import AUDIO

    from recorder import daemon
    from recorder.config import Config, StorageConfig, WakeConfig
    from recorder.mute import MuteSwitch
    from recorder.sources import FileSource

    _, recipient = key
    config = Config(
        wake=WakeConfig(models=("hey_jarvis",), save_activations=str(tmp_path / "act")),
        storage=StorageConfig(directory=str(tmp_path / "rec"), encrypt_to=(recipient,)),
        base_dir=tmp_path,
    )
    d = daemon.build_daemon(
        config, FileSource(AUDIO / "two_requests.wav"), MuteSwitch(tmp_path / "state")
    )
    d.p.storage.prepare()
    d.run()
    for directory in (tmp_path / "rec", tmp_path / "act"):
        names = [p.name for p in directory.iterdir()]
        assert names and not [n for n in names if n.endswith(".wav")], names
        for p in directory.iterdir():
            assert b"RIFF" not in p.read_bytes()
