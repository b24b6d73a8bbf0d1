"""The audit trail: an append-only, hash-chained JSON-lines log in the state directory.

Each line is one JSON object with a running number `n`, its UTC `time`, the `event`, its facts
(ids, hashes, reasons, uids; never words or audio) and `prev`, the SHA-256 of the previous
line's bytes (GENESIS for the first line ever). Appends from the daemon and from other commands
take an exclusive lock on `audit.lock`, so the chain never forks, and are fsynced. The log is
bounded: past `max_bytes` it is renamed to `audit.log.1` (older files shift, the oldest is
dropped) and the new file's first line chains to the old file's last, so `verify` checks the
chain across the files. A hash chain shows any edit, deletion or reordering of lines that have
a successor; removing the newest lines is only seen against a copy of the latest hash, which
`verify` prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from recorder.digest import hexdigest
from recorder.dirs import fsync_dir, open_existing, open_file, private_dir
from recorder.errors import RecorderError
from recorder.journal import Refused
from recorder.recording import utc_iso

log = logging.getLogger("recorder")

AUDIT_FILE = "audit.log"
LOCK_FILE = "audit.lock"
GENESIS = "0" * 64
MAX_BYTES = 1_000_000
KEEP_FILES = 4
"""The current file and this many minus one rotated ones."""
_TAIL_BYTES = 16384
_LOCK_FLAGS = os.O_RDWR
_LOG_FLAGS = os.O_WRONLY | os.O_APPEND

FIELDS: dict[str, tuple[str, ...]] = {
    "started": ("source", "pid", "muted"),
    "stopped": ("reason", "saved"),
    "reloaded": (),
    "wake": ("model", "score", "offset_s"),
    "wake_ignored": ("model", "score", "offset_s", "reason"),
    "saved": ("id", "written", "audio_sha256", "duration_s", "sealed", "dry_run"),
    "discarded": ("reason",),
    "deleted": ("id", "why"),
    "muted": ("uid", "switch", "button"),
    "unmuted": ("uid", "switch", "button"),
    "device_lost": ("reason",),
    "device_restored": (),
}
"""The journal records the audit keeps, and the only fields it keeps of each."""


def _read(path: Path) -> BinaryIO:
    """One of the log's files, for reading: a regular file (never through a link, never
    blocking on a FIFO), else RecorderError naming it."""
    return os.fdopen(open_existing(path, os.O_RDONLY, "audit log"), "rb")


def line_hash(line: bytes) -> str:
    return hexdigest(line.rstrip(b"\n"))


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    message: str
    head: str
    """The hash of the last line: compare it with a copy kept elsewhere to see truncation."""


class AuditLog:
    def __init__(self, state_dir: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP_FILES):
        self.state_dir = state_dir
        self.path = state_dir / AUDIT_FILE
        self.max_bytes = max_bytes
        self.keep = max(keep, 1)
        self._prepared = False

    def files(self) -> list[Path]:
        """The log's files, oldest first."""
        rotated = [self.state_dir / f"{AUDIT_FILE}.{i}" for i in range(self.keep - 1, 0, -1)]
        return [p for p in rotated if p.exists()] + ([self.path] if self.path.exists() else [])

    def prepare(self) -> None:
        """At start: the state directory made private (created 0700; refused when others can
        write to it or it is another user's), its lock file created or opened and the log, if
        there is one, opened for appending, as each append does. Raises RecorderError naming
        the directory (exit 2)."""
        private_dir(self.state_dir, "state directory")
        for path, flags, what in (
            (self.state_dir / LOCK_FILE, _LOCK_FLAGS, "audit lock"),
            (self.path, _LOG_FLAGS, "audit log"),
        ):
            if path == self.path and not os.path.lexists(path):
                continue  # the first append creates it, where the lock file was just made
            try:
                os.close(open_file(path, flags, what)[0])
            except OSError as e:
                raise RecorderError(
                    f"state directory {self.state_dir}: cannot write {path.name} "
                    f"({e.strerror or e})"
                ) from None
        self._prepared = True

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one entry (locked, fsynced). Raises OSError or RecorderError."""
        if not self._prepared:
            private_dir(self.state_dir, "state directory")
            self._prepared = True
        lock_fd, _ = open_file(self.state_dir / LOCK_FILE, _LOCK_FLAGS, "audit lock")
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(self.path).st_size >= self.max_bytes:
                    self._rotate()
            last = self._last_line()
            if last is None:
                prev, n = GENESIS, 1
            else:
                prev = line_hash(last)
                try:
                    n = int(json.loads(last)["n"]) + 1
                except (ValueError, KeyError, TypeError):
                    n = 0  # a damaged last line: the chain still links, verify reports it
            entry = {"n": n, "time": utc_iso(datetime.now(UTC)), "event": event, **fields}
            entry["prev"] = prev
            line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
            fd, created = open_file(self.path, _LOG_FLAGS, "audit log")
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.state_dir)
            return entry
        finally:
            os.close(lock_fd)

    def _rotate(self) -> None:
        names = [self.path] + [self.state_dir / f"{AUDIT_FILE}.{i}" for i in range(1, self.keep)]
        if self.keep == 1:
            self.path.unlink()
        else:
            names[-1].unlink(missing_ok=True)
            for older, newer in zip(reversed(names[1:]), reversed(names[:-1]), strict=True):
                if newer.exists():
                    os.replace(newer, older)
        fsync_dir(self.state_dir)

    def _last_line(self) -> bytes | None:
        for path in reversed(self.files()):
            with _read(path) as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - _TAIL_BYTES))
                tail = f.read()
                if size > _TAIL_BYTES and tail.rstrip(b"\n").count(b"\n") == 0:
                    f.seek(0)
                    tail = f.read()
            lines = [x for x in tail.split(b"\n") if x]
            if lines:
                return lines[-1]
        return None

    def sink(self, record: dict[str, Any]) -> None:
        """A journal gate: the record's audited facts, appended. A failure is logged, except
        for a request written to disk, which is refused (`Refused`): its saver removes it."""
        keys = FIELDS.get(record.get("event", ""))
        if keys is None:
            return
        fields = {k: record[k] for k in keys if k in record}
        try:
            self.append(record["event"], by="daemon", **fields)
        except (OSError, RecorderError) as e:
            why = f"audit log {self.path}: {getattr(e, 'strerror', None) or e}"
            if record["event"] == "saved" and not record.get("dry_run"):
                raise Refused(why) from None
            log.error("%s", why)

    def lines(self) -> Iterator[tuple[Path, int, bytes]]:
        """(file, line number from 1, line bytes) of every line, oldest first."""
        for path in self.files():
            with _read(path) as f:
                for i, line in enumerate(f, 1):
                    yield path, i, line

    def entries(self) -> Iterator[dict[str, Any]]:
        for _path, _i, line in self.lines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    yield entry

    def verify(self) -> Verdict:
        """Check every line's `prev` and number; the first bad line is named."""
        expected: str | None = None
        n_expected: int | None = None
        count = 0
        head = GENESIS
        files = self.files()
        rotated_out = bool(files) and files[0].name == f"{AUDIT_FILE}.{self.keep - 1}"
        for path, i, line in self.lines():
            where = f"{path.name} line {i}"
            if not line.endswith(b"\n"):
                return Verdict(False, count, f"{where}: incomplete (truncated)", head)
            try:
                entry = json.loads(line)
                prev, n = entry["prev"], entry["n"]
                if not isinstance(prev, str) or not isinstance(n, int):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                return Verdict(False, count, f"{where}: not an audit entry", head)
            if expected is None:
                first_ok = (n == 1 and prev == GENESIS) or (rotated_out and n > 1)
                if not first_ok:
                    return Verdict(
                        False, count, f"{where}: the log does not start at its first entry", head
                    )
            elif prev != expected:
                return Verdict(
                    False, count, f"{where}: prev does not match the line before it", head
                )
            elif n != n_expected:
                return Verdict(False, count, f"{where}: entry {n} where {n_expected} belongs", head)
            expected, n_expected = line_hash(line), n + 1
            head = expected
            count += 1
        return Verdict(True, count, f"intact: {count} entries", head)
