"""`recorder monitor --attach`: the running daemon's scores, VAD, state and input level from its
control socket, with no audio device opened; off a terminal, a line per second with each
model's highest score and the highest level, and a line per event. A monitor that stops
reading is cut off while the daemon carries on; no daemon exits 3; who may watch.
"""

from __future__ import annotations

import contextlib
import grp
import json
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import RECORDER, recordings
from harness import QUIET, REQUEST, Daemon, Lines, Nobody, wait_for

from recorder import control

SECOND = re.compile(
    r"^ *(\d+)-(\d+) s  (\w+) +speech +(\d+)/(\d+) +level max +(-?\d+\.\d) dBFS  max (.*)$"
)


def attach(run_dir: Path) -> Lines:
    """`recorder monitor --attach` on the daemon of `run_dir`, off a terminal."""
    return Lines("monitor", "--attach", "--runtime-dir", str(run_dir))


def seconds(lines: list[str]) -> list[dict]:
    """The per-second lines, parsed."""
    out = []
    for line in lines:
        m = SECOND.match(line)
        if m:
            scores = dict(kv.split("=") for kv in m.group(7).split())
            out.append(
                {
                    "second": int(m.group(1)),
                    "state": m.group(3),
                    "speech": int(m.group(4)),
                    "frames": int(m.group(5)),
                    "level_dbfs": float(m.group(6)),
                    "scores": {k: float(v) for k, v in scores.items()},
                }
            )
    return out


def test_attached_monitor_shows_the_detection_and_per_second_maxima(tmp_path):
    with Daemon(tmp_path) as d:
        assert d.request("status")["subscribers"] == 0
        monitor = attach(d.run_dir)
        wait_for(lambda: d.request("status")["subscribers"] == 1, what="the monitor attached")
        d.feed(QUIET * 2 + REQUEST + QUIET)
        log = d.stop()
        code, err = monitor.finish()
    assert code == 0, err
    lines = monitor.lines
    [(meta, _)] = recordings(d.rec)
    threshold = meta["threshold"]
    assert lines[0] == f"attached to the running daemon; thresholds hey_jarvis={threshold:g}"
    wake = next(line for line in lines if line.startswith("wake word hey_jarvis detected"))
    score, at = re.search(r"\(score (\d\.\d+)\) at (\d+\.\d+) s", wake).groups()
    assert float(score) >= meta["threshold"] and abs(float(at) - meta["wake_offset_s"]) < 0.01
    assert any(line.startswith(f"saved {meta['id']}: ") for line in lines)
    assert lines[-1].startswith("stopped reason=")
    per_second = seconds(lines)
    assert len(per_second) >= 8  # about a second per line of the audio fed, not per frame
    assert [s["second"] for s in per_second] == list(range(len(per_second)))
    assert all(12 <= s["frames"] <= 13 for s in per_second[:-1])
    # the second of the detection holds its highest score, at least the one that detected
    detected = next(s for s in per_second if s["second"] == int(float(at) - 0.08))
    assert detected["scores"]["hey_jarvis"] >= float(score) >= meta["threshold"]
    assert max(s["scores"]["hey_jarvis"] for s in per_second) >= meta["threshold"]
    assert per_second[0]["scores"]["hey_jarvis"] < 0.1
    # levels in dBFS: digital silence first, the spoken wake word far above it
    assert per_second[0]["level_dbfs"] == -90.3
    assert -40 < detected["level_dbfs"] < 0 and detected["speech"] > 0
    assert {s["state"] for s in per_second} >= {"listening", "recording"}
    assert "monitor subscriber (pid" in log


def test_attach_without_a_daemon_exits_3_like_status(tmp_path):
    nowhere = tmp_path / "nowhere"
    status = subprocess.run(
        [str(RECORDER), "status", "--runtime-dir", str(nowhere), "--state-dir", str(tmp_path)],
        capture_output=True,
    )
    monitor = subprocess.run(
        [str(RECORDER), "monitor", "--attach", "--runtime-dir", str(nowhere)], capture_output=True
    )
    assert status.returncode == monitor.returncode == 3
    assert monitor.stdout == b""
    assert monitor.stderr.decode() == (
        f"recorder: no daemon is running (no control socket answered in {nowhere})\n"
    )


def test_a_monitor_that_stops_reading_is_cut_off_and_the_daemon_carries_on(tmp_path):
    with Daemon(tmp_path) as d:
        stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(str(d.run_dir / control.SOCKET_NAME))
        stalled.sendall(b"monitor\n")  # and reads nothing
        wait_for(lambda: d.request("status")["subscribers"] == 1)
        for _ in range(60):  # ~1.8 kB of frames a second of audio: cut off within a minute
            d.feed(QUIET * 5)
            if d.request("status")["subscribers"] == 0:
                break
        assert d.request("status")["subscribers"] == 0, d.log()
        fed = d.audio_s()
        d.feed(QUIET + REQUEST + QUIET)  # the loop never waited: it still listens and saves
        assert d.audio_s() > fed and d.request("status")["saved_since_start"] == 1
        stalled.settimeout(20)
        data = b""
        while chunk := stalled.recv(65536):
            data += chunk
        stalled.close()
        log = d.stop()
    lines = data.splitlines()
    assert json.loads(lines[0])["thresholds"] == {"hey_jarvis": 0.5}
    assert json.loads(lines[1])["event"] in ("frame", "state")
    assert json.loads(lines[-1]) == {
        "event": "cut_off",
        "reason": "it did not read its events in time",
    }
    assert "monitor subscriber (pid" in log and "cut off" in log


def test_the_control_group_may_attach_and_others_are_refused(tmp_path):
    try:
        gid = grp.getgrnam("audio").gr_gid
    except KeyError:
        pytest.skip("no group named audio on this machine")
    cfg = tmp_path / "recorder.toml"
    cfg.write_text('[control]\ngroup = "audio"\n')
    shared = Path(tempfile.mkdtemp(prefix="recorder-monitor-"))  # pytest's tmp is root's only
    shared.chmod(0o711)
    with contextlib.ExitStack() as cleanup, Daemon(shared, "--config", str(cfg)) as d:
        cleanup.callback(shutil.rmtree, shared, ignore_errors=True)
        where = ("--runtime-dir", str(d.run_dir))
        code, _, stderr = Nobody("monitor", "--attach", *where).finish()
        assert code == 2
        assert stderr.strip() == (
            f"recorder: error: control socket {d.run_dir / control.SOCKET_NAME}: permission denied"
        )
        watcher = Nobody("monitor", "--attach", *where, groups=(gid,))
        wait_for(lambda: watcher.done() or d.request("status")["subscribers"] == 1)
        assert not watcher.done(), watcher.finish()
        d.feed(QUIET + REQUEST + QUIET)
        d.stop()
        code, out, err = watcher.finish()
    assert code == 0, err
    assert "wake word hey_jarvis detected" in out and "level max" in out
    assert out.splitlines()[-1].startswith("stopped ")
