"""SHA-256 of bytes and of files, without OpenSSL.

The daemon hashes its model files at start and each request's audio: a few megabytes. It uses
CPython's own SHA-256 (`_sha2`; `_sha256` before 3.12), because hashlib would load OpenSSL's
libcrypto for it: 3.3 MB of the daemon's memory. hashlib serves only where neither is built in.

A file is read and hashed once while it is unchanged: the same device, inode, size, and
modification and change times. Its hash is remembered for the process and, once `keep_in`
names a private directory (the graph cache's), across starts, so an unchanged model is not
read at every start. A file changed in the two seconds before it is hashed, or while it is
read, is not remembered: its times might not show a change made in the same tick of the file
system's clock. The remembered hashes are trusted as the graph cache beside them is (a
directory only this user may write to); root remembers only root's own files.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast


def _builtin_sha256() -> Callable[..., Any]:
    for module in ("_sha2", "_sha256"):  # 3.12 on, 3.11
        try:
            return cast(Callable[..., Any], importlib.import_module(module).sha256)
        except ImportError:
            pass
    import hashlib  # a Python built without its own hashes

    return hashlib.sha256


sha256 = _builtin_sha256()
"""A SHA-256 object, as `hashlib.sha256` gives: `update`, `digest`, `hexdigest`."""

log = logging.getLogger(__name__)

STORE = "file-sha256.json"
"""The name of the remembered hashes in `keep_in`'s directory."""
FORMAT = 1
KEEP = 64
"""The most files remembered across starts (the most recently hashed)."""
MAX_STORE = 256 * KEEP + 1024
"""The largest store read: its rows take about 130 bytes each."""
BLOCK = 1 << 16
"""Bytes hashed, and read, at a time."""
SETTLED_NS = 2_000_000_000
"""How long a file must be unchanged before its hash is remembered: more than the coarsest
file system clock (FAT's two seconds)."""

Identity = tuple[int, int, int, int, int]
"""A file's device, inode, size, modification and change times (ns)."""

_hashed: dict[Identity, str] = {}
_store: Path | None = None


def hexdigest(data: bytes) -> str:
    h = sha256()
    view = memoryview(data).cast("B")
    for start in range(0, len(view), BLOCK):  # Python 3.11's own SHA-256 holds the GIL while
        h.update(view[start : start + BLOCK])  # it runs: a long request stalls no other thread
    return str(h.hexdigest())


def sha256_file(path: Path) -> str:
    """The file's SHA-256, read again only when the file has changed since it was last
    hashed (by this process, or by an earlier one when `keep_in` names where to look)."""
    now = time.time_ns()
    with open(path, "rb") as f:
        identity = _identity_of(os.fstat(f.fileno()))
        if (known := _hashed.get(identity)) is not None:
            return known
        h = sha256()
        while block := f.read(BLOCK):
            h.update(block)
        after = os.fstat(f.fileno())
    digest = str(h.hexdigest())
    settled = now - max(identity[3], identity[4]) >= SETTLED_NS
    if settled and _identity_of(after) == identity and _may_remember(after):
        _hashed[identity] = digest
        if _store is not None:
            _save(_store)
    return digest


def _identity_of(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _may_remember(st: os.stat_result) -> bool:
    """Root remembers only its own files' hashes: another user's file could be changed by
    that user with its times set back (by a clock stepped back) to ones root remembers."""
    return os.geteuid() != 0 or st.st_uid == 0


def keep_in(directory: Path | None) -> None:
    """Remember files' hashes in `directory` (a private one, already checked), and take
    those an earlier process remembered there; None forgets nothing and keeps nothing."""
    global _store
    _store = None if directory is None else directory / STORE
    if _store is not None:
        _hashed.update(_load(_store))


def _load(store: Path) -> dict[Identity, str]:
    """The hashes remembered in `store`; none when it is missing or does not hold together
    (anything wrong with it costs only reading the files again)."""
    try:
        data = store.read_bytes()
        if len(data) > MAX_STORE:
            raise ValueError(f"{len(data)} bytes, more than a store of {KEEP} files")
        saved = json.loads(data)
        rows = saved["files"]
        if saved.get("format") != FORMAT or saved.get("sha256") != _rows_sha256(rows):
            raise ValueError("not a store of this format, or damaged")
        return {_parsed_identity(row[:5]): _parsed_hex(row[5]) for row in rows}
    except FileNotFoundError:
        return {}
    except Exception as e:  # noqa: BLE001 - whatever is wrong with it means reading the files
        log.debug("remembered hashes %s not used: %s", store, e)
        return {}


def _save(store: Path) -> None:
    from recorder.dirs import replace_file

    rows = [[*identity, digest] for identity, digest in list(_hashed.items())[-KEEP:]]
    data = json.dumps({"format": FORMAT, "files": rows, "sha256": _rows_sha256(rows)})
    try:
        replace_file(store, data.encode())
    except OSError as e:  # only a later start's reading of the file again
        log.debug("remembered hashes %s not written: %s", store, e.strerror or e)


def _rows_sha256(rows: Any) -> str:
    return hexdigest(json.dumps(rows, separators=(",", ":")).encode())


def _parsed_identity(values: list[Any]) -> Identity:
    if len(values) != 5 or not all(type(v) is int for v in values):
        raise ValueError(f"not a file's identity: {values!r}")
    return (values[0], values[1], values[2], values[3], values[4])


def _parsed_hex(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ValueError(f"not a SHA-256: {value!r}")
    return value
