"""`recorder keygen` and `recorder export`: the owner's side of sealed recordings.

`keygen` prints a new age identity for another machine; `export` decrypts sealed recordings
with it into plain WAV + JSON pairs (plaintext recordings are copied as they are).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from recorder.errors import RecorderError
from recorder.seal import Unsealer, keygen
from recorder.storage import Recording, Storage


def add_parsers(sub: Any, add_config: Any) -> None:
    """Register `keygen` and `export` on the `recorder` command's subparsers."""
    sub.add_parser(
        "keygen",
        help="print a new age identity and its recipient (for [storage] encrypt_to)",
        description="Print a new age X25519 identity (keep it on another machine, never on "
        "the device) and, as a comment, the recipient to put in [storage] encrypt_to.",
    )
    ex = sub.add_parser(
        "export",
        help="decrypt recordings into plain WAV + JSON",
        description="Decrypt sealed recordings with an age identity file into DIR as "
        "ID.wav and ID.json (plaintext recordings are copied).",
    )
    add_config(ex)
    ex.add_argument("ids", nargs="+", metavar="ID", help="recording ids, as `list` shows them")
    ex.add_argument("--identity", type=Path, metavar="FILE", help="age identity file")
    ex.add_argument("--to", type=Path, required=True, metavar="DIR", help="output directory")


def cmd_keygen(_args: argparse.Namespace) -> int:
    identity, recipient = keygen()
    print(f"# recipient: {recipient}\n{identity}")
    return 0


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise RecorderError(f"{path}: {e.strerror}") from None


def export(rec: Recording, unsealer: Unsealer | None, to: Path) -> tuple[Path, Path]:
    """ID.wav and ID.json in `to`, decrypted when sealed."""
    if not rec.has_audio:
        raise RecorderError(f"{rec.id}: its audio was deleted ({rec.meta.get('audio_deleted')})")
    if rec.sealed_meta is not None:
        if unsealer is None:
            raise RecorderError(f"{rec.id} is sealed: give --identity FILE")
        wav_bytes = unsealer.read(rec.wav)
        meta = json.loads(unsealer.read(rec.sealed_meta))
    else:
        try:
            wav_bytes, meta = rec.wav.read_bytes(), dict(rec.meta)
        except OSError as e:
            raise RecorderError(f"{rec.wav}: {e.strerror}") from None
    wav, sidecar = to / f"{rec.id}.wav", to / f"{rec.id}.json"
    meta = {**meta, "audio_file": wav.name}
    meta.pop("meta_file", None)
    meta.pop("encrypted", None)
    _write(wav, wav_bytes)
    _write(sidecar, (json.dumps(meta, indent=2) + "\n").encode())
    return wav, sidecar


def cmd_export(args: argparse.Namespace, storage: Storage) -> int:
    storage.check()
    by_id = {r.id: r for r in storage.list()}
    missing = [i for i in args.ids if i not in by_id]
    if missing:
        raise RecorderError(f"no recording with id {', '.join(missing)}")
    unsealer = Unsealer(args.identity) if args.identity else None
    if not args.to.is_dir():
        raise RecorderError(f"--to {args.to}: no such directory")
    for rid in args.ids:
        wav, _ = export(by_id[rid], unsealer, args.to)
        print(wav)
    return 0
