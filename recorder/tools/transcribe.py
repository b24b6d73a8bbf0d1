"""`recorder transcribe`: transcribe saved requests again (or for the first time) through the
Wyoming server in `[handoff] wyoming`, and apply `keep_audio`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recorder import config as config_mod
from recorder import stt
from recorder.config import CONFIG_HELP
from recorder.errors import RecorderError
from recorder.handoff import transcribe_recording
from recorder.storage import Storage


def add_parser(sub: Any) -> None:
    """Register `transcribe` on the `recorder` command's subparsers."""
    tr = sub.add_parser(
        "transcribe",
        help="transcribe saved requests through [handoff] wyoming",
        description="Send saved requests' audio to the Wyoming speech-to-text server of "
        "[handoff] wyoming and write the transcript into each sidecar (`transcript`, or "
        '`transcript_error`). With keep_audio = "until_transcribed" the audio is then '
        "deleted. Exits 1 when any transcription failed.",
    )
    tr.add_argument("--config", type=Path, metavar="PATH", help=CONFIG_HELP)
    tr.add_argument(
        "--recordings",
        type=Path,
        metavar="DIR",
        help="recordings directory (overrides [storage] directory)",
    )
    tr.add_argument("ids", nargs="*", metavar="ID", help="recording ids, as `list` shows them")
    tr.add_argument(
        "--pending",
        action="store_true",
        help="every recording that has audio and no transcript yet",
    )


def cmd_transcribe(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.pending):
        raise RecorderError("transcribe: give recording ids or --pending (not both)")
    config = config_mod.with_overrides(
        config_mod.load(config_mod.locate(args.config)), recordings=args.recordings
    )
    h = config.handoff
    if not h.wyoming:
        raise RecorderError("transcribe: no speech-to-text server; set [handoff] wyoming")
    stt.require_wyoming()
    storage = Storage(config.path(config.storage.directory))
    storage.check()
    recs = storage.list()
    if args.pending:
        chosen = [r for r in recs if r.has_audio and not r.sealed and "transcript" not in r.meta]
    else:
        by_id = {r.id: r for r in recs}
        missing = [i for i in args.ids if i not in by_id]
        if missing:
            raise RecorderError(f"no recording with id {', '.join(missing)}")
        chosen = [by_id[i] for i in dict.fromkeys(args.ids)]
    failed = 0
    for rec in chosen:
        _, transcript, error = transcribe_recording(storage, rec, h)
        if transcript is not None:
            print(f"{rec.id}: {transcript.text}")
        else:
            failed += 1
            print(f"{rec.id}: failed: {error}", file=sys.stderr)
    if not chosen:
        print("nothing to transcribe")
    return 1 if failed else 0
