"""Recordings on disk: atomic WAV + JSON sidecar pairs, listing, and clean-up after a crash.

A pair becomes visible in two renames, sidecar first, so a WAV is never without its sidecar.
Both temp files are complete and fsynced before either rename; a crash between the renames
leaves a sidecar whose WAV is still a temp file, which `prepare()` completes at the next start.
Deletion runs the other way (WAV first), so the invariant holds at every moment.

Sealed (with a `Sealer`): the WAV and the full sidecar are built and encrypted in memory, and
only ciphertext is written: `<id>.wav.age` and `<id>.json.age`, beside a plaintext index
`<id>.json` holding only what listing and retention need. The renames run sealed sidecar,
index, audio; the index plays the sidecar's part in the invariant above.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from recorder.audio import write_wav
from recorder.digest import hexdigest
from recorder.dirs import check_private_dir, fsync_dir, hand_over, private_dir
from recorder.errors import RecorderError
from recorder.seal import SEALED_SUFFIX, Sealer

TMP_SUFFIX = ".tmp"
MAX_SIDECAR_BYTES = 1 << 20
INDEX_KEYS = ("id", "started_at", "duration_s", "audio_file", "meta_file", "encrypted")
"""What a sealed recording's plaintext index holds (and `audio_deleted` once dropped)."""
_SUFFIXES = (".wav" + SEALED_SUFFIX, ".json" + SEALED_SUFFIX, ".wav", ".json")


class StorageError(Exception):
    """A write failed (disk full, I/O error); the recording was not kept."""


@dataclass(frozen=True, eq=False)
class Recording:
    id: str
    wav: Path
    sidecar: Path
    meta: dict[str, Any]
    """The sidecar; for a sealed recording read back from disk, only its plaintext index."""
    sealed_meta: Path | None = None
    """The sealed sidecar (`<id>.json.age`), None for a plaintext pair."""
    written: dict[str, str] = field(default_factory=dict)
    """File name -> SHA-256 of the bytes written, for a recording just saved."""

    @property
    def sealed(self) -> bool:
        return self.sealed_meta is not None

    @property
    def has_audio(self) -> bool:
        """False once the audio was deleted on purpose and only the sidecar is kept
        (`audio_file` is then null and `audio_deleted` says why)."""
        return self.meta.get("audio_file") is not None

    def started_at(self) -> datetime:
        """The sidecar's `started_at` (UTC when it names no zone), else the sidecar's mtime."""
        try:
            t = datetime.fromisoformat(self.meta["started_at"])
            return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        except (KeyError, TypeError, ValueError):
            try:
                return datetime.fromtimestamp(os.lstat(self.sidecar).st_mtime, UTC)
            except OSError:
                return datetime.now(UTC)

    def size_bytes(self) -> int:
        total = 0
        for path in (self.wav, self.sidecar, self.sealed_meta):
            if path is None:
                continue
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total


@contextlib.contextmanager
def _new_file(path: Path) -> Iterator[Any]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        hand_over(fd, path.parent)
        yield f
        f.flush()
        os.fsync(f.fileno())


