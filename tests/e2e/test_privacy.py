"""Nothing leaves the device: the running daemon never creates a network socket."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from conftest import AUDIO, RECORDER, read_pcm


def test_daemon_opens_no_network_socket(tmp_path):
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    proc = subprocess.Popen(
        [
            strace,
            "-f",
            "-qq",
            "-e",
            "trace=socket,connect,sendto,sendmsg",
            "-o",
            str(trace),
            str(RECORDER),
            "run",
            "--source",
            "stdin",
            "--recordings",
            str(tmp_path / "rec"),
            "--runtime-dir",
            str(tmp_path / "run"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.stdin.write(read_pcm(AUDIO / "jarvis_pause_command.wav").tobytes())
        proc.stdin.flush()
        time.sleep(15)  # onnxruntime's telemetry, when enabled, calls home after ~9 s
        proc.stdin.close()
        proc.wait(timeout=20)
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode()
    assert b"saved" in err  # the daemon did its work meanwhile
    calls = trace.read_text().splitlines()
    assert any("AF_UNIX" in c for c in calls)  # strace did see the control socket
    network = [c for c in calls if "AF_INET" in c or "AF_NETLINK" in c]
    assert network == []
