"""`recorder events`: the running daemon's journal as it happens, to several subscribers; one
that stops reading is cut off (and told why) while the others and the audio loop carry on. And
who may talk to the daemon: its user and root, the control group for status and events only.
"""

from __future__ import annotations

import grp
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import RECORDER
from harness import QUIET, REQUEST, Daemon, Lines, Nobody, wait_for

from recorder import control

FRAME = bytes(1280 * 2)


def follow(run_dir: Path, *extra: str, json_lines: bool = True) -> Lines:
    """`recorder events [--json]` following the daemon of `run_dir`."""
    return Lines(
        "events", *(["--json"] if json_lines else []), "--runtime-dir", str(run_dir), *extra
    )


def subscribe_raw(run_dir: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(str(run_dir / control.SOCKET_NAME))
    s.sendall(b"events\n")
    return s


def test_two_subscribers_one_stops_reading(tmp_path):
    with Daemon(tmp_path) as d:
        reader = follow(d.run_dir)
        stalled = subscribe_raw(d.run_dir)  # reads its first line, then nothing more
        wait_for(lambda: d.request("status")["subscribers"] == 2)
        d.feed(QUIET + REQUEST + QUIET)  # a request: wake, state, saved
        wait_for(lambda: any(r["event"] == "saved" for r in reader.records()))
        # mute and unmute until the stalled subscriber's backlog overflows
        for _ in range(2000):
            for command in ("mute", "unmute"):
                assert d.request(command)["ok"]
                d.write(FRAME)  # the loop applies a mute change between frames
            st = d.request("status")
            if st["subscribers"] == 1:
                break
            # the reader keeps up (as a reader does); only the stalled one falls behind
            wait_for(
                lambda st=st: (
                    reader.records() and reader.records()[-1]["seq"] >= st["last_event_seq"]
                )
            )
        assert d.request("status")["subscribers"] == 1
        assert d.request("status")["state"] == "listening"
        # the stalled one, reading now, finds its last line saying why
        stalled.settimeout(20)
        data = b""
        while chunk := stalled.recv(65536):
            data += chunk
        stalled.close()
        last = json.loads(data.splitlines()[-1])
        assert last == {"event": "cut_off", "reason": "it did not read its events in time"}
        d.end_input()  # end of the audio: the daemon stops
        assert d.wait_exit(30) == 0, d.log()
        err = d.log()
        code, follower_err = reader.finish()
    assert code == 0, follower_err
    assert "events subscriber (pid" in err and "cut off" in err
    records = reader.records()
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every event, in order
    assert records[-1]["event"] == "stopped"
    kinds = {r["event"] for r in records}
    assert {"wake", "state", "saved", "muted", "unmuted", "stopped"} <= kinds
    saved = next(r for r in records if r["event"] == "saved")
    assert Path(saved["sidecar"]).is_file() and Path(saved["audio"]).is_file()
    assert saved["end_reason"] and saved["duration_s"] > 0
    wake = next(r for r in records if r["event"] == "wake")
    assert wake["model"] == "hey_jarvis" and 0 < wake["score"] <= 1 and wake["offset_s"] > 0
    state = next(r for r in records if r["event"] == "state" and r["state"] == "recording")
    assert state["previous"] == "listening" and state["time"].endswith("Z")
    assert sum(r["event"] == "muted" for r in records) >= 10


def test_events_as_text_and_without_a_daemon(tmp_path):
    with Daemon(tmp_path) as d:
        follower = follow(d.run_dir, json_lines=False)
        wait_for(lambda: d.request("status")["subscribers"] == 1)
        d.feed(QUIET + REQUEST + QUIET)
        d.stop()
        code, err = follower.finish()
    assert code == 0, err
    text = "\n".join(follower.lines)
    assert " wake model=hey_jarvis score=" in text and " saved id=" in text
    assert follower.lines[-1].split()[2] == "stopped"
    gone = subprocess.run(
        [str(RECORDER), "events", "--runtime-dir", str(tmp_path / "nowhere")], capture_output=True
    )
    assert gone.returncode == 3 and b"no daemon is running" in gone.stderr


@pytest.fixture
def shared_run_dir():
    """A runtime directory that another uid can reach (pytest's own tmp is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="recorder-events-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_another_uid_is_refused_and_the_control_group_may_only_watch(tmp_path, shared_run_dir):
    try:
        gid = grp.getgrnam("audio").gr_gid
    except KeyError:
        pytest.skip("no group named audio on this machine")
    cfg = tmp_path / "recorder.toml"
    cfg.write_text('[control]\ngroup = "audio"\n')
    with Daemon(shared_run_dir, "--config", str(cfg)) as d:
        d.feed(QUIET)
        sock = os.stat(d.run_dir / control.SOCKET_NAME)
        assert (stat.S_IMODE(sock.st_mode), sock.st_gid) == (0o660, gid)
        run_dir = os.stat(d.run_dir)
        assert (stat.S_IMODE(run_dir.st_mode), run_dir.st_gid) == (0o710, gid)
        where = ("--runtime-dir", str(d.run_dir))
        # not in the group: the socket is out of reach
        code, _, stderr = Nobody("status", "--json", *where).finish()
        assert code == 2 and "permission denied" in stderr
        # in the group: status and events, not mute
        code, stdout, stderr = Nobody("status", "--json", *where, groups=(gid,)).finish()
        assert code == 0, stderr
        assert json.loads(stdout)["state"] == "listening"
        code, _, stderr = Nobody("mute", *where, groups=(gid,)).finish()
        assert code == 2
        assert stderr.strip() == "recorder: error: permission denied: uid 65534 may not 'mute'"
        assert d.request("status")["muted"] is False
        watcher = Nobody("events", "--json", *where, groups=(gid,))
        wait_for(lambda: d.request("status")["subscribers"] == 1)
        d.feed(QUIET + REQUEST + QUIET)
        err = d.stop()
        code, out, watcher_err = watcher.finish()
    assert code == 0, watcher_err
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert "saved" in events and events[-1] == "stopped"
    assert "refused 'mute' from uid 65534" in err
