"""The audit log: a hash chain that shows tampering, deletion, reordering and truncation."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from recorder.audit import GENESIS, AuditLog, line_hash
from recorder.journal import Journal


def filled(tmp_path, n=6, **kw) -> AuditLog:
    log = AuditLog(tmp_path / "state", **kw)
    for i in range(n):
        log.append("deleted", id=f"R{i}", why="delete command", uid=1000)
    return log


def lines_of(log):
    return log.path.read_bytes().splitlines(keepends=True)


def test_entries_chain_and_verify(tmp_path):
    log = filled(tmp_path)
    raw = lines_of(log)
    entries = [json.loads(x) for x in raw]
    assert [e["n"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev"] == GENESIS
    for before, after in zip(raw, entries[1:], strict=False):
        assert after["prev"] == line_hash(before)
    verdict = log.verify()
    assert verdict.ok and verdict.entries == 6 and verdict.head == line_hash(raw[-1])
    assert (log.path.stat().st_mode & 0o777) == 0o600


def _rewrite(log, raw):
    log.path.write_bytes(b"".join(raw))


@pytest.mark.parametrize("damage", ["edit", "delete", "reorder", "truncate", "drop_first"])
def test_verify_names_the_first_bad_line(tmp_path, damage):
    log = filled(tmp_path)
    raw = lines_of(log)
    if damage == "edit":
        raw[2] = raw[2].replace(b"R2", b"R9")
        bad = 4
    elif damage == "delete":
        del raw[3]
        bad = 4
    elif damage == "reorder":
        raw[2], raw[3] = raw[3], raw[2]
        bad = 3
    elif damage == "truncate":
        raw[-1] = raw[-1][:20]
        bad = 6
    else:
        del raw[0]
        bad = 1
    _rewrite(log, raw)
    verdict = log.verify()
    assert not verdict.ok
    assert verdict.message.startswith(f"audit.log line {bad}:"), verdict.message


def test_rotation_keeps_the_chain_verifiable_across_files(tmp_path):
    log = filled(tmp_path, n=40, max_bytes=1000, keep=3)
    names = sorted(p.name for p in log.files())
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    assert sum(p.stat().st_size for p in log.files()) < 3 * 1200  # bounded
    verdict = log.verify()
    assert verdict.ok, verdict.message
    first_new = json.loads(log.path.read_bytes().splitlines()[0])
    last_old = (log.state_dir / "audit.log.1").read_bytes().splitlines()[-1]
    assert first_new["prev"] == line_hash(last_old)
    # an edit in a rotated file is caught at its successor, in the next file if need be
    older = log.state_dir / "audit.log.1"
    data = older.read_bytes().splitlines(keepends=True)
    data[-1] = data[-1].replace(b"delete command", b"delete c0mmand")
    older.write_bytes(b"".join(data))
    verdict = log.verify()
    assert not verdict.ok and verdict.message.startswith("audit.log line 1:")


def _append_many(state_dir, tag):
    log = AuditLog(state_dir)
    for i in range(25):
        log.append("deleted", id=f"{tag}{i}", why="delete command")


def test_concurrent_appenders_do_not_fork_the_chain(tmp_path):
    state = tmp_path / "state"
    AuditLog(state).append("started", source="test")
    procs = [
        multiprocessing.get_context("fork").Process(target=_append_many, args=(state, t))
        for t in "ABC"
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    verdict = AuditLog(state).verify()
    assert verdict.ok and verdict.entries == 76, verdict.message


def test_journal_sink_keeps_facts_only(tmp_path):
    log = AuditLog(tmp_path / "state")
    journal = Journal()
    journal.subscribe(log.sink)
    journal.publish("state", state="recording", previous="listening")
    journal.publish(
        "saved",
        id="X",
        sidecar="/r/X.json",
        audio="/r/X.wav",
        audio_sha256="ab",
        written={"X.wav": "cd"},
        transcript="secret words",
        wake_word="alexa",
    )
    journal.publish("muted", uid=1000)
    entries = list(log.entries())
    assert [e["event"] for e in entries] == ["saved", "muted"]
    assert entries[0]["written"] == {"X.wav": "cd"} and entries[1]["uid"] == 1000
    assert b"secret words" not in log.path.read_bytes()
    assert log.verify().ok


def test_the_gate_refuses_a_written_request_it_cannot_log_and_logs_the_rest(tmp_path, caplog):
    from recorder.journal import Refused

    state = tmp_path / "state"
    log = AuditLog(state)
    log.prepare()
    (state / "audit.log").mkdir()  # any append now fails
    with pytest.raises(Refused, match="audit log .*audit.log"):
        log.sink({"event": "saved", "id": "x", "written": "2026-01-01T00:00:00Z"})
    log.sink({"event": "saved", "dry_run": True})  # nothing kept: logged only
    log.sink({"event": "wake", "model": "m", "score": 0.9, "offset_s": 1.0})
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]


def test_prepare_refuses_a_state_directory_others_can_write_to(tmp_path):
    from recorder.errors import RecorderError

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    state.chmod(0o770)
    with pytest.raises(RecorderError, match="state directory .*: writable by others"):
        AuditLog(state).prepare()
    state.chmod(0o700)
    AuditLog(state).prepare()
    assert (state / "audit.lock").exists() and not (state / "audit.log").exists()