class Storage:
    def __init__(self, directory: Path, sealer: Sealer | None = None):
        self.directory = directory
        self.sealer = sealer

    def prepare(self) -> None:
        """Create the directory (0700) or refuse one others can write to, check it is
        writable, and finish or remove leftovers."""
        d = self.directory
        private_dir(d, "recordings directory")
        try:
            probe = d / f".probe-{os.getpid()}{TMP_SUFFIX}"
            with _new_file(probe):
                pass
            probe.unlink()
        except OSError as e:
            raise RecorderError(f"recordings directory {d}: not usable ({e.strerror})") from None
        self.recover()

    def check(self) -> None:
        """For the commands that read or delete: refuse a directory others can write to (it
        may hold files planted by them). A missing directory holds no recordings."""
        if os.path.lexists(self.directory):
            check_private_dir(self.directory, "recordings directory")

    def recover(self) -> None:
        d = self.directory
        for tmp in d.glob(f".*{TMP_SUFFIX}"):
            final = d / tmp.name[1 : -len(TMP_SUFFIX)]
            index = d / f"{_rid(final.name)}.json"
            if (
                final.name.endswith((".wav", ".wav" + SEALED_SUFFIX))
                and index.exists()
                and not _audio_deleted(index)
                and not final.exists()
            ):
                os.replace(tmp, final)  # complete and fsynced: the sidecar was already renamed
            else:
                tmp.unlink(missing_ok=True)
        for sidecar in d.glob("*.json"):
            audio = [sidecar.with_suffix(".wav"), d / f"{sidecar.stem}.wav{SEALED_SUFFIX}"]
            if not any(a.exists() for a in audio) and not _audio_deleted(sidecar):
                sidecar.unlink(missing_ok=True)  # an interrupted deletion
        for sealed in d.glob(f"*.json{SEALED_SUFFIX}"):
            if not (d / f"{_rid(sealed.name)}.json").exists():
                sealed.unlink(missing_ok=True)  # an interrupted save or deletion
        for wav in [*d.glob("*.wav"), *d.glob(f"*.wav{SEALED_SUFFIX}")]:
            if _audio_deleted(d / f"{_rid(wav.name)}.json"):
                wav.unlink(missing_ok=True)  # an interrupted drop_audio
        fsync_dir(d)

    def _free_id(self, base: str) -> str:
        """`base`, or `base_1`, `base_2`, ... ('_' sorts after '.', so names keep time order)."""
        rid, n = base, 1
        while any((self.directory / f"{rid}{suffix}").exists() for suffix in _SUFFIXES):
            rid, n = f"{base}_{n}", n + 1
        return rid

    def _install(self, files: list[tuple[Path, bytes]]) -> None:
        """Write each (path, bytes) to a temp file and fsync it, then rename them all into
        place in the given order and fsync the directory. On OSError the temp files are
        removed and the error raised; the renames already done stay."""
        tmps = [self.directory / f".{path.name}{TMP_SUFFIX}" for path, _ in files]
        try:
            for tmp, (_, data) in zip(tmps, files, strict=True):
                with _new_file(tmp) as f:
                    f.write(data)
            for tmp, (path, _) in zip(tmps, files, strict=True):
                os.replace(tmp, path)
            fsync_dir(self.directory)
        except (OSError, RecorderError):
            for tmp in tmps:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
            raise

    def save(self, base_id: str, audio: np.ndarray, meta: dict[str, Any]) -> Recording:
        """Write audio and sidecar atomically (sealed when a sealer is set); on failure raise
        StorageError, leaving nothing."""
        rid = self._free_id(base_id)
        d = self.directory
        samples = np.ascontiguousarray(audio, dtype="<i2")
        buf = io.BytesIO()
        write_wav(buf, samples)
        wav_bytes = buf.getvalue()
        sealed = self.sealer is not None
        wav = d / f"{rid}.wav{SEALED_SUFFIX if sealed else ''}"
        sidecar = d / f"{rid}.json"
        sealed_meta = d / f"{rid}.json{SEALED_SUFFIX}" if sealed else None
        meta = {
            "id": rid,
            "audio_file": wav.name,
            **meta,
            "audio_sha256": hexdigest(samples.tobytes()),
        }
        # (final path, bytes), in the order they are renamed into place
        files: list[tuple[Path, bytes]] = []
        if self.sealer is not None and sealed_meta is not None:
            meta = {**meta, "meta_file": sealed_meta.name, "encrypted": True}
            files.append((sealed_meta, self.sealer.seal(_json_bytes(meta))))
            files.append((sidecar, _json_bytes(_index(meta))))
            files.append((wav, self.sealer.seal(wav_bytes)))
        else:
            files.append((sidecar, _json_bytes(meta)))
            files.append((wav, wav_bytes))
        try:
            self._install(files)
        except (OSError, RecorderError) as e:
            if not wav.exists():
                for done in (sidecar, sealed_meta):
                    if done is not None:
                        with contextlib.suppress(OSError):
                            done.unlink(missing_ok=True)
            raise StorageError(f"{wav}: {getattr(e, 'strerror', None) or e}") from e
        written = {path.name: hexdigest(data) for path, data in files}
        return Recording(rid, wav, sidecar, meta, sealed_meta, written)

    def update_meta(self, recording: Recording, **fields: Any) -> Recording:
        """Add or replace sidecar keys atomically (temp file, fsync, rename, directory fsync):
        a reader sees the old sidecar or the new one, never a mix. Raises StorageError.

        A sealed recording's sidecar is sealed again (the index keeps its few keys); that
        needs the full sidecar, so only a recording as `save` returned it can gain other keys
        than the index's."""
        meta = {**recording.meta, **fields}
        files: list[tuple[Path, bytes]] = []
        if recording.sealed_meta is not None:
            full = "audio_sha256" in meta  # the whole sidecar, as `save` returned it
            if full and self.sealer is not None:
                files.append((recording.sealed_meta, self.sealer.seal(_json_bytes(meta))))
            elif set(fields) - {*INDEX_KEYS, "audio_deleted"}:
                raise StorageError(
                    f"{recording.sealed_meta}: sealed; only the process that sealed it can "
                    "add to its metadata"
                )
            files.append((recording.sidecar, _json_bytes(_index(meta))))
        else:
            files.append((recording.sidecar, _json_bytes(meta)))
        try:
            self._install(files)
        except (OSError, RecorderError) as e:
            raise StorageError(f"{recording.sidecar}: {getattr(e, 'strerror', None) or e}") from e
        written = {path.name: hexdigest(data) for path, data in files}
        return Recording(
            recording.id, recording.wav, recording.sidecar, meta, recording.sealed_meta, written
        )

    def drop_audio(self, recording: Recording, why: str) -> Recording:
        """Delete the audio and keep the sidecar, which then says so (`audio_file` null,
        `audio_deleted` = why). The sidecar is rewritten first, so a crash in between leaves
        a sidecar that no longer claims the audio and a WAV that `recover` removes."""
        kept = self.update_meta(recording, audio_file=None, audio_deleted=why)
        try:
            recording.wav.unlink(missing_ok=True)
            fsync_dir(self.directory)
        except OSError as e:
            raise StorageError(f"{recording.wav}: {e.strerror or e}") from e
        return kept

    def delete(self, recording: Recording) -> None:
        """WAV first, then the sidecar (then the sealed sidecar): a WAV is never left without
        its sidecar."""
        recording.wav.unlink(missing_ok=True)
        recording.sidecar.unlink(missing_ok=True)
        if recording.sealed_meta is not None:
            recording.sealed_meta.unlink(missing_ok=True)

    def enforce(
        self, max_age_s: float, max_count: int, max_total_bytes: int, now: datetime
    ) -> list[Recording]:
        """Delete the oldest recordings until every limit (0: none) holds; return them."""
        recs = self.list()
        doomed: list[Recording] = []
        if max_age_s > 0:
            cutoff = now - timedelta(seconds=max_age_s)
            doomed += [r for r in recs if r.started_at() < cutoff]
        keep = [r for r in recs if r not in doomed]
        if max_count > 0 and len(keep) > max_count:
            doomed += keep[: len(keep) - max_count]
            keep = keep[len(keep) - max_count :]
        if max_total_bytes > 0:
            sizes = {r.id: r.size_bytes() for r in keep}
            total = sum(sizes.values())
            while keep and total > max_total_bytes:
                r = keep.pop(0)
                doomed.append(r)
                total -= sizes[r.id]
        for r in doomed:
            self.delete(r)
        if doomed:
            fsync_dir(self.directory)
        return doomed

    def list(self) -> list[Recording]:
        """Complete recordings, oldest first. Only regular files count (a symlink is never
        followed out of the directory); a sidecar that is not a JSON object naming its own
        WAV is skipped."""
        if not self.directory.is_dir():
            return []
        out = []
        for sidecar in sorted(self.directory.glob("*.json")):
            wav = sidecar.with_suffix(".wav")
            if not _is_regular(sidecar):
                continue
            meta = _read_sidecar(sidecar)
            if meta is None:
                continue
            sealed_meta = None
            if meta.get("encrypted") is True:
                wav = self.directory / f"{sidecar.stem}.wav{SEALED_SUFFIX}"
                sealed_meta = self.directory / f"{sidecar.stem}.json{SEALED_SUFFIX}"
            if meta.get("audio_file", wav.name) is None and meta.get("audio_deleted"):
                pass  # kept without its audio, on purpose
            elif meta.get("audio_file", wav.name) != wav.name or not _is_regular(wav):
                continue
            out.append(Recording(sidecar.stem, wav, sidecar, meta, sealed_meta))
        return out


def _json_bytes(meta: dict[str, Any]) -> bytes:
    return (json.dumps(meta, indent=2) + "\n").encode()


def _index(meta: dict[str, Any]) -> dict[str, Any]:
    """A sealed recording's plaintext index: what listing and retention need, no more."""
    keep = (*INDEX_KEYS, "audio_deleted")
    return {k: meta[k] for k in keep if k in meta}


def _rid(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _audio_deleted(sidecar: Path) -> bool:
    meta = _read_sidecar(sidecar)
    return (
        meta is not None and meta.get("audio_file", "") is None and bool(meta.get("audio_deleted"))
    )


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_SIDECAR_BYTES + 1)
        if len(data) > MAX_SIDECAR_BYTES:
            return None
        meta = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None
