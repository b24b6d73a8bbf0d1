"""`recorder events`: the running daemon's journal, one event per line, as it happens."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from recorder import control_client
from recorder.dirs import SYSTEM_RUNTIME_DIR, default_runtime_dir
from recorder.errors import RecorderError
from recorder.human import printable

EXIT_NOT_RUNNING = 3
EXIT_CUT_OFF = 1


def add_parser(sub: Any) -> None:
    """Register `events` on the `recorder` command's subparsers."""
    ev = sub.add_parser(
        "events",
        help="follow the running daemon's events (state, wake, saved, ...)",
        description="Subscribe to the running daemon over its control socket and print one "
        "event per line as it happens: started, stopped, reloaded, state, wake, wake_ignored, "
        "saved, transcribed, discarded, deleted, muted, unmuted, device_lost, device_restored, "
        "each with its sequence number and UTC time. Exits 0 when the daemon stops, 3 when no "
        "daemon runs, 1 when the daemon cut this reader off for not keeping up.",
    )
    ev.add_argument(
        "--runtime-dir",
        type=Path,
        metavar="DIR",
        help="control socket directory (default: $RUNTIME_DIRECTORY, "
        "$XDG_RUNTIME_DIR/recorder or /run/recorder)",
    )
    ev.add_argument("--json", action="store_true", help="print each event as one JSON object")


def connect(runtime_dir: Path) -> socket.socket | None:
    """A socket subscribed to the daemon's events; None when no daemon listens there."""
    subscribed = subscribe(runtime_dir, "events")
    return None if subscribed is None else subscribed[0]


def records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a subscription's lines; anything else is skipped."""
    for raw in lines:
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def cut_off(record: dict[str, Any]) -> int:
    """Says the daemon cut this reader off (its reason without control characters); the exit
    status."""
    print(
        f"recorder: cut off by the daemon: {printable(str(record.get('reason')))}", file=sys.stderr
    )
    return EXIT_CUT_OFF


def subscribe(runtime_dir: Path, command: str) -> tuple[socket.socket, dict[str, Any]] | None:
    """A socket subscribed with `command` (`events`, `monitor`) and the daemon's first line;
    None when no daemon listens there."""
    path = runtime_dir / control_client.SOCKET_NAME
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(5.0)
        s.connect(str(path))
        s.sendall(command.encode() + b"\n")
        first = s.makefile("rb", buffering=0).readline(1 << 16)  # not a byte past it
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError):
        s.close()
        return None
    except PermissionError:
        s.close()
        raise RecorderError(f"control socket {path}: permission denied") from None
    except OSError as e:
        s.close()
        raise RecorderError(f"control socket {path}: {e.strerror or e}") from None
    try:
        reply = json.loads(first)
    except ValueError:
        reply = None
    if not isinstance(reply, dict) or not reply.get("ok"):
        s.close()
        error = reply.get("error") if isinstance(reply, dict) else f"unreadable {first[:100]!r}"
        raise RecorderError(f"control socket {path}: {error}")
    s.settimeout(None)
    return s, reply


def text(record: dict[str, Any]) -> str:
    """One event as a line for people: time, sequence number, event, its fields."""
    time = str(record.get("time", ""))
    clock = time[11:23] if len(time) >= 23 else time
    fields = " ".join(
        f"{k}={json.dumps(v) if isinstance(v, dict | list) else v}"
        for k, v in record.items()
        if k not in ("event", "seq", "time")
    )
    return f"{clock} #{record.get('seq', '-')} {record.get('event', '?')} {fields}".rstrip()


def cmd_events(args: argparse.Namespace) -> int:
    dirs = [args.runtime_dir] if args.runtime_dir else [default_runtime_dir(), SYSTEM_RUNTIME_DIR]
    sock = None
    for directory in dict.fromkeys(dirs):
        sock = connect(directory)
        if sock is not None:
            break
    if sock is None:
        print("recorder: no daemon is running", file=sys.stderr)
        return EXIT_NOT_RUNNING
    with sock, sock.makefile("rb") as lines:
        for record in records(lines):
            if record.get("event") == "cut_off":
                return cut_off(record)
            print(json.dumps(record) if args.json else text(record), flush=True)
            if record.get("event") == "stopped":
                return 0
    print("recorder: the daemon closed the connection", file=sys.stderr)
    return EXIT_CUT_OFF
