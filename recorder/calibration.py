"""Calibration counters: per wake word, how long the daemon listened and how many separate
activations each candidate threshold and patience would have made; their file in the state
directory.

Counting follows the machine's rules on the frames the machine analyses for a wake word (state
`listening`, plus the frame that detects): an activation at threshold t and patience p is a frame
where the score has been at or above t on p consecutive frames, at least the refractory period
after the previous activation at (t, p). Frames while recording, muted or in error are not
counted and break a run. The state is a few integers per (threshold, patience); no audio and no
per-moment record is kept. An activation within the refractory period up to the frame where
the daemon detects the wake word, whose request is then saved, is counted under `requests`
instead.

The file (`calibration.json`, documented in the README) is rewritten atomically (temp file,
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
from recorder.dirs import fsync_dir, hand_over
from recorder.errors import RecorderError
from recorder.machine import State, WakeDetected

log = logging.getLogger("recorder")

FILE_NAME = "calibration.json"
FORMAT = "recorder-calibration"
VERSION = 1
THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The candidate thresholds: 0.05 to 0.95 in steps of 0.05."""
PATIENCES: tuple[int, ...] = (1, 2, 3)
"""Always counted; a model's configured patience is counted too."""
SAVE_EVERY_FRAMES = 3750
"""Counts reach the disk at least every 5 minutes of analysed audio (and at stop)."""


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
    """One wake word's totals: listening frames and counts per patience."""

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


def parse(data: Any, where: str) -> dict[str, ModelCounts]:
    """The models' counts from a decoded calibration file; a malformed one is an error."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RecorderError(f"{where}: not a recorder calibration file")
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
        text = path.read_text()
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
        hand_over(fd, path.parent)  # root's file in the service's directory: the service's
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class _Counter:
    """One wake word's incremental count: O(thresholds x patiences) state, no history."""

    def __init__(self, counts: ModelCounts, patiences: Iterable[int], refractory_frames: int):
        self.counts = counts
        self.patiences = sorted(set(patiences))
        for p in self.patiences:
            counts.patience.setdefault(p, PatienceCounts())
        self.gap = max(refractory_frames, 1)
        self.thresholds = np.array(THRESHOLDS)
        self.above = np.zeros(len(THRESHOLDS), dtype=np.int64)
        """Consecutive counted frames at or above each threshold, up to the last one."""
        self.last = {p: np.full(len(THRESHOLDS), -(10**12), dtype=np.int64) for p in self.patiences}
        """Frame index of the last activation per (patience, threshold)."""

    def interrupt(self) -> None:
        """A frame that is not counted: runs end (the refractory period runs on)."""
        self.above[:] = 0

    def add(self, index: int, score: float) -> None:
        self.counts.frames += 1
        self.above = np.where(score >= self.thresholds, self.above + 1, 0)
        for p in self.patiences:
            pc = self.counts.patience[p]
            pc.frames += 1
            onset = (self.above >= p) & (index - self.last[p] >= self.gap)
            if onset.any():
                self.last[p][onset] = index
                for k in np.flatnonzero(onset):
                    pc.activations[k] += 1

    def claim(self, index: int) -> dict[int, np.ndarray]:
        """The activations that belong to a detection at `index`: per patience, the thresholds
        with an activation within the refractory period up to that frame (at most one each)."""
        return {p: np.flatnonzero(index - self.last[p] < self.gap) for p in self.patiences}

    def move_to_requests(self, claimed: Mapping[int, np.ndarray]) -> None:
        for p, ks in claimed.items():
            pc = self.counts.patience[p]
            for k in ks:
                if pc.activations[k] > 0:
                    pc.activations[k] -= 1
                    pc.requests[k] += 1


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
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise RecorderError(f"state directory {state_dir}: {e.strerror}") from None
        self.models = load(state_dir)
        self._counters = {
            name: _Counter(
                self.models.setdefault(name, ModelCounts()), (*PATIENCES, p), refractory_frames
            )
            for name, p in patience.items()
        }
        self._held: tuple[int, Mapping[str, float]] | None = None
        self._claimed: tuple[int, dict[str, dict[int, np.ndarray]]] | None = None
        self._next_index: int | None = None
        self._unsaved = 0
        self.save()  # fails now (exit 2) rather than after hours of listening

    def observe(
        self, frame: Frame, scores: Mapping[str, float], _speech: bool, state: State
    ) -> None:
        """A daemon observer: counts frames the machine analysed while listening. A frame
        after which the machine is recording is held until the wake event says whether it
        was the detecting frame."""
        if self._held is not None or frame.index != self._next_index:
            self._interrupt()  # the held frame was recorded, or frames were not analysed (muted)
        self._held = None
        self._next_index = frame.index + 1
        if state is State.LISTENING:
            self._count(frame.index, scores)
        elif state is State.RECORDING:
            self._held = (frame.index, dict(scores))
        else:
            self._interrupt()

    def _interrupt(self) -> None:
        for c in self._counters.values():
            c.interrupt()

    def on_wake(self, event: WakeDetected) -> None:
        """The detecting frame is counted; the activations it ends are claimed by it until its
        request is saved or dropped."""
        if self._held is None or self._held[0] != event.frame_index:
            return
        index, scores = self._held
        self._held = None
        self._count(index, scores)
        self._claimed = (index, {name: c.claim(index) for name, c in self._counters.items()})
        self._interrupt()  # the frames that follow are recorded, not counted

    def on_saved(self, wake: WakeDetected) -> None:
        """The detection's request was saved: its activations count as requests."""
        if self._claimed is None or self._claimed[0] != wake.frame_index:
            return
        for name, claimed in self._claimed[1].items():
            self._counters[name].move_to_requests(claimed)
        self._claimed = None

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
