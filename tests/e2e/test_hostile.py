"""Hostile input against a running daemon, a control thread killed from inside, and directories
other accounts can touch."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
from conftest import run_recorder, write_pcm
from harness import QUIET, REQUEST, Daemon, wait_for

from recorder import cli, control, threads


def connect(run_dir: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    for _ in range(1000):
        try:
            s.connect(str(run_dir / control.SOCKET_NAME))
            return s
        except BlockingIOError:  # the listen queue is full for a moment: back off, retry
            time.sleep(0.01)
    raise AssertionError("the control socket's listen queue stayed full")


def reply_of(s: socket.socket) -> dict | None:
    """The one JSON line the server sends, or None if it closed the connection without one."""
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return json.loads(data) if data else None


def test_hostile_clients_leave_the_mute_switch_working(tmp_path):
    with Daemon(tmp_path) as d, contextlib.ExitStack() as sockets:
        d.feed(QUIET)
        # non-UTF-8: a JSON error, not a dead thread
        with connect(d.run_dir) as s:
            s.sendall(b"\xff\xfe\x80stat\xc3us\n")
            assert reply_of(s) == {"ok": False, "error": "command is not UTF-8 text"}
        # garbage that decodes: named in the error, as JSON
        with connect(d.run_dir) as s:
            s.sendall(b'mute\x00"}\x1b[2J{\n')
            r = reply_of(s)
            assert r["ok"] is False and r["error"].startswith("unknown command")
        # a 1 MB line: refused once it is longer than a command can be, connection closed
        with connect(d.run_dir) as s:
            # (the server may stop reading and close before all of it is sent: also a refusal)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                s.sendall(b"m" * (1 << 20))
            r = reply_of(s)
            assert r is None or r == {"ok": False, "error": "command too long"}
        # no newline, connection kept open: closed by the server at its deadline
        lingering = connect(d.run_dir)
        lingering.sendall(b"status")
        # dozens of idle connections held open for the rest of the test
        held = [sockets.enter_context(connect(d.run_dir)) for _ in range(40)]
        # hundreds of rapid connects, half of them sending a partial line and vanishing
        for i in range(300):
            with connect(d.run_dir) as s:
                if i % 2:
                    s.sendall(b"unm")
        start = time.monotonic()
        reply = control.request(d.run_dir, "status", timeout_s=5)
        elapsed = time.monotonic() - start
        assert reply is not None and reply["ok"] is True and reply["state"] == "listening"
        assert elapsed < 1.0, f"status took {elapsed:.2f} s"
        assert d.cli("mute").returncode == 0
        assert d.status()["state"] == "muted" and (d.state_dir / "muted").exists()
        d.feed(REQUEST + QUIET)
        assert d.status()["recordings"] == 0  # the mute holds
        assert reply_of(lingering) is None  # the deadline closed it without an answer
        lingering.close()
        assert held[0].recv(1) == b""  # so were the idle ones
        err = d.stop()
        assert "Traceback" not in err and "died" not in err
        assert "state listening -> muted" in err


class InjectedFault(BaseException):
    """Raised inside the control thread. A BaseException, so that no `except Exception` in the
    server can absorb it: it stands for a bug that ends the thread."""


def _inject(thread: threading.Thread) -> None:
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(InjectedFault)
    )
    assert done == 1


def test_a_dead_control_thread_stops_the_daemon_with_exit_1_and_error(tmp_path, caplog):
    """The fault: the daemon runs in this process (`cli.main`, the real command path) on a
    file source paced at 1x, with its control socket. Once the socket answers, the real control
    thread gets an exception raised inside it (CPython's PyThreadState_SetAsyncExc), so the
    thread dies as it would from a bug, with no test hook in the daemon's code."""
    audio = write_pcm(tmp_path / "quiet.wav", np.zeros(16000 * 60, dtype=np.int16))
    state_file = tmp_path / "state.txt"
    config = tmp_path / "c.toml"
    config.write_text(f'[indicator]\nstate_file = "{state_file}"\n')
    run_dir = tmp_path / "run"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    injected = threading.Event()

    def kill_control_thread() -> None:
        # The socket may answer before the first audio has made the daemon announce
        # `listening`: wait for both.
        wait_for(
            lambda: (
                (run_dir / control.SOCKET_NAME).exists()
                and control.request(run_dir, "status", timeout_s=2) is not None
                and state_file.exists()
                and state_file.read_text().strip() == "listening"
            ),
            timeout=60,
        )
        _inject(next(t for t in threading.enumerate() if t.name == "control"))
        injected.set()

    killer = threading.Thread(target=kill_control_thread)
    killer.start()
    caplog.set_level(logging.INFO, logger="recorder")
    start = time.monotonic()
    try:
        status = cli.main(
            [
                "run",
                "--config",
                str(config),
                "--source",
                f"file:{audio}",
                "--realtime",
                "--recordings",
                str(tmp_path / "rec"),
                "--runtime-dir",
                str(run_dir),
                "--state-dir",
                str(tmp_path / "st"),
            ]
        )
    finally:
        killer.join()
        for s, h in handlers.items():
            signal.signal(s, h)
        failure = threads.WATCH.failure()
        threads.WATCH.clear()  # the process's watch: later in-process daemons start clean
    assert str(failure).startswith("the control thread died: InjectedFault")
    assert injected.is_set()
    assert status == 1
    assert time.monotonic() - start < 30  # it stopped, it did not play the minute out
    assert state_file.read_text().strip() == "error"  # and the light stays at error
    assert "the control thread died: InjectedFault" in caplog.text
    assert "stopping (exit status 1)" in caplog.text
    assert not (run_dir / control.SOCKET_NAME).exists()


def test_a_watched_thread_that_returns_early_is_a_failure():
    watch = threads.ThreadWatch()
    watch.start("quitter", lambda: None, keeps_running=lambda: True).join()
    assert str(watch.failure()) == (
        "the quitter thread died: it returned while it should have kept running"
    )
    finished = threads.ThreadWatch()
    finished.start("done", lambda: None).join()
    assert finished.failure() is None


# --- directories others can touch ------------------------------------------------------------


def _run_file(tmp_path: Path, *extra: str):
    audio = write_pcm(tmp_path / "quiet.wav", np.zeros(16000, dtype=np.int16))
    return run_recorder("run", "--source", f"file:{audio}", *extra)


def test_a_recordings_directory_others_can_write_is_refused(tmp_path):
    """(Another user's directory, refused for anyone but root: test_service_files.py.)"""
    rec = tmp_path / "rec"
    rec.mkdir()
    rec.chmod(0o777)
    proc = _run_file(tmp_path, "--recordings", str(rec))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and len(err.splitlines()) == 1, err
    assert (
        err == f"recorder: error: recordings directory {rec}: writable by others "
        f"(mode 0777); run `chmod go-w {rec}`\n"
    )
    assert list(rec.iterdir()) == []
    for command in (["list"], ["delete", "--all"], ["prune"]):
        proc = run_recorder(*command, "--recordings", str(rec))
        assert proc.returncode == 2 and f"recordings directory {rec}" in proc.stderr.decode()


def test_state_and_runtime_directories_others_can_write_are_refused(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o1777)  # like /tmp
    proc = run_recorder(
        "mute", "--state-dir", str(open_dir), "--runtime-dir", str(tmp_path / "none")
    )
    assert proc.returncode == 2
    assert f"state directory {open_dir}: writable by others (mode 1777)" in proc.stderr.decode()
    assert not (open_dir / "muted").exists()
    proc = _run_file(
        tmp_path, "--recordings", str(tmp_path / "rec"), "--runtime-dir", str(open_dir)
    )
    assert proc.returncode == 2
    assert f"runtime directory {open_dir}: writable by others" in proc.stderr.decode()


def test_directories_the_daemon_creates_are_private(tmp_path):
    run_dir, rec = tmp_path / "a" / "run", tmp_path / "b" / "rec"
    proc = _run_file(tmp_path, "--recordings", str(rec), "--runtime-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr.decode()
    for d in (run_dir, rec):
        assert d.stat().st_mode & 0o777 == 0o700
    state = tmp_path / "c" / "state"
    assert (
        run_recorder("mute", "--state-dir", str(state), "--runtime-dir", str(run_dir)).returncode
        == 0
    )
    assert state.stat().st_mode & 0o777 == 0o700


def test_links_and_foreign_names_in_the_recordings_directory_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim_wav, victim_json = outside / "victim.wav", outside / "victim.json"
    victim_wav.write_bytes(b"RIFF precious")
    victim_json.write_text('{"id": "victim"}')
    rec = tmp_path / "rec"
    rec.mkdir(mode=0o700)
    (rec / "a.wav").symlink_to(victim_wav)  # a pair whose WAV is a link out
    (rec / "a.json").write_text('{"id": "a", "audio_file": "a.wav"}')
    (rec / "b.wav").write_bytes(b"RIFF")  # a pair whose sidecar is a link out
    (rec / "b.json").symlink_to(victim_json)
    (rec / "c.wav").write_bytes(b"RIFF")  # a sidecar naming a file elsewhere
    (rec / "c.json").write_text('{"id": "c", "audio_file": "../outside/victim.wav"}')
    (rec / "d.wav").write_bytes(b"RIFF")  # an honest pair, with odd values
    (rec / "d.json").write_text('{"id": "d", "duration_s": "long", "wake_word": null}')
    listed = run_recorder("list", "--recordings", str(rec))
    assert listed.returncode == 0, listed.stderr.decode()
    header, *rows, totals = listed.stdout.decode().splitlines()
    assert header.startswith("ID ") and totals.startswith("1 recording, ")
    assert [line.split()[0] for line in rows] == ["d"]
    deleted = run_recorder("delete", "--all", "--recordings", str(rec))
    assert deleted.returncode == 0 and deleted.stdout == b"deleted 1 recording(s)\n"
    assert victim_wav.read_bytes() == b"RIFF precious"
    assert victim_json.read_text() == '{"id": "victim"}'
    assert not (rec / "d.wav").exists()
