"""The end-to-end tests' running daemon, their one polling helper, and the checks that several
scenes share.

`Daemon` is `recorder run` in a subprocess, on stdin (the test writes the audio), on a file, or
on the virtual microphone (`mic_daemon`). It starts ready: the constructor returns once the
daemon has sent READY=1 through systemd's notify protocol to a socket of the harness's own
(the first state is shown and the control socket answers), or fails with the daemon's log. Its
stdout and stderr go to a log file that the test can read at any time. Leaving its `with`
block kills whatever is still running in its process group.

    with Daemon(tmp_path) as d:                  # recorder run --source stdin --model hey_jarvis
        d.feed(QUIET + REQUEST + QUIET)          # returns once the daemon has taken it all in
        assert d.request("status")["saved_since_start"] == 1
        log = d.stop()                           # SIGTERM, exit status 0

Nothing here sleeps to be somewhere in time (but `kill_while_saving`, whose random moment is
the point). A test that needs the daemon at some point of its audio waits for the signs the
daemon gives: `wait_state("recording")` (its state file and indicator
command), then `wait_audio(seconds)` (the audio it has taken in, from the control socket's
status), e.g. to stop it in the middle of a command.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest
from conftest import AUDIO, RATE, RECORDER, SCENES, read_pcm, recordings, run_recorder, write_pcm

from recorder import cli, control

if TYPE_CHECKING:
    from virtual_mic import VirtualMic

T = TypeVar("T")

START_TIMEOUT_S = 60.0  # to READY=1: the models loaded (and the device opened) on a busy machine
STATE_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.02
FRAME_BYTES = 1280 * 2  # one of the daemon's 80 ms frames, raw

QUIET = bytes(RATE * 2)
"""One second of digital silence, raw s16le 16 kHz mono (for a stdin daemon)."""
REQUEST = read_pcm(AUDIO / "jarvis_pause_command.wav").tobytes()
"""A scene, raw: quiet, "Hey Jarvis", a pause, a command, quiet: one request."""

_NAMES = itertools.count()


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    what: str = "the condition",
    *,
    context: Callable[[], str] | None = None,
    interval: float = POLL_S,
) -> T:
    """The predicate's first true value, polled every `interval` s; after `timeout` s, fails
    naming `what` (and `context()`, if given)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


class NotifySocket:
    """The service manager's end of systemd's notify protocol: a datagram socket, read all the
    time (a daemon never waits to send), keeping every message with when it came.

    `address` is what NOTIFY_SOCKET is set to: a path, or `@name` for an abstract socket (the
    default: a fresh abstract name, which needs no file and no short path).
    """

    def __init__(self, address: str | None = None):
        self.address = address or f"@recorder-test-{os.getpid()}-{next(_NAMES)}"
        self._path = None if self.address.startswith("@") else Path(self.address)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.address[1:] if self._path is None else self.address)
        self._sock.setblocking(False)
        self._lock = threading.Lock()
        self._received: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            readable, _, _ = select.select([self._sock], [], [], 0.1)
            if readable:
                self._drain()

    def _drain(self) -> None:
        with self._lock:
            while not self._closed.is_set():
                try:
                    data = self._sock.recv(65536)
                except BlockingIOError:
                    return
                self._received.append((time.monotonic(), data.decode()))

    def received(self) -> list[tuple[float, str]]:
        """(time.monotonic() when it came, message) for every message so far, in order;
        everything sent before this call is in it."""
        self._drain()
        with self._lock:
            return list(self._received)

    def messages(self) -> list[str]:
        return [message for _, message in self.received()]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)


