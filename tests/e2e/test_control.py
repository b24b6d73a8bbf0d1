"""The running daemon: control socket (mute, unmute, status), SIGHUP reload, sd_notify.

The daemon reads raw audio from a pipe the test writes (`--source stdin`), so the test decides
exactly what the daemon hears and when.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import AUDIO, RECORDER, read_pcm, recordings, run_recorder, small_tmpfs, wait_for

from recorder import control

SCENE = read_pcm(AUDIO / "jarvis_pause_command.wav").tobytes()
QUIET = bytes(16000 * 2)


class LiveDaemon:
    def __init__(
        self,
        tmp: Path,
        *extra: str,
        env: dict | None = None,
        model: str | None = "hey_jarvis",
        rec: Path | None = None,
    ):
        self.tmp = tmp
        self.rec, self.run_dir, self.state_dir = rec or tmp / "rec", tmp / "run", tmp / "state"
        self.proc = subprocess.Popen(
            [
                str(RECORDER),
                "run",
                "--source",
                "stdin",
                *(["--model", model] if model else []),
                "--recordings",
                str(self.rec),
                "--runtime-dir",
                str(self.run_dir),
                "--state-dir",
                str(self.state_dir),
                *extra,
            ],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.fed_s = 0.0
        wait_for(lambda: self.proc.poll() is not None or self.answers())

    def answers(self) -> bool:
        """The control socket is there and answers (it exists a moment before it listens)."""
        sock = self.run_dir / "control.sock"
        return sock.exists() and control.request(self.run_dir, "status", timeout_s=2) is not None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_recorder(
            *args, "--runtime-dir", str(self.run_dir), "--state-dir", str(self.state_dir)
        )

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)

    def feed(self, data: bytes) -> None:
        """Write audio and wait until the daemon has taken all of it in."""
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        self.fed_s += len(data) / 32000
        target = int(self.fed_s / 0.08) * 0.08 - 0.01
        wait_for(lambda: self.status()["audio_s"] >= target)

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, err.decode()
        return err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def daemon(tmp_path):
    d = LiveDaemon(tmp_path)
    yield d
    d.kill()


def test_status_and_socket_permissions(daemon):
    mode = stat.S_IMODE((daemon.run_dir / "control.sock").stat().st_mode)
    assert mode == 0o600
    daemon.feed(QUIET)
    st = daemon.status()
    assert st["state"] == "listening" and st["muted"] is False and st["running"] is True
    assert st["recordings"] == 0 and st["uptime_s"] >= 0 and st["models"] == ["hey_jarvis"]


def test_mute_drops_audio_and_survives_a_restart(tmp_path):
    d = LiveDaemon(tmp_path)
    try:
        assert d.cli("mute").returncode == 0
        assert d.status()["state"] == "muted"
        assert (d.state_dir / "muted").exists()
        d.feed(QUIET + SCENE + QUIET)
        assert d.status()["recordings"] == 0  # a wake word and a command, but muted
        err = d.stop()
        assert "state listening -> muted" in err and "wake word" not in err
    finally:
        d.kill()
    d = LiveDaemon(tmp_path)  # a restart stays muted
    try:
        assert d.status()["muted"] is True and d.status()["state"] == "muted"
        d.feed(SCENE + QUIET)
        assert d.status()["recordings"] == 0
        assert d.cli("unmute").returncode == 0
        d.feed(QUIET + SCENE + QUIET)
        assert d.status()["recordings"] == 1
        assert "state muted -> listening" in d.stop()
    finally:
        d.kill()
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
    d = LiveDaemon(tmp_path, "--config", str(config), model=None)
    try:
        d.feed(QUIET)
        assert d.status()["models"] == ["hey_jarvis"]
        config.write_text('[wake]\nmodels = ["hey_jarvis", "alexa"]\nthreshold = 0.6\n')
        d.proc.send_signal(signal.SIGHUP)
        d.feed(QUIET)
        assert d.status()["models"] == ["hey_jarvis", "alexa"]
        config.write_text("[wake]\nthreshold = 7\n")
        d.proc.send_signal(signal.SIGHUP)
        d.feed(QUIET)
        d.feed(SCENE + QUIET)
        assert d.status()["recordings"] == 1  # still running on the old, valid config
        err = d.stop()
        assert "configuration reloaded" in err
        assert "reload refused" in err and "threshold" in err
    finally:
        d.kill()


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_sd_notify_ready_watchdog_status_stopping(tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"recorder-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    sock.settimeout(10)
    d = LiveDaemon(tmp_path, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    messages = []
    try:
        messages.append(sock.recv(4096).decode())
        assert messages[0].splitlines()[0] == "READY=1"
        assert messages[0].splitlines()[1].startswith("STATUS=listening on stdin")
        # the loop pings the watchdog at half its timeout, also while no audio arrives
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            messages.append(sock.recv(4096).decode())
        assert messages.count("WATCHDOG=1") >= 5
        d.stop()
        sock.settimeout(1)
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                break
        assert "STOPPING=1\nSTATUS=stopping" in messages
    finally:
        d.kill()
        sock.close()


def test_full_disk_drops_one_request_and_the_daemon_recovers(tmp_path):
    with small_tmpfs(tmp_path / "small", 200) as mnt:
        state = tmp_path / "state.txt"
        config = tmp_path / "c.toml"
        config.write_text(
            f'[storage]\ndirectory = "{mnt / "rec"}"\n[indicator]\nstate_file = "{state}"\n'
        )
        d = LiveDaemon(tmp_path, "--config", str(config), rec=mnt / "rec")
        try:
            ballast = mnt / "ballast"
            with open(ballast, "wb") as f:  # fill the disk, leaving less than one request
                f.write(b"\0" * (200 * 1024 - 40 * 1024))
            d.feed(QUIET + SCENE + QUIET)
            assert d.status()["recordings"] == 0
            assert [p.name for p in d.rec.iterdir()] == []  # no temp file left behind
            assert d.status()["state"] == "listening"  # error, then back to listening
            ballast.unlink()  # space returns
            d.feed(SCENE + QUIET)
            assert d.status()["recordings"] == 1
            err = d.stop()
            assert "could not save the request" in err and "No space left" in err
            assert "state listening -> error" in err and "state error -> listening" in err
        finally:
            d.kill()
        assert len(recordings(mnt / "rec")) == 1
