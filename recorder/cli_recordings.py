"""`recorder list`, `delete`, `prune`, `export`/`keygen` and `audit`: the saved recordings, and
the audit log of what was done with them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from recorder import config as config_mod
from recorder import human
from recorder.audit import AuditLog
from recorder.cli_args import (
    add_config,
    add_dirs,
    add_json,
    audit,
    audit_log,
    load_config,
    state_dir,
)
from recorder.dirs import check_private_dir
from recorder.errors import RecorderError
from recorder.storage import Recording, Storage
from recorder.tools import export

LIST_JSON_KEYS = (
    "id",
    "started_at",
    "wake_word",
    "score",
    "duration_s",
    "end_reason",
    "transcript",
    "sealed",
    "audio",
    "audio_deleted",
    "size_bytes",
    "sidecar",
    "meta",
)
"""The keys of each object of `recorder list --json`, always all of them (null when unknown)."""


def add_list(sub: Any) -> None:
    lst = sub.add_parser(
        "list",
        help="list the saved recordings",
        description="The saved recordings, oldest first: id, local time, wake word, score, "
        "length, and the transcript, '(audio deleted)', '(sealed)' or the WAV file; then the "
        "totals. --json prints one JSON array of objects with the keys "
        + ", ".join(LIST_JSON_KEYS)
        + " (raw values: ISO times with their offset, seconds, bytes, absolute paths; `meta` "
        "is the sidecar as stored).",
    )
    add_config(lst)
    lst.add_argument("--json", action="store_true", help="one JSON array, one object a recording")


def list_entry(r: Recording) -> dict[str, Any]:
    """One recording as `recorder list --json` gives it: LIST_JSON_KEYS, raw values. A sealed
    recording's index holds no wake word, score or transcript: those are null."""
    m = r.meta
    transcript = m.get("transcript")
    text = transcript.get("text") if isinstance(transcript, dict) else None
    return {
        "id": r.id,
        "started_at": human.local_iso(r.started_at()),
        "wake_word": m.get("wake_word") if isinstance(m.get("wake_word"), str) else None,
        "score": human.number(m.get("score")),
        "duration_s": human.number(m.get("duration_s")),
        "end_reason": m.get("end_reason") if isinstance(m.get("end_reason"), str) else None,
        "transcript": text if isinstance(text, str) else None,
        "sealed": r.sealed,
        "audio": str(r.wav.absolute()) if r.has_audio else None,
        "audio_deleted": None if r.has_audio else str(m.get("audio_deleted") or "deleted"),
        "size_bytes": r.size_bytes(),
        "sidecar": str(r.sidecar.absolute()),
        "meta": m,
    }


def _what(e: dict[str, Any]) -> str:
    """The last column: the words if there are any, else where the audio is or why not."""
    if e["transcript"] is not None:
        return human.printable(e["transcript"]).strip() or "(empty transcript)"
    if e["sealed"]:
        return "(sealed, audio deleted)" if e["audio"] is None else "(sealed)"
    if e["audio"] is None:
        return "(audio deleted)"
    return human.printable(e["audio"])


