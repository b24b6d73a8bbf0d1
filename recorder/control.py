"""The control socket: `recorder mute | unmute | status` talking to the running daemon.

One request per connection: the client sends a command line (`mute`, `unmute`, `status`) and
reads one JSON line back. The socket is created mode 0600 in the runtime directory; a thread
serves it and hands mute changes to the processing loop, which applies them between frames.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recorder.errors import RecorderError

SOCKET_NAME = "control.sock"
SYSTEM_RUNTIME_DIR = Path("/run/recorder")  # the system service's RuntimeDirectory
Handler = Callable[[str], dict[str, Any]]


def default_runtime_dir() -> Path:
    if os.environ.get("RUNTIME_DIRECTORY"):
        return Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "recorder"
    return SYSTEM_RUNTIME_DIR


def default_state_dir() -> Path:
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]) / "recorder"
    return Path.home() / ".local" / "state" / "recorder"


class ControlServer:
    def __init__(self, runtime_dir: Path, handler: Handler):
        self.path = runtime_dir / SOCKET_NAME
        self.handler = handler
        try:
            runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if self.path.exists():
                if request(runtime_dir, "status", timeout_s=1.0) is not None:
                    raise RecorderError(f"another recorder daemon is running (control socket "
                                        f"{self.path}); give this one its own --runtime-dir")
                self.path.unlink()  # left by a daemon that died
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            old = os.umask(0o177)
            try:
                self.sock.bind(str(self.path))
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            self.sock.listen(8)
        except OSError as e:
            raise RecorderError(f"control socket {self.path}: {e.strerror or e}") from None
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:
                    command = conn.makefile("r").readline().strip()
                    reply = self.handler(command)
                    conn.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=1)
        self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def request(runtime_dir: Path, command: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """Send a command to the running daemon; None when no daemon listens there."""
    path = runtime_dir / SOCKET_NAME
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(path))
            s.sendall(command.encode() + b"\n")
            line = s.makefile("r").readline()
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError):
        return None
    except PermissionError:
        raise RecorderError(f"control socket {path}: permission denied") from None
    except OSError as e:
        raise RecorderError(f"control socket {path}: {e.strerror or e}") from None
    try:
        return json.loads(line)
    except ValueError:
        raise RecorderError(f"control socket {path}: unreadable reply {line!r}") from None
