"""What a detector at each candidate threshold and patience would do on one stream of scores:
the machine's detection rules, for a whole grid at once, frame by frame.

An activation at threshold t and patience p is a frame where the score has been at or above t
on p consecutive frames, at least the refractory period after the previous activation at
(t, p) (the machine's `_count` and `_detect`). Each (t, p) is a detector on its own: what one
operating threshold did (recording, or not) changes nothing. Frames that were not analysed
(muted, a gap, an error) end a run; the refractory period runs on across them.

`recorder tune` (false accepts in negative recordings) and the daemon's calibration (false
accepts in the owner's room) both count with `Onsets`, so that on the same scores they count
the same activations. The state is a few integers per (t, p); no score is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from statistics import NormalDist

import numpy as np

CONFIDENCE = 0.95
"""The confidence of the upper bound on a rate of activations."""
EXACT_UP_TO = 1000
"""Event counts up to which `poisson_upper` searches the exact bound."""
NEVER = -(10**12)
"""The frame index of an activation that has not happened."""


class Onsets:
    """Activations per (patience, threshold), in arrays indexed [patience row, threshold]."""

    def __init__(
        self, thresholds: Sequence[float], patiences: Iterable[int], refractory_frames: int
    ):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.patiences: list[int] = sorted(set(patiences))
        self.gap = max(refractory_frames, 1)
        self._need = np.array(self.patiences, dtype=np.int64)[:, None]
        self.above = np.zeros(len(self.thresholds), dtype=np.int64)
        """Consecutive frames at or above each threshold, up to the last one stepped."""
        self.last = np.full((len(self.patiences), len(self.thresholds)), NEVER, dtype=np.int64)
        """The frame index of the last activation at each (patience, threshold)."""
        self.counts = np.zeros_like(self.last)
        """Activations so far at each (patience, threshold)."""

    def step(self, index: int, score: float) -> np.ndarray:
        """One analysed frame (frame indexes increase); the (patience, threshold) pairs that
        activate on it, as a boolean array."""
        self.above = np.where(score >= self.thresholds, self.above + 1, 0)
        fired: np.ndarray = (self.above >= self._need) & (index - self.last >= self.gap)
        self.last[fired] = index
        self.counts += fired
        return fired

    def interrupt(self) -> None:
        """A frame that was not analysed: every run ends."""
        self.above[:] = 0

    def run(self, scores: Sequence[float] | np.ndarray, first_index: int = 0) -> np.ndarray:
        """Consecutive frames from `first_index` on; the counts so far. A frame below every
        threshold only ends the runs (as `step` would), so only the others are stepped."""
        s = np.asarray(scores, dtype=np.float64)
        lowest = float(np.min(self.thresholds)) if len(self.thresholds) else math.inf
        previous = -1
        for i in np.flatnonzero(s >= lowest).tolist():
            if i > previous + 1:
                self.interrupt()
            self.step(first_index + i, float(s[i]))
            previous = i
        if previous < len(s) - 1:
            self.interrupt()
        return self.counts


def count(
    scores: np.ndarray,
    thresholds: Sequence[float],
    patiences: Iterable[int],
    refractory_frames: int,
) -> np.ndarray:
    """The activations a fresh detector grid makes on one stream of consecutive scores:
    counts[patience row, threshold], the patiences sorted."""
    return Onsets(thresholds, patiences, refractory_frames).run(scores)


def poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean)."""
    if mean <= 0:
        return 1.0
    log_term = -mean  # log P(X = 0)
    total = math.exp(log_term)
    for i in range(1, k + 1):
        log_term += math.log(mean) - math.log(i)
        total += math.exp(log_term)
    return min(total, 1.0)


def poisson_upper(k: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided upper confidence bound of a Poisson mean after `k` events: the mean
    whose P(X <= k) is 1 - confidence (chi-square(2k + 2) quantile / 2; 3.00 for k = 0).
    Above EXACT_UP_TO events, the Wilson-Hilferty approximation of that quantile (within 2e-7
    of the exact bound there; the exact search costs O(k) per step)."""
    if k > EXACT_UP_TO:
        z = NormalDist().inv_cdf(confidence)
        dof = 2 * k + 2
        return float(dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3 / 2)
    alpha = 1.0 - confidence
    lo, hi = float(k), float(k) + 10.0
    while poisson_cdf(k, hi) > alpha:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if poisson_cdf(k, mid) > alpha:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * max(1.0, hi):
            break
    return hi


def upper_rate(events: int, exposure: float, confidence: float = CONFIDENCE) -> float | None:
    """The upper confidence bound of a rate after `events` in `exposure` (hours, days: the
    rate's unit); None without exposure."""
    return poisson_upper(events, confidence) / exposure if exposure > 0 else None


def exposure_needed(target_rate: float, confidence: float = CONFIDENCE) -> float:
    """The exposure after which even zero events show at most `target_rate` at the bound."""
    return poisson_upper(0, confidence) / target_rate
