"""The audit trail through the commands: the daemon, delete, prune, mute, and `audit --verify`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import AUDIO, run_recorder


def audit_entries(state: Path) -> list[dict]:
    return [json.loads(x) for x in (state / "audit.log").read_text().splitlines()]


@pytest.fixture
def scene(tmp_path):
    """A daemon run that saved two requests, then a delete, a prune and a mute by command."""
    rec, state = tmp_path / "rec", tmp_path / "state"
    proc = run_recorder(
        "run",
        "--source",
        f"file:{AUDIO / 'two_requests.wav'}",
        "--recordings",
        str(rec),
        "--state-dir",
        str(state),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    saved = audit_entries(state)
    ids = [e["id"] for e in saved if e["event"] == "saved"]
    assert len(ids) == 2
    proc = run_recorder("delete", ids[0], "--recordings", str(rec), "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr.decode()
    cfg = tmp_path / "c.toml"
    cfg.write_text("[storage]\nmax_total_mb = 0.001\n")
    proc = run_recorder(
        "prune", "--config", str(cfg), "--recordings", str(rec), "--state-dir", str(state)
    )
    assert proc.returncode == 0, proc.stderr.decode()
    for cmd in ("mute", "unmute"):
        proc = run_recorder(cmd, "--state-dir", str(state), "--runtime-dir", str(tmp_path / "run"))
        assert proc.returncode == 0, proc.stderr.decode()
    return rec, state, ids


def test_the_trail_records_what_happened_and_verifies(scene):
    rec, state, ids = scene
    entries = audit_entries(state)
    events = [e["event"] for e in entries]
    assert events[0] == "started" and "stopped" in events
    assert events.count("wake") == 2 and events.count("saved") == 2
    assert events[-4:] == ["deleted", "deleted", "muted", "unmuted"]
    deleted = [e for e in entries if e["event"] == "deleted"]
    assert [(e["id"], e["why"]) for e in deleted] == [
        (ids[0], "delete command"),
        (ids[1], "retention"),
    ]
    assert entries[-1]["uid"] == os.getuid() and entries[-1]["by"] == "cli"
    saved = next(e for e in entries if e["event"] == "saved")
    assert set(saved["written"]) == {f"{saved['id']}.json", f"{saved['id']}.wav"}
    assert len(saved["written"][f"{saved['id']}.wav"]) == 64
    for e in entries:
        assert set(e) - {"n", "time", "event", "prev", "by", "uid"} <= {
            "source", "pid", "muted", "reason", "saved", "model", "score", "offset_s",
            "id", "written", "audio_sha256", "duration_s", "sealed", "dry_run", "why",
        }  # fmt: skip
    proc = run_recorder("audit", "--verify", "--state-dir", str(state))
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"intact" in proc.stdout
    proc = run_recorder("audit", "--json", "--since", "1h", "--state-dir", str(state))
    assert [json.loads(x)["n"] for x in proc.stdout.splitlines()] == [e["n"] for e in entries]
    proc = run_recorder("audit", "--since", "2999-01-01T00:00:00Z", "--state-dir", str(state))
    assert proc.returncode == 0 and proc.stdout == b""
    assert hashlib.sha256(b"").hexdigest() not in (state / "audit.log").read_text()


@pytest.mark.parametrize("damage", ["edit", "delete", "reorder", "truncate"])
def test_verify_exits_1_naming_the_first_bad_line(scene, damage):
    _, state, _ = scene
    path = state / "audit.log"
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "edit":
        lines[1] = lines[1].replace(b'"event":"', b'"event":"x', 1)
        bad = 3
    elif damage == "delete":
        del lines[2]
        bad = 3
    elif damage == "reorder":
        lines[3], lines[4] = lines[4], lines[3]
        bad = 4
    else:
        lines[-1] = lines[-1][:-10]
        bad = len(lines)
    path.write_bytes(b"".join(lines))
    proc = run_recorder("audit", "--verify", "--state-dir", str(state))
    assert proc.returncode == 1
    assert f"audit.log line {bad}:".encode() in proc.stderr, proc.stderr