class Daemon:
    """`recorder run --source SOURCE` in a subprocess, ready (see the module's docstring).

    - `tmp`: the daemon's own directory: its runtime directory (`run_dir`, the control
      socket), state directory (`state_dir`, unless given), recordings (`rec`, unless given)
      and log file. A second daemon on the same `tmp` finds the first one's state (a restart).
    - `args`: more of `recorder run`'s arguments, after the harness's own.
    - `model`: one `--model`, or None for none (the configuration's models).
    - `env`: added to this process's environment; NOTIFY_SOCKET is the harness's (`notify`
      chooses its address: a path or `@name`).
    - `state_file`: the `[indicator] state_file` the arguments configure, for `state()`;
      `log_states`: an indicator command records every state shown, for `states()`.
    - `prefix`: a command the daemon runs under (e.g. strace).
    """

    def __init__(
        self,
        tmp: Path,
        *args: str | Path,
        source: str = "stdin",
        model: str | None = "hey_jarvis",
        rec: Path | None = None,
        state_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        notify: str | None = None,
        state_file: Path | None = None,
        log_states: bool = False,
        prefix: Sequence[str] = (),
        start_timeout_s: float = START_TIMEOUT_S,
    ):
        tmp.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        self.rec = rec or tmp / "rec"
        self.run_dir = tmp / "run"
        self.state_dir = state_dir or tmp / "state"
        self.state_file = state_file
        suffix = next(s for s in _suffixes() if not (tmp / f"daemon{s}.log").exists())
        self.log_file = tmp / f"daemon{suffix}.log"
        self.states_file = tmp / f"states{suffix}.log" if log_states else None
        self.fed_bytes = 0
        hook: list[str] = []
        if self.states_file is not None:
            script = tmp / f"log-state{suffix}.sh"
            script.write_text(f'#!/bin/sh\necho "$1" >> {shlex.quote(str(self.states_file))}\n')
            script.chmod(0o755)
            hook = ["--indicator-command", shlex.quote(str(script))]
        self.notify = NotifySocket(notify)
        command = [
            *prefix,
            str(RECORDER),
            "run",
            "--source",
            source,
            *(["--model", model] if model else []),
            "--recordings",
            str(self.rec),
            "--runtime-dir",
            str(self.run_dir),
            "--state-dir",
            str(self.state_dir),
            *hook,
            *map(str, args),
        ]
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if source == "stdin" else subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {}), "NOTIFY_SOCKET": self.notify.address},
                start_new_session=True,  # its own process group: killed whole on the way out
            )
        try:
            self.wait_for("READY=1", self.ready, start_timeout_s)
        except BaseException:
            self.close()
            raise

    # --- what it says --------------------------------------------------------------------
    def ready(self) -> bool:
        """The daemon has sent READY=1."""
        return any(m.startswith("READY=1") for m in self.notify.messages())

    def log(self) -> str:
        """Everything the daemon has written to stdout and stderr so far."""
        return self.log_file.read_text(errors="replace")

    def state(self) -> str | None:
        """The state shown last: the state file's, else the indicator command's."""
        if self.state_file is not None:
            try:
                return self.state_file.read_text().strip()
            except FileNotFoundError:
                return None
        if self.states_file is not None:
            return (self.states() or [None])[-1]
        return None

    def states(self) -> list[str]:
        """Every state the indicator command was shown, in order (with `log_states`)."""
        assert self.states_file is not None, "started without log_states"
        try:
            return self.states_file.read_text().split()
        except FileNotFoundError:
            return []

    def request(self, command: str) -> dict[str, Any]:
        """The control socket's answer to `command`, asked from this process."""
        reply = control.request(self.run_dir, command)
        assert reply is not None, f"no answer to {command!r} on the control socket:\n{self}"
        return reply

    def audio_s(self) -> float:
        """Seconds of audio the daemon has taken in from its source."""
        return float(self.request("status")["audio_s"])

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`recorder ARGS` pointed at this daemon's runtime and state directories."""
        return run_recorder(
            *args, "--runtime-dir", str(self.run_dir), "--state-dir", str(self.state_dir)
        )

    def status(self) -> dict[str, Any]:
        """What `recorder status --json` says."""
        proc = self.cli("status", "--json")
        assert proc.returncode == 0, (proc.returncode, proc.stderr.decode(), str(self))
        reply = json.loads(proc.stdout)
        assert isinstance(reply, dict), reply
        return reply

    def cpu_s(self) -> float:
        """The daemon's CPU time so far (user + system)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def __str__(self) -> str:
        states = self.states() if self.states_file is not None else "not logged"
        return (
            f"daemon pid {self.proc.pid}, exit status {self.proc.poll()}, state {self.state()}, "
            f"states {states}; its log:\n{self.log()}"
        )

    # --- waiting -------------------------------------------------------------------------
    def wait_for(
        self, what: str, predicate: Callable[[], T], timeout: float, interval: float = POLL_S
    ) -> T:
        """The predicate's first true value, polled every `interval` s; fails as soon as the
        daemon has exited without it, and after `timeout` s, with the daemon's state and log."""

        def check() -> T:
            value = predicate()
            if not value and self.proc.poll() is not None:
                value = predicate()  # once more: what it did before exiting is all there now
                if not value:
                    pytest.fail(f"the daemon exited while waiting for {what}: {self}")
            return value

        return wait_for(check, timeout, what, context=self.__str__, interval=interval)

    def wait_state(self, state: str, timeout: float = STATE_TIMEOUT_S) -> float:
        """Wait until the state file and the indicator command (those there are) both show
        `state`; returns how long that took."""
        assert self.state_file is not None or self.states_file is not None
        t0 = time.monotonic()
        self.wait_for(
            f"state {state!r}",
            lambda: (
                (self.state_file is None or self.state() == state)
                and (self.states_file is None or self.states()[-1:] == [state])
            ),
            timeout,
        )
        return time.monotonic() - t0

    def wait_log(self, pattern: re.Pattern[str], timeout: float) -> float:
        """Wait until the regular expression `pattern` matches the log; returns how long that
        took."""
        t0 = time.monotonic()
        self.wait_for(
            f"{pattern.pattern!r} in the log", lambda: pattern.search(self.log()), timeout
        )
        return time.monotonic() - t0

    def wait_audio(self, seconds: float, timeout: float = 30.0) -> None:
        """Wait until the daemon has taken in `seconds` of audio from its source."""
        self.wait_for(
            f"{seconds:g} s of audio taken in", lambda: self.audio_s() >= seconds, timeout
        )

    # --- stdin ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Write raw audio to the daemon's stdin."""
        assert self.proc.stdin is not None, "not a stdin daemon"
        self.proc.stdin.write(data)
        self.proc.stdin.flush()
        self.fed_bytes += len(data)

    def feed(self, data: bytes, timeout: float = 30.0) -> None:
        """Write raw audio and wait until the daemon has taken in everything written so far
        (up to the last whole 80 ms frame)."""
        self.write(data)
        self.wait_audio(self.fed_bytes // FRAME_BYTES * 0.08 - 0.01, timeout)

    def end_input(self) -> None:
        """Close the daemon's stdin: the end of its audio."""
        assert self.proc.stdin is not None, "not a stdin daemon"
        self.proc.stdin.close()

    # --- stopping ------------------------------------------------------------------------
    def send_signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def terminate(self, sig: signal.Signals = signal.SIGTERM) -> float:
        """Send `sig` (SIGTERM) and wait for the daemon to exit; returns how long it took
        (fails after STOP_TIMEOUT_S)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.wait_exit(STOP_TIMEOUT_S, f"exit after {sig.name}")
        return time.monotonic() - t0

    def stop(self) -> str:
        """SIGTERM; the daemon must exit with status 0. Returns its log."""
        self.terminate()
        log = self.log()
        assert self.proc.returncode == 0, log
        return log

    def wait_exit(self, timeout: float = 120.0, what: str = "exit") -> int:
        """Wait for the daemon to exit (e.g. at the end of its audio); its exit status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no {what} within {timeout:g} s: {self}")

    def kill(self) -> None:
        """SIGKILL, and wait for it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self) -> None:
        """Kill whatever still runs in the daemon's process group; release its pipes and the
        notify socket. Safe to call more than once."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.notify.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Lines:
    """`recorder ARGS...` in a subprocess, its stdout a pipe (off a terminal), its lines
    (without their newlines) collected as they come."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [str(RECORDER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.decode().rstrip("\n"))

    def records(self) -> list[dict]:
        """The lines so far as JSON objects."""
        return [json.loads(line) for line in list(self.lines)]

    def finish(self) -> tuple[int, str]:
        """The exit status and stderr, once the process ends."""
        code = self.proc.wait(timeout=30)
        self.thread.join(timeout=10)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode()


class Nobody:
    """`recorder ARGS` run by uid 65534 (nobody), in `groups` or in none: a forked child of
    the test drops its credentials and runs the command line, its output going to files."""

    def __init__(self, *args: str, groups: tuple[int, ...] = ()):
        if os.geteuid() != 0:
            pytest.skip("needs root to run a client under another uid")
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - read after the child exits
        self.err = tempfile.TemporaryFile()  # noqa: SIM115
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into pytest
            code = 99
            try:
                sys.stdout = open(self.out.fileno(), "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(self.err.fileno(), "w", closefd=False)  # noqa: SIM115
                os.setgroups(list(groups))
                os.setgid(65534)
                os.setuid(65534)
                code = cli.main(list(args))
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
        self.code: int | None = None

    def done(self) -> bool:
        if self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code is not None

    def finish(self) -> tuple[int, str, str]:
        wait_for(self.done, timeout=60)
        self.out.seek(0)
        self.err.seek(0)
        return self.code, self.out.read().decode(), self.err.read().decode()


def _suffixes() -> itertools.chain[str]:
    """The names of a directory's daemons' files: daemon.log, daemon-2.log, ..."""
    return itertools.chain([""], (f"-{n}" for n in itertools.count(2)))


def mic_daemon(
    mic: VirtualMic, tmp: Path, *args: str, audio_config: str = "", **options: Any
) -> Daemon:
    """`recorder run --source mic:NAME --model hey_jarvis` on the virtual microphone, with a
    state file and every state logged. `audio_config`: lines for the config's [audio] section;
    `options` as for Daemon."""
    state_file, config = tmp / "state.txt", tmp / "recorder.toml"
    config.write_text(f'[audio]\n{audio_config}\n[indicator]\nstate_file = "{state_file}"\n')
    return Daemon(
        tmp,
        "--config",
        str(config),
        *args,
        source=f"mic:{mic.name}",
        env=mic.env,
        state_file=state_file,
        log_states=True,
        **options,
    )


# --- checks shared by several scenes -----------------------------------------------------------


def check_slice(meta: dict, samples: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    """The recording is a bit-exact slice of the source at source_offset_s; return its span."""
    start = round(meta["source_offset_s"] * RATE)
    assert np.array_equal(samples, source[start : start + len(samples)])
    assert meta["duration_s"] == pytest.approx(len(samples) / RATE, abs=1e-4)
    return start / RATE, (start + len(samples)) / RATE


def check_wake_then_command(tmp_path: Path, clip: Path, scene: str, model: str) -> dict:
    """A real recording of a wake word, then the scene's command, over the scene's noise bed,
    through `recorder run --model MODEL`: the one request saved is a bit-exact slice that
    starts inside the wake word and holds the whole command. Returns its sidecar."""
    wake = read_pcm(clip)
    audio = read_pcm(AUDIO / f"{scene}.wav")
    c0, c1 = SCENES[scene]["command"]
    command = audio[int(c0 * RATE) - 800 : int(c1 * RATE) + 800]
    quiet = audio[:RATE]  # the scene's noise bed before its wake word
    stream = np.concatenate([quiet, quiet, wake, quiet[:4000], command, quiet, quiet])
    path = write_pcm(tmp_path / "stream.wav", stream)
    rec = tmp_path / "rec"
    proc = run_recorder(
        "run", "--source", f"file:{path}", "--recordings", str(rec), "--model", model
    )
    assert proc.returncode == 0, proc.stderr.decode()
    [(meta, samples)] = recordings(rec)
    start_s, end_s = check_slice(meta, samples, stream)
    wake_start = 2.0
    command_start = wake_start + (len(wake) + 4000) / RATE
    assert wake_start <= start_s <= command_start
    assert end_s >= command_start + len(command) / RATE - 0.05
    return meta


def locate(mic: VirtualMic, meta: dict, samples: np.ndarray) -> int:
    """Index in mic.fed of the saved audio, which must be the fed stream's samples exactly."""
    assert len(samples) == meta["samples"] > 0
    offset = round(meta["source_offset_s"] * RATE)
    fed = mic.fed
    if not np.array_equal(samples, fed[offset : offset + len(samples)]):
        found = mic.find(samples)
        pytest.fail(
            f"saved audio is not fed[{offset}:{offset + len(samples)}] (source_offset_s "
            f"{meta['source_offset_s']}); exact matches in the fed stream at: {found}"
        )
    return offset


def kill_while_saving(
    tmp_path: Path, rec: Path, args: list[str], check: Callable[[Path], int], kills: int, seed: int
) -> int:
    """`kills` times: start `recorder run ARGS --source stdin` on a stream of requests, SIGKILL
    it at a random moment while it saves, then `check` what is visible (which returns the
    number of complete recordings: it never goes down). Returns the last count."""
    stream = np.tile(read_pcm(AUDIO / "two_requests.wav"), 30).tobytes()
    rng = random.Random(seed)
    saved_before = 0
    for _ in range(kills):
        with Daemon(tmp_path, *args, model=None, rec=rec) as d:
            writer = threading.Thread(target=_write_all, args=(d, stream), daemon=True)
            writer.start()
            # A random moment while it saves, counted in saves rather than in seconds (a loaded
            # machine saves more slowly): after 1 to 3 more, then up to one save's time more.
            target = saved_before + rng.randint(1, 3)
            d.wait_for(
                f"{target} saved",
                lambda target=target: len(list(rec.glob("*.json"))) >= target,
                120,
                interval=0.005,
            )
            time.sleep(rng.uniform(0.0, 0.15))  # the random moment itself: a time, on purpose
            d.kill()
            writer.join(timeout=10)
        assert rec.exists()
        count = check(rec)
        assert count >= saved_before  # nothing that was complete was lost
        saved_before = count
    return saved_before


def _write_all(d: Daemon, data: bytes) -> None:
    """All of `data` to the daemon's stdin, then its end; a daemon killed meanwhile is fine."""
    assert d.proc.stdin is not None
    try:
        d.proc.stdin.write(data)
        d.proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass


@contextlib.contextmanager
def stt_server(sock: Path, mode: str = "real", received: Path | None = None):
    """tests/wyoming_server.py (pocketsphinx behind wyoming's server classes) on a Unix socket,
    in `mode`, up once it accepts a connection; killed on leaving."""
    server = Path(__file__).parent / "wyoming_server.py"
    extra = [str(received)] if received else []
    proc = subprocess.Popen(
        [sys.executable, str(server), f"unix://{sock}", mode, *extra], stderr=subprocess.PIPE
    )

    def accepts() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(sock))
            except OSError:
                return False
        return True

    try:
        wait_for(accepts, timeout=60)
        yield proc
    finally:
        proc.kill()
        proc.wait()
