"""Living with the service: log lines the journal files at their priority (and a terminal's
with a time), every start-time mistake in the indicator hook and the state directory an exit
status 2 with one line, and no request kept without its line in the audit trail."""

from __future__ import annotations

import os
import re
import select
import subprocess
from pathlib import Path

import pytest
from conftest import AUDIO, RECORDER, recordings, run_recorder, small_tmpfs
from harness import QUIET, REQUEST, Daemon, wait_for

SOURCE = f"file:{AUDIO / 'jarvis_bare.wav'}"


def run_args(tmp: Path, *more: str) -> list[str]:
    """`recorder run` on a short file, with its own recordings and state directories."""
    return [
        str(RECORDER),
        "run",
        "--source",
        SOURCE,
        "--recordings",
        str(tmp / "rec"),
        "--state-dir",
        str(tmp / "state"),
        *more,
    ]


# A hook that fails on every state (optional, so the daemon goes on): one WARNING per state
# change, and the INFO lines of any run.
FAILING_HOOK = ("--indicator-command", "/bin/false")


def run_to_file(tmp: Path, journal_stream: str | None, *more: str) -> tuple[int, list[str]]:
    """The daemon's exit status and stderr lines, stderr a file; JOURNAL_STREAM as given
    ("{dev}:{ino}" of that file when "self")."""
    cfg = tmp / "optional.toml"
    cfg.write_text("[indicator]\nrequired = false\n")
    err = tmp / "stderr.log"
    with open(err, "wb") as f:
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal_stream == "self":
            st = os.fstat(f.fileno())
            journal_stream = f"{st.st_dev}:{st.st_ino}"
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        proc = subprocess.run(
            run_args(tmp, "--config", str(cfg), *more),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=f,
            env=env,
            timeout=120,
        )
    return proc.returncode, err.read_text().splitlines()


def test_lines_carry_their_syslog_priority_when_stderr_is_the_journal(tmp_path):
    status, lines = run_to_file(tmp_path, "self", *FAILING_HOOK)
    assert status == 0, lines
    assert lines and all(re.match(r"<[3467]>", line) for line in lines), lines
    assert any(line.startswith("<4>WARNING indicator failed") for line in lines), lines
    assert any(line.startswith("<6>INFO listening on") for line in lines), lines


def test_a_start_error_in_the_journal_is_filed_as_an_error(tmp_path):
    status, lines = run_to_file(tmp_path, "self", "--indicator-command", "/nonexistent/led")
    assert status == 2
    assert lines == ["<3>recorder: error: [indicator] command: /nonexistent/led: no such file"]


@pytest.mark.parametrize("other", ["1:1", "not-a-stream", ""])
def test_no_prefix_when_journal_stream_names_another_file(tmp_path, other):
    """A variable inherited by a process whose stderr went elsewhere (here: a file whose
    device and inode it does not name) leaves the lines as they were."""
    status, lines = run_to_file(tmp_path, other, *FAILING_HOOK)
    assert status == 0, lines
    assert any(line.startswith("WARNING indicator failed") for line in lines), lines
    assert any(line.startswith("INFO listening on") for line in lines), lines
    assert not any(line.startswith("<") for line in lines), lines


def test_a_terminal_gets_a_local_time_on_each_line(tmp_path):
    primary, secondary = os.openpty()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    try:
        proc = subprocess.Popen(
            run_args(tmp_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
            env=env,
        )
        os.close(secondary)
        out = b""
        while True:  # read as it comes, or a full terminal buffer would stop the daemon
            ready, _, _ = select.select([primary], [], [], 120)
            assert ready, out
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the daemon closed the terminal's last writer
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0, out
    finally:
        os.close(primary)
    lines = [x for x in out.decode().splitlines() if x.strip()]
    assert lines, out
    stamp = r"\d\d:\d\d:\d\d\.\d\d\d "
    assert all(re.match(stamp + r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", x) for x in lines), lines
    assert any(re.match(stamp + "INFO listening on", x) for x in lines), lines


def check_refused(tmp: Path, proc: subprocess.CompletedProcess, *names: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert all(name in err for name in names), (names, err)
    rec = tmp / "rec"
    assert not rec.exists() or not any(rec.iterdir()), list(rec.iterdir())


def test_a_missing_or_unusable_indicator_command_stops_the_start(tmp_path):
    not_executable = tmp_path / "led.txt"
    not_executable.write_text("echo\n")
    cases = {
        "/nonexistent/led-ring": "/nonexistent/led-ring: no such file",
        f"{not_executable} --bright": f"{not_executable}: not executable",
        "no-such-led-program-here": "'no-such-led-program-here' not found on $PATH",
        str(tmp_path): f"{tmp_path}: no such file",  # a directory is not a program
        'unbalanced "quote': "cannot parse",
    }
    for command, message in cases.items():
        cfg = tmp_path / "indicator.toml"
        cfg.write_text("[indicator]\ncommand = " + toml_string(command) + "\n")
        proc = run_recorder(*run_args(tmp_path, "--config", str(cfg))[1:])
        check_refused(tmp_path, proc, "[indicator] command", message)


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_state_directory_others_can_write_to_stops_the_start(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    proc = run_recorder(*run_args(tmp_path)[1:])
    check_refused(tmp_path, proc, f"state directory {state}: writable by others", "chmod go-w")
    assert not (state / "audit.log").exists()


def test_a_state_directory_that_cannot_be_written_stops_the_start(tmp_path):
    with small_tmpfs(tmp_path / "state", 64) as state:
        state.chmod(0o700)
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        proc = run_recorder(*run_args(tmp_path)[1:])
        check_refused(tmp_path, proc, f"state directory {state}: cannot write audit.lock")


def test_an_audit_log_that_cannot_be_appended_to_stops_the_start(tmp_path):
    (tmp_path / "state" / "audit.log").mkdir(parents=True, mode=0o700)
    (tmp_path / "state").chmod(0o700)
    proc = run_recorder(*run_args(tmp_path)[1:])
    check_refused(tmp_path, proc, f"state directory {tmp_path / 'state'}: cannot write audit.log")


def test_a_request_whose_audit_line_cannot_be_written_is_not_kept(tmp_path):
    """The audit log turns into a directory while the daemon runs: the next request is
    deleted, not kept without its line; the one before it is kept with its line."""
    with Daemon(tmp_path) as d:
        d.feed(QUIET + REQUEST + QUIET)
        wait_for(lambda: len(recordings(d.rec)) == 1, what="the first request saved")
        audit = d.state_dir / "audit.log"
        kept = audit.read_text()
        assert '"event":"saved"' in kept
        audit.unlink()
        audit.mkdir()
        d.feed(REQUEST + QUIET)
        wait_for(
            lambda: "could not write the request's audit line" in d.log(),
            what="the refused request",
            context=d.log,
        )
        assert len(recordings(d.rec)) == 1
        assert sorted(p.suffix for p in d.rec.iterdir()) == [".json", ".wav"], list(d.rec.iterdir())
        assert d.request("status")["saved_since_start"] == 1
        audit.rmdir()
        log = d.stop()
    assert f"audit log {audit}" in log
