"""The running daemon: control socket (mute, unmute, status), SIGHUP reload, sd_notify.

The daemon reads raw audio from a pipe the test writes (`--source stdin`), so the test decides
exactly what the daemon hears and when.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time

import pytest
from conftest import recordings, run_recorder, small_tmpfs
from harness import QUIET, REQUEST, Daemon, wait_for


@pytest.fixture
def daemon(tmp_path):
    with Daemon(tmp_path) as d:
        yield d


def test_status_and_socket_permissions(daemon):
    mode = stat.S_IMODE((daemon.run_dir / "control.sock").stat().st_mode)
    assert mode == 0o600
    daemon.feed(QUIET)
    st = daemon.status()
    assert st["state"] == "listening" and st["muted"] is False and st["running"] is True
    assert st["recordings"] == 0 and st["uptime_s"] >= 0 and st["models"] == ["hey_jarvis"]


def test_mute_drops_audio_and_survives_a_restart(tmp_path):
    with Daemon(tmp_path) as d:
        assert d.cli("mute").returncode == 0
        assert d.status()["state"] == "muted"
        assert (d.state_dir / "muted").exists()
        d.feed(QUIET + REQUEST + QUIET)
        assert d.status()["recordings"] == 0  # a wake word and a command, but muted
        err = d.stop()
        assert "state listening -> muted" in err and "wake word" not in err
    with Daemon(tmp_path) as d:  # a restart stays muted
        assert d.status()["muted"] is True and d.status()["state"] == "muted"
        d.feed(REQUEST + QUIET)
        assert d.status()["recordings"] == 0
        assert d.cli("unmute").returncode == 0
        d.feed(QUIET + REQUEST + QUIET)
        assert d.status()["recordings"] == 1
        assert "state muted -> listening" in d.stop()
    assert len(recordings(d.rec)) == 1


def test_mute_without_a_running_daemon(tmp_path):
    args = ["--runtime-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state")]
    proc = run_recorder("mute", *args)
    assert proc.returncode == 0 and b"not running" in proc.stdout
    st = run_recorder("status", "--json", *args)
    assert st.returncode == 3
    assert json.loads(st.stdout) == {"state": "off", "muted": True, "running": False}
    assert run_recorder("unmute", *args).returncode == 0
    assert json.loads(run_recorder("status", "--json", *args).stdout)["muted"] is False


def test_second_daemon_on_the_same_socket_is_refused(daemon, tmp_path):
    proc = run_recorder(
        "run",
        "--source",
        "stdin",
        "--runtime-dir",
        str(daemon.run_dir),
        "--recordings",
        str(tmp_path / "other"),
        input=b"",
    )
    assert proc.returncode == 2 and b"another recorder daemon is running" in proc.stderr
    assert daemon.status()["state"] == "listening"  # the first one is untouched


def test_sighup_reloads_and_refuses_a_bad_config(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[wake]\nmodels = ["hey_jarvis"]\n')
    with Daemon(tmp_path, "--config", str(config), model=None) as d:
        d.feed(QUIET)
        assert d.status()["models"] == ["hey_jarvis"]
        config.write_text('[wake]\nmodels = ["hey_jarvis", "alexa"]\nthreshold = 0.6\n')
        d.send_signal(signal.SIGHUP)
        d.feed(QUIET)
        assert d.status()["models"] == ["hey_jarvis", "alexa"]
        config.write_text("[wake]\nthreshold = 7\n")
        d.send_signal(signal.SIGHUP)
        d.feed(QUIET)
        d.feed(REQUEST + QUIET)
        assert d.status()["recordings"] == 1  # still running on the old, valid config
        err = d.stop()
        assert "configuration reloaded" in err
        assert "reload refused" in err and "threshold" in err


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_sd_notify_ready_watchdog_status_stopping(tmp_path, abstract):
    if abstract:
        address = f"@recorder-test-{os.getpid()}-{time.monotonic_ns()}"
    else:
        address = str(tmp_path / "notify.sock")
    with Daemon(tmp_path, env={"WATCHDOG_USEC": "200000"}, notify=address) as d:
        [(ready_at, ready)] = d.notify.received()[:1]
        assert ready.splitlines()[0] == "READY=1"
        assert ready.splitlines()[1].startswith("STATUS=listening on stdin")
        # the loop pings the watchdog at half its timeout, also while no audio arrives: at
        # least five times in the second after READY=1
        pings = wait_for(
            lambda: [t for t, m in d.notify.received() if m == "WATCHDOG=1"][4:5],
            timeout=10,
            what="five watchdog pings",
        )
        assert pings[0] - ready_at <= 1.0, f"the fifth ping came {pings[0] - ready_at:.2f} s late"
        d.stop()
        wait_for(
            lambda: "STOPPING=1\nSTATUS=stopping" in d.notify.messages(),
            timeout=5,
            what="STOPPING=1",
        )


def test_full_disk_drops_one_request_and_the_daemon_recovers(tmp_path):
    with small_tmpfs(tmp_path / "small", 200) as mnt:
        state = tmp_path / "state.txt"
        config = tmp_path / "c.toml"
        config.write_text(
            f'[storage]\ndirectory = "{mnt / "rec"}"\n[indicator]\nstate_file = "{state}"\n'
        )
        with Daemon(tmp_path, "--config", str(config), rec=mnt / "rec") as d:
            ballast = mnt / "ballast"
            with open(ballast, "wb") as f:  # fill the disk, leaving less than one request
                f.write(b"\0" * (200 * 1024 - 40 * 1024))
            d.feed(QUIET + REQUEST + QUIET)
            assert d.status()["recordings"] == 0
            assert [p.name for p in d.rec.iterdir()] == []  # no temp file left behind
            assert d.status()["state"] == "listening"  # error, then back to listening
            ballast.unlink()  # space returns
            d.feed(REQUEST + QUIET)
            assert d.status()["recordings"] == 1
            err = d.stop()
            assert "could not save the request" in err and "No space left" in err
            assert "state listening -> error" in err and "state error -> listening" in err
        assert len(recordings(mnt / "rec")) == 1
