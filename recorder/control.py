"""The control socket: `recorder mute | unmute | status | events | monitor --attach` talking to
the running daemon.

One request per connection: the client sends a command line (`mute`, `unmute`, `status`) and
reads one JSON line back; anything else (garbage, non-UTF-8, an over-long line) gets
`{"ok": false, "error": ...}`. `events` instead keeps the connection: after its first line
(`{"ok": true, ...}`) every journal record follows as one JSON line, as it happens. `monitor`
does too, with the models' `thresholds` in its first line, and between the records one line per
analysed frame (`{"event": "frame", ...}`: scores, VAD, state, level; numbers, never audio),
made only while a monitor subscriber is attached (`recorder.monitor_feed`). One thread
serves every connection through a selector, with a deadline per connection and a bound on their
number, and hands mute changes to the processing loop, which applies them between frames.

Who may ask what is checked on the peer's credentials (SO_PEERCRED): the daemon's own user and
root may ask anything; members of `[control] group`, when set, may ask `status`, `events` and
`monitor` (the socket is then 0660 and owned by that group, the runtime directory 0710);
anyone else is refused, and the refusal is logged with the peer's uid. Without a group the
socket is 0600.

A subscriber's records wait in a bounded outbox; the journal's sink only appends to a queue and
wakes the thread, so a subscriber that stops reading never slows the processing loop. One whose
outbox overflows gets a last line `{"event": "cut_off", "reason": ...}` and is closed.

The client (`request`) is in `recorder.control_client` and the directories' defaults in
`recorder.dirs`; both are importable from here too.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder import threads
from recorder.control_client import SOCKET_NAME as SOCKET_NAME
from recorder.control_client import request as request
from recorder.dirs import SYSTEM_RUNTIME_DIR as SYSTEM_RUNTIME_DIR
from recorder.dirs import default_runtime_dir as default_runtime_dir
from recorder.dirs import default_state_dir as default_state_dir
from recorder.dirs import private_dir
from recorder.errors import RecorderError
from recorder.journal import Journal, Record
from recorder.monitor_feed import MonitorFeed

log = logging.getLogger("recorder")


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


MAX_COMMAND_BYTES = 4096
"""A command line is a word; a longer one is refused and the connection closed."""
MAX_CLIENTS = 64
"""Connections served at once; at the limit the oldest is closed to make room."""
CLIENT_DEADLINE_S = 2.0
"""A connection that has not sent its command and taken its reply by then is closed."""
_TICK_S = 0.5
SUBSCRIBER_BACKLOG_BYTES = 16384
"""Records (about 100, or 10 s of a monitor's frames) waiting for a subscriber beyond its
socket's buffer; past that it is cut off."""
SUBSCRIBER_SNDBUF = 8192
"""A subscriber's socket buffer: small, so that the outbox, not the kernel, holds the backlog."""
CUT_OFF_GRACE_S = 60.0
"""A subscriber cut off has this long to read its last line before the connection closes."""
FLUSH_AT_CLOSE_S = 2.0
"""At shutdown, subscribers get this long to take the last records (`stopped`)."""
GROUP_COMMANDS = ("status", "events", "monitor")
"""What members of `[control] group` may ask."""


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    deadline: float
    peer: Peer
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""
    subscriber: bool = False
    """An `events` or `monitor` connection: records are appended to its outbox as they happen."""
    monitor: bool = False
    """A `monitor` connection: the frames' lines too."""
    closing: bool = False
    """Closed once its outbox is sent (a subscriber cut off, or at shutdown)."""


class ControlServer:
    """Serves the control socket on one thread with a selector: one slow, silent or hostile
    client never holds up another, and nothing a client sends can end the thread."""

    def __init__(
        self,
        runtime_dir: Path,
        handler: Handler,
        journal: Journal | None = None,
        group: str = "",
        feed: MonitorFeed | None = None,
    ):
        self.path, self.handler = runtime_dir / SOCKET_NAME, handler
        self.journal, self.feed = journal, feed
        self.gid: int | None = None
        if group:
            try:
                self.gid = grp.getgrnam(group).gr_gid
            except KeyError:
                raise RecorderError(f"[control] group: no group named {group!r}") from None
        private_dir(runtime_dir, "runtime directory")
        if self.gid is not None:  # the group may reach the socket, and list nothing
            try:
                os.chown(runtime_dir, -1, self.gid)
                os.chmod(runtime_dir, 0o710)
            except OSError as e:
                raise RecorderError(
                    f"runtime directory {runtime_dir}: cannot give it to group {group!r} "
                    f"({e.strerror or e})"
                ) from None
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
            if self.gid is not None:
                os.chown(self.path, -1, self.gid)
            os.chmod(self.path, 0o600 if self.gid is None else 0o660)
            self.sock.listen(128)
        except OSError as e:
            raise RecorderError(f"control socket {self.path}: {e.strerror or e}") from None
        self.sock.setblocking(False)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self._records: deque[tuple[bytes, bool]] = deque()  # (line, only for monitors)
        self.subscribers = 0
        self.thread = threads.start(
            "control", self._serve, keeps_running=lambda: not self._stop.is_set()
        )
        if journal is not None:
            journal.subscribe(self._on_record)
            if feed is not None:
                feed.send = self._queue

    def _on_record(self, record: Record) -> None:
        """The journal's sink (the processing loop's thread): queue and wake, never wait."""
        self._queue((json.dumps(record) + "\n").encode(), frame=False)

    def _queue(self, line: bytes, frame: bool = True) -> None:
        """A line for the subscribers (the monitor feed's frames by default): queue and wake."""
        self._records.append((line, frame))
        with contextlib.suppress(OSError):  # a full wake-up pipe already has a wake-up in it
            self._wake_w.send(b"r")

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
                    self._fan_out(sel, clients)
                    now = time.monotonic()
                    for c in [c for c in clients.values() if c.deadline <= now]:
                        self._drop(sel, clients, c)
            finally:
                self._fan_out(sel, clients)
                self._flush(sel, clients)
                for c in list(clients.values()):
                    self._drop(sel, clients, c)

    def _fan_out(self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client]) -> None:
        """Hand the queued records to every subscriber; cut off one that lags too far."""
        subscribers = [c for c in clients.values() if c.subscriber and not c.closing]
        while self._records:
            line, frame = self._records.popleft()
            for c in subscribers:
                if c.closing or (frame and not c.monitor):
                    continue
                if len(c.outbox) + len(line) > SUBSCRIBER_BACKLOG_BYTES:
                    self._cut_off(sel, c, "it did not read its events in time")
                    continue
                if not c.outbox:
                    sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                c.outbox += line
        live = [c for c in clients.values() if c.subscriber and not c.closing]
        self.subscribers = len(live)
        if self.feed is not None:  # no monitor: the loop makes no frame lines
            self.feed.attached = sum(c.monitor for c in live)

    def _cut_off(self, sel: selectors.BaseSelector, c: _Client, reason: str) -> None:
        log.warning(
            "control socket: %s subscriber (pid %d, uid %d) cut off: %s",
            "monitor" if c.monitor else "events",
            c.peer.pid,
            c.peer.uid,
            reason,
        )
        c.outbox = (json.dumps({"event": "cut_off", "reason": reason}) + "\n").encode()
        c.closing = True
        c.deadline = time.monotonic() + CUT_OFF_GRACE_S
        with contextlib.suppress(KeyError, ValueError):
            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _flush(self, sel: selectors.BaseSelector, clients: dict[socket.socket, _Client]) -> None:
        """At shutdown: give the subscribers what they are owed, for a moment at most."""
        deadline = time.monotonic() + FLUSH_AT_CLOSE_S
        for key in list(sel.get_map().values()):
            if key.fileobj in (self.sock, self._wake_r):
                sel.unregister(key.fileobj)
        for c in list(clients.values()):
            if c.subscriber and c.outbox:
                c.closing = True
                sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            else:
                self._drop(sel, clients, c)
        while clients and time.monotonic() < deadline:
            for key, events in sel.select(min(deadline - time.monotonic(), _TICK_S)):
                client = next((c for c in clients.values() if c.sock is key.fileobj), None)
                if client is not None:
                    self._serve_subscriber(sel, clients, client, events)

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
        if c.subscriber:
            self._serve_subscriber(sel, clients, c, events)
            return
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
            if line.strip() in (b"events", b"monitor") and self.journal is not None:
                self._subscribe(sel, c, line.strip().decode())
                return
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

    def _subscribe(self, sel: selectors.BaseSelector, c: _Client, command: str) -> None:
        """`events`, or `monitor` (the frames too, when the daemon feeds them)."""
        if not self.allowed(c.peer, command):
            c.outbox = (json.dumps(self._refuse(c.peer, command)) + "\n").encode()
            sel.modify(c.sock, selectors.EVENT_WRITE)
            return
        c.subscriber, c.monitor = True, command == "monitor"
        hello = self.feed.hello() if c.monitor and self.feed is not None else {}
        c.deadline = float("inf")
        with contextlib.suppress(OSError):
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SUBSCRIBER_SNDBUF)
        seq = self.journal.seq if self.journal is not None else 0
        first = {"ok": True, "subscribed": True, "seq": seq, **hello}
        c.outbox = (json.dumps(first) + "\n").encode()
        sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        log.info("control socket: %s subscriber (pid %d, uid %d)", command, c.peer.pid, c.peer.uid)

    def _serve_subscriber(
        self,
        sel: selectors.BaseSelector,
        clients: dict[socket.socket, _Client],
        c: _Client,
        events: int,
    ) -> None:
        try:
            if events & selectors.EVENT_READ and not c.sock.recv(4096):
                self._drop(sel, clients, c)  # it went away
                return
            if events & selectors.EVENT_WRITE and c.outbox:
                c.outbox = c.outbox[c.sock.send(c.outbox) :]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sel, clients, c)
            return
        if not c.outbox:
            if c.closing:
                self._drop(sel, clients, c)
            else:
                sel.modify(c.sock, selectors.EVENT_READ)

    def allowed(self, peer: Peer, command: str) -> bool:
        """The daemon's user and root: anything; the control group: GROUP_COMMANDS."""
        if peer.uid in (0, os.geteuid()):
            return True
        return command in GROUP_COMMANDS and self.gid is not None and _in_group(peer, self.gid)

    @staticmethod
    def _refuse(peer: Peer, command: str) -> dict[str, Any]:
        log.warning(
            "control socket: refused %r from uid %d (pid %d)", command[:40], peer.uid, peer.pid
        )
        return {"ok": False, "error": f"permission denied: uid {peer.uid} may not {command!r}"}

    def _reply(self, line: bytes, peer: Peer) -> dict[str, Any]:
        try:
            command = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            return {"ok": False, "error": "command is not UTF-8 text"}
        if not self.allowed(peer, command):
            return self._refuse(peer, command)
        try:
            reply = self.handler(command, peer)
            if command == "status" and reply.get("ok") and self.journal is not None:
                reply["subscribers"] = self.subscribers
                reply["last_event_seq"] = self.journal.seq
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
        """Stop serving; the subscribers first get the records published until now."""
        if self.journal is not None:
            self.journal.unsubscribe(self._on_record)
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self.thread.join(timeout=1 + FLUSH_AT_CLOSE_S)
        self.sock.close()
        self._wake_r.close()
        self._wake_w.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _in_group(peer: Peer, gid: int) -> bool:
    """The peer's primary group, or one of its process's supplementary groups."""
    if peer.gid == gid:
        return True
    try:
        with open(f"/proc/{peer.pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return str(gid) in line.split()[1:]
    except OSError:
        pass
    return False
