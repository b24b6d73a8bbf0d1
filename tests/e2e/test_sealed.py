"""Sealed recordings through the daemon: only ciphertext is ever written, the age tool reads it
back bit-exact, kill -9 leaves only complete recordings, and export and keygen work."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, RECORDER, read_pcm, run_recorder
from harness import kill_while_saving

from recorder.seal import Unsealer

needs_age = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is not installed")


@pytest.fixture
def key(tmp_path):
    proc = run_recorder("keygen")
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    recipient = re.search(r"# recipient: (age1\w+)", out).group(1)
    path = tmp_path / "keys" / "key.txt"
    path.parent.mkdir()
    path.write_text(out)
    assert out.count("AGE-SECRET-KEY-1") == 1
    return path, recipient


def sealed_config(tmp_path: Path, recipient: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(f'[storage]\nencrypt_to = ["{recipient}"]\n')
    return path


def age_decrypt(key_path: Path, path: Path) -> bytes:
    return subprocess.run(
        ["age", "-d", "-i", str(key_path), str(path)], check=True, capture_output=True
    ).stdout


def pcm_of_wav_bytes(data: bytes, tmp: Path) -> np.ndarray:
    tmp.write_bytes(data)
    return read_pcm(tmp)


@needs_age
def test_sealed_daemon_run_decrypts_bit_exact_and_writes_no_plaintext(tmp_path, key):
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    key_path, recipient = key
    rec, state, tmpdir = tmp_path / "rec", tmp_path / "state", tmp_path / "tmp"
    tmpdir.mkdir()
    source = AUDIO / "two_requests.wav"
    trace = tmp_path / "trace"
    proc = subprocess.run(
        [
            strace,
            "-f",
            "-qq",
            "-xx",
            "-s",
            "4000000",
            "-e",
            "trace=write,pwrite64,writev,pwritev,pwritev2",
            "-o",
            str(trace),
            str(RECORDER),
            "run",
            "--config",
            str(sealed_config(tmp_path, recipient)),
            "--source",
            f"file:{source}",
            "--recordings",
            str(rec),
            "--state-dir",
            str(state),
        ],
        capture_output=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    names = sorted(p.name for p in rec.iterdir())
    ids = sorted({n.split(".wav")[0].split(".json")[0] for n in names})
    assert len(ids) == 2
    assert names == sorted(f"{i}{ext}" for i in ids for ext in (".json", ".json.age", ".wav.age"))
    source_pcm = read_pcm(source)
    saved = []
    for rid in ids:
        meta = json.loads(age_decrypt(key_path, rec / f"{rid}.json.age"))
        pcm = pcm_of_wav_bytes(age_decrypt(key_path, rec / f"{rid}.wav.age"), tmp_path / "x.wav")
        start = round(meta["source_offset_s"] * 16000)
        assert np.array_equal(pcm, source_pcm[start : start + len(pcm)])  # bit-exact
        assert meta["samples"] == len(pcm)
        assert hashlib.sha256(pcm.tobytes()).hexdigest() == meta["audio_sha256"]
        index = json.loads((rec / f"{rid}.json").read_text())
        assert set(index) == {
            "id",
            "started_at",
            "duration_s",
            "audio_file",
            "meta_file",
            "encrypted",
        }
        saved.append(pcm.tobytes())

    # no written buffer, and no file left anywhere it writes, holds a 64-byte run of saved
    # audio or a WAV header
    runs = set()
    for pcm in saved:
        for i in range(0, len(pcm) - 64, 2):
            window = pcm[i : i + 64]
            if len(set(window)) > 16:  # leave out near-silence, which any buffer might hold
                runs.add(window)
    assert len(runs) > 10000
    written = [
        bytes.fromhex(m.group(1).replace("\\x", ""))
        for m in re.finditer(r'"((?:\\x[0-9a-f]{2})+)"', trace.read_text())
    ]
    assert sum(len(b) for b in written) > 2 * 3 * 16000  # strace saw the ciphertext written
    everything = written + [
        p.read_bytes() for d in (rec, state, tmpdir) for p in d.rglob("*") if p.is_file()
    ]
    for data in everything:
        assert b"RIFF" not in data and b"WAVE" not in data
        assert not any(data[i : i + 64] in runs for i in range(len(data) - 63))

    # the audit log holds the SHA-256 of every sealed file written
    audit = [json.loads(x) for x in (state / "audit.log").read_text().splitlines()]
    for entry in (e for e in audit if e["event"] == "saved"):
        for name, digest in entry["written"].items():
            assert hashlib.sha256((rec / name).read_bytes()).hexdigest() == digest

    # export decrypts into a plain pair, identical to what age gives
    out = tmp_path / "out"
    out.mkdir()
    proc = run_recorder(
        "export", *ids, "--identity", str(key_path), "--to", str(out), "--recordings", str(rec)
    )
    assert proc.returncode == 0, proc.stderr.decode()
    for rid, pcm in zip(ids, saved, strict=True):
        assert read_pcm(out / f"{rid}.wav").tobytes() == pcm
        assert json.loads((out / f"{rid}.json").read_text())["audio_file"] == f"{rid}.wav"
    proc = run_recorder("export", ids[0], "--to", str(out), "--recordings", str(rec))
    assert proc.returncode == 2 and b"--identity" in proc.stderr

    # score and tune read sealed recordings with --identity, decrypted in memory
    proc = run_recorder("score", str(rec), "--identity", str(key_path), "--json", "--jobs", "1")
    assert proc.returncode == 0, proc.stderr.decode()
    files = json.loads(proc.stdout)["files"]
    assert sorted(Path(f["path"]).name for f in files) == [f"{i}.wav.age" for i in ids]
    assert all(
        abs(f["duration_s"] - len(p) / 2 / 16000) < 1e-3 for f, p in zip(files, saved, strict=True)
    )
    proc = run_recorder("score", str(rec), "--json")
    assert proc.returncode == 2 and b"sealed; give --identity" in proc.stderr
    proc = run_recorder(
        "tune",
        "--positives",
        str(rec),
        "--negatives",
        str(AUDIO / "command_without_wake.wav"),
        "--identity",
        str(key_path),
        "--json",
        "--jobs",
        "1",
    )
    assert proc.returncode == 0, proc.stderr.decode()


def check_sealed_visible(rec: Path, unsealer: Unsealer) -> int:
    """Every sealed WAV is complete and matches its sealed sidecar; an index may briefly precede
    its audio (then a complete hidden temp file)."""
    for wav in rec.glob("*.wav.age"):
        rid = wav.name[: -len(".wav.age")]
        assert (rec / f"{rid}.json").exists()
        meta = json.loads(unsealer.read(rec / f"{rid}.json.age"))
        samples = pcm_of_wav_bytes(unsealer.read(wav), rec.parent / "check.wav")
        assert len(samples) == meta["samples"]
        assert hashlib.sha256(samples.tobytes()).hexdigest() == meta["audio_sha256"]
    for index in rec.glob("*.json"):
        if not (rec / f"{index.stem}.wav.age").exists():
            assert (rec / f".{index.stem}.wav.age.tmp").exists(), f"{index.name} has no audio"
    return len(list(rec.glob("*.wav.age")))


def test_kill_9_in_sealed_mode_never_leaves_a_broken_recording(tmp_path, key):
    key_path, recipient = key
    unsealer = Unsealer(key_path)
    config = sealed_config(tmp_path, recipient)
    rec = tmp_path / "rec"
    saved_before = kill_while_saving(
        tmp_path,
        rec,
        ["--config", str(config)],
        lambda r: check_sealed_visible(r, unsealer),
        kills=8,
        seed=4321,
    )
    assert saved_before >= 8
    proc = run_recorder(
        "run",
        "--config",
        str(config),
        "--source",
        f"file:{AUDIO / 'jarvis_bare.wav'}",
        "--recordings",
        str(rec),
    )
    assert proc.returncode == 0
    assert check_sealed_visible(rec, unsealer) >= saved_before
    stems = sorted(p.name[: -len(".wav.age")] for p in rec.glob("*.wav.age"))
    assert stems == sorted(p.stem for p in rec.glob("*.json"))
    assert stems == sorted(p.name[: -len(".json.age")] for p in rec.glob("*.json.age"))
    assert [p.name for p in rec.iterdir() if p.name.startswith(".")] == []
