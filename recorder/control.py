"""The control socket: `recorder mute | unmute | status` talking to the running daemon.

One request per connection: the client sends a command line (`mute`, `unmute`, `status`) and
reads one JSON line back; anything else (garbage, non-UTF-8, an over-long line) gets
`{"ok": false, "error": ...}`. The socket is created mode 0600 in the runtime directory; one
thread serves every connection through a selector, with a deadline per connection and a bound
on their number, and hands mute changes to the processing loop, which applies them between
frames.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder import threads
from recorder.dirs import private_dir
from recorder.errors import RecorderError

log = logging.getLogger("recorder")

SOCKET_NAME = "control.sock"
SYSTEM_RUNTIME_DIR = Path("/run/recorder")  # the system service's RuntimeDirectory


@dataclass(frozen=True)
class Peer:
    """Who is on the other end of a connection, as the kernel says (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", creds)
        return cls(pid, uid, gid)


Handler = Callable[[str, Peer], dict[str, Any]]
"""Answers one command from one peer."""


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


MAX_COMMAND_BYTES = 4096
"""A command line is a word; a longer one is refused and the connection closed."""
MAX_CLIENTS = 64
"""Connections served at once; at the limit the oldest is closed to make room."""
CLIENT_DEADLINE_S = 2.0
"""A connection that has not sent its command and taken its reply by then is closed."""
_TICK_S = 0.5


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    deadline: float
    peer: Peer
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""


class ControlServer:
    """Serves the control socket on one thread with a selector: one slow, silent or hostile
    client never holds up another, and nothing a client sends can end the thread."""

    def __init__(self, runtime_dir: Path, handler: Handler):
        self.path = runtime_dir / SOCKET_NAME
        self.handler = handler
        private_dir(runtime_dir, "runtime directory")
        try:
            if self.path.exists() or self.path.is_symlink():
                if request(runtime_dir, "status", timeout_s=1.0) is not None:
                    raise RecorderError(
                        f"another recorder daemon is running (control socket "
                        f"{self.path}); give this one its own --runtime-dir"
                    )
                self.path.unlink()  # left by a daemon that died
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            old = os.umask(0o177)
            try:
                self.sock.bind(str(self.path))
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            self.sock.listen(128)
        except OSError as e:
            raise RecorderError(f"control socket {self.path}: {e.strerror or e}") from None
        self.sock.setblocking(False)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.thread = threads.start(
            "control", self._serve, keeps_running=lambda: not self._stop.is_set()
        )

    # --- the control thread ---------------------------------------------------------------
    def _serve(self) -> None:
        clients: dict[socket.socket, _Client] = {}
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self._stop.is_set():
                    now = time.monotonic()
                    soonest = min((c.deadline for c in clients.values()), default=now + _TICK_S)
                    for key, events in sel.select(max(0.0, min(soonest - now, _TICK_S))):
                        if key.fileobj is self.sock:
                            self._accept(sel, clients)
                        elif key.fileobj is self._wake_r:
                            with contextlib.suppress(OSError):
                                self._wake_r.recv(64)
                        elif key.fileobj in clients:
                            client = clients[key.fileobj]
                            try:
                                self._serve_client(sel, clients, client, events)
                            except Exception:  # a bug: that connection ends, the server not
                                log.exception("control connection failed")
                                self._drop(sel, clients, client)
                    now = time.monotonic()
                    for c in [c for c in clients.values() if c.deadline <= now]:
                        self._drop(sel, clients, c)
            finally:
                for c in list(clients.values()):
                    self._drop(sel, clients, c)

    def _accept(self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client]) -> None:
        for _ in range(MAX_CLIENTS):  # then back to the others: a flood never starves them
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as e:  # out of file descriptors, ...: the others are still served
                log.warning("control socket: cannot accept a connection: %s", e.strerror or e)
                return
            if len(clients) >= MAX_CLIENTS:
                self._drop(sel, clients, min(clients.values(), key=lambda c: c.deadline))
            try:
                peer = Peer.of(conn)
            except OSError as e:
                log.warning("control socket: no credentials for a peer: %s", e.strerror or e)
                conn.close()
                continue
            conn.setblocking(False)
            client = _Client(conn, time.monotonic() + CLIENT_DEADLINE_S, peer)
            clients[conn] = client
            sel.register(conn, selectors.EVENT_READ)

    def _serve_client(
        self,
        sel: selectors.BaseSelector,
        clients: dict[socket.socket, _Client],
        c: _Client,
        events: int,
    ) -> None:
        try:
            if c.outbox:
                if events & selectors.EVENT_WRITE:
                    c.outbox = c.outbox[c.sock.send(c.outbox) :]
                if not c.outbox:
                    self._drop(sel, clients, c)
                return
            data = c.sock.recv(MAX_COMMAND_BYTES + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sel, clients, c)
            return
        c.inbox += data
        line, newline, _ = c.inbox.partition(b"\n")
        if len(line) > MAX_COMMAND_BYTES:
            reply: dict[str, Any] = {"ok": False, "error": "command too long"}
        elif newline or (not data and line):  # a line, or a last line without its newline
            reply = self._reply(bytes(line), c.peer)
        elif not data:  # closed without a command
            self._drop(sel, clients, c)
            return
        else:
            return
        c.outbox = (json.dumps(reply) + "\n").encode()
        with contextlib.suppress(OSError):
            c.sock.shutdown(socket.SHUT_RD)  # whatever else it sends is not read
        sel.modify(c.sock, selectors.EVENT_WRITE)

    def _reply(self, line: bytes, peer: Peer) -> dict[str, Any]:
        try:
            command = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            return {"ok": False, "error": "command is not UTF-8 text"}
        try:
            reply = self.handler(command, peer)
            json.dumps(reply)
        except Exception:  # a bug in the handler: logged, answered, and the server serves on
            log.exception("control command %r failed", command[:80])
            return {"ok": False, "error": "internal error (see the daemon's log)"}
        return reply

    @staticmethod
    def _drop(
        sel: selectors.BaseSelector, clients: dict[socket.socket, _Client], c: _Client
    ) -> None:
        clients.pop(c.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(c.sock)
        c.sock.close()

    # --- the daemon's side ------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self.thread.join(timeout=1)
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


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
