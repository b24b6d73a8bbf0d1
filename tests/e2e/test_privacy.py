"""Nothing leaves the device: the running daemon never creates a network socket."""

from __future__ import annotations

import shutil
import time

import pytest
from harness import REQUEST, Daemon

TELEMETRY_S = 15.0  # onnxruntime's telemetry, when enabled, calls home after ~9 s


def test_daemon_opens_no_network_socket(tmp_path):
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    prefix = [strace, "-f", "-qq", "-e", "trace=socket,connect,sendto,sendmsg", "-o", str(trace)]
    with Daemon(tmp_path, model=None, prefix=prefix) as d:
        d.write(REQUEST)
        # What is under test is what the daemon does over a span of wall time: long enough
        # for a library that calls home later on to have done so.
        time.sleep(TELEMETRY_S)
        d.end_input()
        assert d.wait_exit(20) == 0, d.log()
    assert "saved" in d.log()  # the daemon did its work meanwhile
    calls = trace.read_text().splitlines()
    assert any("AF_UNIX" in c for c in calls)  # strace did see the control socket
    network = [c for c in calls if "AF_INET" in c or "AF_NETLINK" in c]
    assert network == []
