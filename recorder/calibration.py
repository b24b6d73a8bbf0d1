"""Calibration counters: per wake word, how many frames the daemon analysed and how many
separate activations each candidate threshold and patience would have made; their file in the
state directory.

Each (threshold, patience) is counted as a daemon at that threshold alone would detect, with
the detector grid `recorder tune` counts with (`onsets.Onsets`): on every frame the engine
scored, while listening or recording, whatever the operating threshold did. Frames muted or in
error are not counted and end a run. The state is a few integers per (threshold, patience); no
audio and no per-moment record is kept. An activation within the refractory period before or
after a frame where the daemon detects the wake word, whose request is then saved, is counted
under `requests` instead (at most one per (threshold, patience) and detection).

The file (`calibration.json`, documented in docs/tuning.md) is rewritten atomically (temp file,
fsync, rename, directory fsync) at most every `SAVE_EVERY_FRAMES` and at stop; counts from
earlier runs are read at start and added to.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recorder.audio import Frame
from recorder.dirs import fsync_dir, hand_over, private_dir, read_file
from recorder.errors import RecorderError
from recorder.machine import State, WakeDetected
from recorder.onsets import Onsets

log = logging.getLogger("recorder")

FILE_NAME = "calibration.json"
FORMAT = "recorder-calibration"
VERSION = 2
"""Version 1 counted only the frames heard while listening: a daemon recording at a low
threshold hid the activations of the higher ones. Its files are not added to."""
THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The candidate thresholds: 0.05 to 0.95 in steps of 0.05."""
PATIENCES: tuple[int, ...] = (1, 2, 3)
"""Always counted; a model's configured patience is counted too."""
SAVE_EVERY_FRAMES = 3750
"""Counts reach the disk at least every 5 minutes of analysed audio (and at stop)."""
COUNTED = (State.LISTENING, State.RECORDING)
"""The states in which an analysed frame is counted."""


@dataclass
class PatienceCounts:
    """Counts for one patience over the threshold grid, and the frames they were counted on."""

    frames: int = 0
    activations: list[int] = field(default_factory=lambda: [0] * len(THRESHOLDS))
    requests: list[int] = field(default_factory=lambda: [0] * len(THRESHOLDS))

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "activations": list(self.activations),
            "requests": list(self.requests),
        }


@dataclass
class ModelCounts:
    """One wake word's totals: the frames analysed and counts per patience."""

    frames: int = 0
    patience: dict[int, PatienceCounts] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "patience": {str(p): c.as_dict() for p, c in sorted(self.patience.items())},
        }


