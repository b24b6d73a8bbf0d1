"""Near misses, kept while calibrating: the room's negatives for training a verifier.

A near miss is a moment, while the daemon listens, when a wake word's score came close to its
threshold without reaching it: an episode of consecutive listening frames scoring at least
`floor` (NEAR_MISS_FRACTION of the threshold) and never the threshold itself. At the end of an
episode the verifier features of its highest-scoring frame (the mean and maximum of the engine's
last 16 embeddings, 192 numbers; see recorder.verifier) are added to a bounded per-model
reservoir (uniform reservoir sampling over every near miss ever seen). An episode that reaches
the threshold, or during which the daemon starts recording, may be the real wake word and is
not kept.

Kept: feature vectors and counts only. No audio, no time, no order of events: the reservoir is
a sample of moments, not a timeline. The file `near-misses.npz` in the state directory is
rewritten atomically with the calibration counters and read back at start.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from recorder.audio import Frame
from recorder.calibration import write_atomic
from recorder.dirs import read_file
from recorder.errors import RecorderError
from recorder.machine import State
from recorder.verifier import FEATURE_DIM, WINDOW, features

log = logging.getLogger("recorder")

FILE_NAME = "near-misses.npz"
NEAR_MISS_FRACTION = 0.1
"""An episode starts when the score reaches this fraction of the model's threshold."""
MAX_PER_MODEL = 1000
"""Feature vectors kept per model (192 float32 each: 768 KB at most)."""


class _Reservoir:
    def __init__(self, rows: np.ndarray, seen: int, rng: np.random.Generator):
        self.rows = [r for r in rows.astype(np.float32)]
        self.seen = max(seen, len(self.rows))
        self.rng = rng

    def add(self, row: np.ndarray) -> None:
        self.seen += 1
        if len(self.rows) < MAX_PER_MODEL:
            self.rows.append(row.astype(np.float32))
            return
        k = int(self.rng.integers(self.seen))
        if k < MAX_PER_MODEL:
            self.rows[k] = row.astype(np.float32)

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.float32).reshape(len(self.rows), FEATURE_DIM)


def load(state_dir: Path) -> dict[str, tuple[np.ndarray, int]]:
    """{model: (feature rows, near misses seen)} kept in `state_dir` (none yet: empty)."""
    path = state_dir / FILE_NAME
    out: dict[str, tuple[np.ndarray, int]] = {}
    try:
        data = read_file(path, "near-miss file")
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            for key in f.files:
                if not key.startswith("features:"):
                    continue
                name = key[len("features:") :]
                rows = f[key]
                seen = int(f[f"seen:{name}"])
                if rows.ndim != 2 or rows.shape[1] != FEATURE_DIM or not np.isfinite(rows).all():
                    raise ValueError(f"{key} has shape {rows.shape}")
                out[name] = (rows.astype(np.float32), seen)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise RecorderError(f"near-miss file {path}: not readable ({e})") from None
    return out


class NearMisses:
    """Collects near misses for the models that have embeddings (openWakeWord models)."""

    def __init__(
        self,
        state_dir: Path,
        thresholds: Mapping[str, float],
        embeddings: Callable[[int], np.ndarray],
        seed: int | None = None,
    ):
        self.path = state_dir / FILE_NAME
        self.embeddings = embeddings
        self.floors = {n: t * NEAR_MISS_FRACTION for n, t in thresholds.items()}
        self.thresholds = dict(thresholds)
        rng = np.random.default_rng(seed)
        kept = load(state_dir)
        self.reservoirs = {
            n: _Reservoir(*kept.get(n, (np.zeros((0, FEATURE_DIM), np.float32), 0)), rng)
            for n in thresholds
        }
        self._others = {n: v for n, v in kept.items() if n not in thresholds}
        self._peak: dict[str, tuple[float, np.ndarray]] = {}
        """Per model in an episode: its highest score so far and that frame's features."""
        self._spoiled: set[str] = set()
        """Models whose current episode reached the threshold or saw a recording."""

    def observe(
        self, frame: Frame, scores: Mapping[str, float], _speech: bool, state: State
    ) -> None:
        """A daemon observer (after Calibration's, which counts the same frames)."""
        window: np.ndarray | None = None
        for name, floor in self.floors.items():
            score = float(scores.get(name, 0.0))
            if state is not State.LISTENING:
                if name in self._peak:
                    self._spoiled.add(name)  # the episode ran into a recording: not kept
                continue
            if score < floor:
                self._end(name)
                continue
            if score >= self.thresholds[name]:
                self._spoiled.add(name)
            best = self._peak.get(name)
            if best is None or score > best[0]:
                window = self.embeddings(WINDOW) if window is None else window
                self._peak[name] = (score, features(window))

    def _end(self, name: str) -> None:
        peak = self._peak.pop(name, None)
        if peak is not None and name not in self._spoiled:
            self.reservoirs[name].add(peak[1])
        self._spoiled.discard(name)

    def counts(self) -> dict[str, tuple[int, int]]:
        """{model: (kept, seen)}."""
        return {n: (len(r.rows), r.seen) for n, r in self.reservoirs.items()}

    def save(self) -> None:
        """Write every model's reservoir (and those of models not in this run) atomically."""
        arrays: dict[str, np.ndarray] = {}
        for name, (rows, seen) in self._others.items():
            arrays[f"features:{name}"], arrays[f"seen:{name}"] = (
                rows,
                np.array(seen, dtype=np.int64),
            )
        for name, r in self.reservoirs.items():
            arrays[f"features:{name}"], arrays[f"seen:{name}"] = (
                r.array(),
                np.array(r.seen, dtype=np.int64),
            )
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        try:
            write_atomic(self.path, buf.getvalue())
        except OSError as e:
            raise RecorderError(f"near-miss file {self.path}: {e.strerror or e}") from None
