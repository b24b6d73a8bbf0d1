"""Values as a person reads them: durations, sizes, local times, yes/no, and aligned columns."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def number(value: Any) -> float | None:
    """A finite int or float (never a bool), else None: what a sidecar's numeric field holds
    when it can be trusted."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        as_float = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return as_float if math.isfinite(as_float) else None


def duration(seconds: float | None) -> str:
    """`0.1 s`, `42 s`, `4 min 05 s`, `3 h 12 min`, `2 d 03 h`; `?` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"


def size(n_bytes: int | None) -> str:
    """Decimal units, as `[storage] max_total_mb` counts: `512 B`, `41.2 kB`, `4.1 MB`."""
    if n_bytes is None or n_bytes < 0:
        return "?"
    if n_bytes < 1000:
        return f"{n_bytes} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n_bytes < scale * 1000 or unit == "GB":
            return f"{n_bytes / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def local_time(t: datetime | None) -> str:
    """`2026-12-07 07:01:02` in the machine's time zone (a naive time is taken as local)."""
    if t is None:
        return "?"
    return _local(t).strftime("%Y-%m-%d %H:%M:%S")


def local_iso(t: datetime) -> str:
    """ISO 8601 in the machine's time zone with its offset, milliseconds:
    `2026-12-07T07:01:02.123+01:00`."""
    return _local(t).isoformat(timespec="milliseconds")


def _local(t: datetime) -> datetime:
    """The time in the local zone; as it is when that falls outside the years 1 to 9999."""
    try:
        return t.astimezone()
    except (OverflowError, ValueError, OSError):
        return t


def printable(text: str) -> str:
    """The text on one line with no control characters (a sidecar is not trusted to hold
    only what the recorder wrote)."""
    return "".join(c if c.isprintable() else " " if c in "\t\n\r" else "?" for c in text)


def value(v: Any) -> str:
    """Any JSON value: yes/no, lists comma-joined, objects as `key value, ...`, null as `-`."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list | tuple):
        return ", ".join(value(x) for x in v) if v else "(none)"
    if isinstance(v, dict):
        return ", ".join(f"{printable(str(k))} {value(x)}" for k, x in v.items()) or "(none)"
    return printable(str(v))


def aligned(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """`key: value` lines with the values in one column."""
    width = max((len(k) for k, _ in pairs), default=0) + 2
    return [f"{k + ':':<{width}}{v}".rstrip() for k, v in pairs]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int]) -> list[str]:
    """Columns two spaces apart, each as wide as its widest cell; the columns in `right` are
    right-aligned; the last column is not padded."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    last = len(header) - 1

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            if i in right:
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if i == last else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return [line(header), *(line(r) for r in rows)]