def _count(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RecorderError(f"{where}: must be a whole number of at least 0, got {value!r}")
    return value


def _counts(where: str, value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) != len(THRESHOLDS):
        raise RecorderError(f"{where}: must be a list of {len(THRESHOLDS)} counts")
    return [_count(where, v) for v in value]


class OldVersion(RecorderError):
    """A calibration file of an earlier version, whose counts are not those of this one."""

    def __init__(self, where: str, version: int):
        super().__init__(
            f"{where}: version {version} counted only while listening; the daemon moves it "
            f"aside (as {FILE_NAME}.v{version}) and counts anew at its next start with "
            "[wake] calibrate"
        )
        self.version = version


def parse(data: Any, where: str) -> dict[str, ModelCounts]:
    """The models' counts from a decoded calibration file; a malformed one is an error
    (`OldVersion` for a file of version 1)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecorderError(f"{where}: not a recorder calibration file")
    if data.get("version") == 1:
        raise OldVersion(where, 1)
    if data.get("version") != VERSION:
        raise RecorderError(f"{where}: version {data.get('version')!r} is not {VERSION}")
    if data.get("thresholds") != list(THRESHOLDS):
        raise RecorderError(
            f"{where}: thresholds differ from this version's {THRESHOLDS[0]}..{THRESHOLDS[-1]} grid"
        )
    models = data.get("models")
    if not isinstance(models, dict):
        raise RecorderError(f"{where}: models: must be a table")
    out: dict[str, ModelCounts] = {}
    for name, m in models.items():
        at = f"{where}: models.{name}"
        if not isinstance(m, dict) or not isinstance(m.get("patience"), dict):
            raise RecorderError(f"{at}: must have frames and patience")
        counts = ModelCounts(_count(f"{at}.frames", m.get("frames")))
        for key, pc in m["patience"].items():
            if not key.isdigit() or not 1 <= int(key) <= 100 or not isinstance(pc, dict):
                raise RecorderError(f"{at}.patience: {key!r} is not a patience of 1 to 100")
            counts.patience[int(key)] = PatienceCounts(
                _count(f"{at}.patience.{key}.frames", pc.get("frames")),
                _counts(f"{at}.patience.{key}.activations", pc.get("activations")),
                _counts(f"{at}.patience.{key}.requests", pc.get("requests")),
            )
        out[name] = counts
    return out


def load(state_dir: Path) -> dict[str, ModelCounts]:
    """The counts kept in `state_dir` (none yet: empty)."""
    path = state_dir / FILE_NAME
    try:
        text = read_file(path, "calibration file").decode()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise RecorderError(
            f"calibration file {path}: cannot be read "
            f"({getattr(e, 'strerror', None) or type(e).__name__})"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecorderError(f"calibration file {path}: not valid JSON ({e})") from None
    return parse(data, f"calibration file {path}")


def to_json(models: Mapping[str, ModelCounts], refractory_frames: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "frame_s": 0.08,
        "thresholds": list(THRESHOLDS),
        "refractory_frames": refractory_frames,
        "models": {n: m.as_dict() for n, m in sorted(models.items())},
    }


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that a reader or a crash sees the old or the new file whole."""
    import tempfile  # here: the daemon's start does not need it

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            hand_over(fd, path.parent)  # root's file in the service's directory: the service's
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@dataclass
class _Claim:
    """The activations a detection claims: those within the refractory period before or after
    its frame, at most one per (patience, threshold); moved to `requests` once it is saved."""

    index: int
    taken: np.ndarray
    moved: np.ndarray
    saved: bool = False


class _Counter:
    """One wake word's incremental count: the detector grid, O(thresholds x patiences) state,
    no history."""

    def __init__(self, counts: ModelCounts, patiences: Iterable[int], refractory_frames: int):
        self.counts = counts
        self.onsets = Onsets(THRESHOLDS, patiences, refractory_frames)
        self.rows = [counts.patience.setdefault(p, PatienceCounts()) for p in self.onsets.patiences]
        self.claim: _Claim | None = None

    def interrupt(self) -> None:
        """A frame that is not counted: runs end (the refractory period runs on)."""
        self.onsets.interrupt()

    def add(self, index: int, score: float) -> None:
        self.counts.frames += 1
        fired = self.onsets.step(index, score)
        for pc in self.rows:
            pc.frames += 1
        if not fired.any():
            return
        for row, k in np.argwhere(fired):
            self.rows[row].activations[k] += 1
        c = self.claim
        if c is not None and index - c.index < self.onsets.gap:
            new = fired & ~c.taken
            c.taken |= new
            if c.saved:
                self._move(c, new)

    def detected(self, index: int) -> None:
        """A detection at `index` (the last frame added) claims the activations within the
        refractory period up to it, and those of the refractory period after it as they come."""
        taken = index - self.onsets.last < self.onsets.gap
        self.claim = _Claim(index, taken, np.zeros_like(taken))

    def saved(self, index: int) -> None:
        """The request of the detection at `index` was saved: its activations are requests."""
        c = self.claim
        if c is None or c.index != index:
            return
        c.saved = True
        self._move(c, c.taken & ~c.moved)

    def _move(self, c: _Claim, which: np.ndarray) -> None:
        for row, k in np.argwhere(which):
            pc = self.rows[row]
            if pc.activations[k] > 0:
                pc.activations[k] -= 1
                pc.requests[k] += 1
        c.moved |= which


class Calibration:
    """The daemon's calibration: an observer of analysed frames plus the wake events it
    dispatches; counts added to those in `state_dir` and written back there."""

    def __init__(
        self,
        state_dir: Path,
        patience: Mapping[str, int],
        refractory_frames: int,
        save_every_frames: int = SAVE_EVERY_FRAMES,
        also_save: Sequence[Callable[[], None]] = (),
    ):
        self.state_dir = state_dir
        self.path = state_dir / FILE_NAME
        self.refractory_frames = refractory_frames
        self.save_every_frames = save_every_frames
        self.also_save = list(also_save)
        """Written with the counters (the near misses kept while calibrating)."""
        private_dir(state_dir, "state directory")
        self.models = self._load()
        self._counters = {
            name: _Counter(
                self.models.setdefault(name, ModelCounts()), (*PATIENCES, p), refractory_frames
            )
            for name, p in patience.items()
        }
        self._next_index: int | None = None
        self._unsaved = 0
        self.save()  # fails now (exit 2) rather than after hours of listening

    def _load(self) -> dict[str, ModelCounts]:
        """The counts kept so far; a file of an earlier version is moved aside, kept as it
        is, and counting starts anew."""
        try:
            return load(self.state_dir)
        except OldVersion as e:
            aside = self.path.with_name(f"{FILE_NAME}.v{e.version}")
            try:
                os.replace(self.path, aside)
                fsync_dir(self.state_dir)
            except OSError as err:
                raise RecorderError(f"calibration file {self.path}: {err.strerror}") from None
            log.warning(
                "calibration file %s: version %d counted only while listening; kept as %s, "
                "counting anew",
                self.path,
                e.version,
                aside,
            )
            return {}

    def observe(
        self, frame: Frame, scores: Mapping[str, float], _speech: bool, state: State
    ) -> None:
        """A daemon observer: counts the frames the engine scored while listening or
        recording; a gap in the frame indexes (frames not analysed) or another state ends
        the runs."""
        if frame.index != self._next_index:
            self._interrupt()
        self._next_index = frame.index + 1
        if state in COUNTED:
            self._count(frame.index, scores)
        else:
            self._interrupt()

    def _interrupt(self) -> None:
        for c in self._counters.values():
            c.interrupt()

    def on_wake(self, event: WakeDetected) -> None:
        """The detecting frame (counted already) claims the activations around it until its
        request is saved or another detection comes."""
        if event.frame_index + 1 != self._next_index:
            return  # not the frame last counted
        for c in self._counters.values():
            c.detected(event.frame_index)

    def on_saved(self, wake: WakeDetected) -> None:
        """The detection's request was saved: its activations count as requests."""
        for c in self._counters.values():
            c.saved(wake.frame_index)

    def _count(self, index: int, scores: Mapping[str, float]) -> None:
        for name, c in self._counters.items():
            c.add(index, float(scores.get(name, 0.0)))
        self._unsaved += 1
        if self._unsaved >= self.save_every_frames:
            try:
                self.save()
            except RecorderError as e:
                log.error("%s (will retry)", e)

    def save(self) -> None:
        """Write every count (this run's and earlier ones') atomically."""
        self._unsaved = 0
        text = json.dumps(to_json(self.models, self.refractory_frames)) + "\n"
        try:
            write_atomic(self.path, text)
        except OSError as e:
            raise RecorderError(f"calibration file {self.path}: {e.strerror or e}") from None
        for save in self.also_save:
            save()

    def close(self) -> None:
        """At stop: the last counts reach the disk (an error is logged, not raised)."""
        try:
            self.save()
        except RecorderError as e:
            log.error("%s", e)