def list_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The table `recorder list` prints: a header, a row a recording, the totals."""
    rows = [
        [
            human.printable(e["id"]),
            human.local_time(datetime.fromisoformat(e["started_at"])),
            human.printable(e["wake_word"] or "-"),
            "-" if e["score"] is None else f"{e['score']:.3f}",
            human.duration(e["duration_s"]),
            _what(e),
        ]
        for e in entries
    ]
    header = ["ID", "TIME", "WAKE WORD", "SCORE", "LENGTH", "TRANSCRIPT OR AUDIO"]
    total_s = sum(e["duration_s"] or 0.0 for e in entries)
    total_bytes = sum(e["size_bytes"] for e in entries)
    totals = (
        f"{len(entries)} recording{'' if len(entries) == 1 else 's'}, "
        f"{human.duration(total_s)}, {human.size(total_bytes)}"
    )
    return [*human.table(header, rows, right=frozenset({3, 4})), totals]


def cmd_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    storage = Storage(cfg.path(cfg.storage.directory))
    storage.check()
    entries = [list_entry(r) for r in storage.list()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print("no recordings", file=sys.stderr)
        return 0
    print("\n".join(list_lines(entries)))
    return 0


def add_delete(sub: Any) -> None:
    dele = sub.add_parser("delete", help="delete recordings")
    add_config(dele)
    dele.add_argument("ids", nargs="*", metavar="ID", help="recording ids, as `list` shows them")
    dele.add_argument(
        "--older-than",
        metavar="DURATION",
        help="every recording older than this, e.g. 30d, 12h, 15m",
    )
    dele.add_argument("--all", action="store_true", help="every recording")
    dele.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before deleting every recording (--all on a terminal)",
    )
    add_dirs(dele, runtime=False, state=True)


def cmd_delete(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    storage = Storage(cfg.path(cfg.storage.directory))
    storage.check()
    log = audit_log(state_dir(args, cfg))
    recs = storage.list()
    if args.all:
        doomed = recs
    elif args.older_than:
        cutoff = datetime.now(UTC) - timedelta(
            seconds=config_mod.parse_duration(args.older_than, "--older-than")
        )
        doomed = [r for r in recs if r.started_at() < cutoff]
    elif args.ids:
        by_id = {r.id: r for r in recs}
        missing = [i for i in args.ids if i not in by_id]
        if missing:
            raise RecorderError(f"no recording with id {', '.join(missing)}")
        doomed = [by_id[i] for i in args.ids]
    else:
        raise RecorderError("delete: give recording ids, --older-than DURATION or --all")
    if args.all and doomed and not args.yes and sys.stdin.isatty():
        answer = input(f"delete all {len(doomed)} recording(s) in {storage.directory}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    for r in doomed:
        storage.delete(r)
        audit(log, "deleted", id=r.id, why="delete command", uid=os.getuid())
    print(f"deleted {len(doomed)} recording(s)")
    return 0


def add_prune(sub: Any) -> None:
    prune = sub.add_parser("prune", help="apply the [storage] retention limits now")
    add_config(prune)
    add_dirs(prune, runtime=False, state=True)


def cmd_prune(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    s = cfg.storage
    storage = Storage(cfg.path(s.directory))
    storage.check()
    log = audit_log(state_dir(args, cfg))
    gone = (
        storage.enforce(s.max_age_s, s.max_count, int(s.max_total_mb * 1e6), datetime.now(UTC))
        if storage.directory.is_dir()
        else []
    )
    for r in gone:
        audit(log, "deleted", id=r.id, why="retention", uid=os.getuid())
    print(f"pruned {len(gone)} recording(s)")
    return 0


def add_export(sub: Any) -> None:
    export.add_parsers(sub, add_config)


def cmd_export(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    return export.cmd_export(args, Storage(cfg.path(cfg.storage.directory)))


def add_audit(sub: Any) -> None:
    aud = sub.add_parser(
        "audit",
        help="show or verify the audit log",
        description="Show the audit log (what was started, saved, discarded, deleted, muted), "
        "or check its hash chain: --verify exits 0 when intact, 1 naming the first bad line.",
    )
    add_config(aud, recordings=False)
    add_dirs(aud, runtime=False, state=True)
    add_json(aud, "the entries")
    aud.add_argument(
        "--since", metavar="WHEN", help="entries since a time ago (30m, 2d) or an ISO time"
    )
    aud.add_argument("--verify", action="store_true", help="check the hash chain")


def cmd_audit(args: argparse.Namespace) -> int:
    directory = state_dir(args)
    if os.path.lexists(directory):  # a log others could have written is not shown as one
        check_private_dir(directory, "state directory")
    log = AuditLog(directory)
    if args.verify:
        verdict = log.verify()
        if verdict.ok:
            print(f"{log.path}: {verdict.message}; latest hash {verdict.head}")
            return 0
        print(f"{log.path}: broken at {verdict.message}", file=sys.stderr)
        return 1
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        except ValueError:
            since = datetime.now(UTC) - timedelta(
                seconds=config_mod.parse_duration(args.since, "--since")
            )
    for entry in log.entries():
        if since is not None:
            try:
                if datetime.fromisoformat(str(entry.get("time")).replace("Z", "+00:00")) < since:
                    continue
            except ValueError:
                continue
        if args.json:
            print(json.dumps(entry))
        else:
            rest = "  ".join(
                f"{k}={v}" for k, v in entry.items() if k not in ("n", "time", "event", "prev")
            )
            print(f"{entry.get('n')}  {entry.get('time')}  {entry.get('event')}  {rest}")
    return 0
