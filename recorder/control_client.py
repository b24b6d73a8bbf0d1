"""The control socket's client: one command sent to the running daemon, one JSON line back.

The protocol and who may ask what are described in `recorder.control`, the server."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from recorder.errors import RecorderError

SOCKET_NAME = "control.sock"


def request(runtime_dir: Path, command: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """Send a command to the running daemon; None when no daemon listens there."""
    path = runtime_dir / SOCKET_NAME
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    s.connect(str(path))
                    break
                except BlockingIOError:  # the listen queue is full: wait for room
                    if time.monotonic() > deadline:
                        raise TimeoutError from None
                    time.sleep(0.01)
            s.sendall(command.encode() + b"\n")
            line = s.makefile("rb").readline(1 << 20).decode("utf-8", "replace")
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError):
        return None
    except PermissionError:
        raise RecorderError(f"control socket {path}: permission denied") from None
    except OSError as e:
        raise RecorderError(f"control socket {path}: {e.strerror or e}") from None
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise RecorderError(f"control socket {path}: unreadable reply {line[:200]!r}")
    return reply
