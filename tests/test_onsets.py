"""The detector grid `tune` and the calibration count with (recorder.onsets), and the exact
Poisson bound on a rate of activations that both report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recorder import onsets
from recorder.audio import Frame
from recorder.machine import Machine, MachineSettings, WakeDetected

SILENT = np.zeros(1280, dtype=np.int16)


def reference(scores: np.ndarray, t: float, p: int, refractory: int) -> int:
    """Written apart from `Onsets`: the frames ending p frames at or above t, then each
    detection at least the refractory period after the one before."""
    flagged = [
        i for i in range(p - 1, len(scores)) if all(s >= t for s in scores[i - p + 1 : i + 1])
    ]
    count, last = 0, None
    for i in flagged:
        if last is None or i - last >= max(refractory, 1):
            count, last = count + 1, i
    return count


def bursty(rng: np.random.Generator, n: int) -> np.ndarray:
    s = rng.uniform(0, 0.04, n)
    for start in rng.integers(0, n - 10, n // 20):
        s[start : start + rng.integers(1, 8)] = rng.uniform(0, 1)
    return s


def test_the_grid_detects_exactly_where_the_real_machine_does():
    """The real machine at one threshold and patience, its requests dropped one frame after
    each wake (no speech), detects as often as the grid counts at that (t, p)."""
    rng = np.random.default_rng(1)
    total = 0
    for trial in range(30):
        scores = rng.random(400) ** rng.uniform(0.3, 3)
        t, p = float(rng.choice([0.3, 0.5, 0.8])), int(rng.integers(1, 4))
        refractory = int(rng.integers(2, 30))
        machine = Machine(
            MachineSettings(
                {"w": t}, {"w": p}, refractory_frames=refractory, no_speech_timeout_frames=1
            )
        )
        machine.start()
        wakes = sum(
            isinstance(e, WakeDetected)
            for i, s in enumerate(scores)
            for e in machine.step(Frame(i, SILENT), {"w": float(s)}, False)
        )
        counts = onsets.count(scores, [0.3, 0.5, 0.8], [1, 2, 3], refractory)
        assert counts[p - 1, [0.3, 0.5, 0.8].index(t)] == wakes, trial
        total += wakes
    assert total > 100


@pytest.mark.parametrize("refractory", [0, 1, 3, 25])
def test_every_threshold_and_patience_counts_as_the_rule_says(refractory):
    rng = np.random.default_rng(refractory)
    thresholds, patiences = [0.05, 0.3, 0.5, 0.9], [3, 1, 2, 3]
    total = 0
    for _ in range(20):
        s = bursty(rng, 300)
        counts = onsets.count(s, thresholds, patiences, refractory)
        assert counts.shape == (3, 4)  # patiences sorted, each once
        for row, p in enumerate([1, 2, 3]):
            for k, t in enumerate(thresholds):
                assert counts[row, k] == reference(s, t, p, refractory), (t, p)
        total += int(counts.sum())
    assert total > 100


def test_run_skips_quiet_frames_as_stepping_each_would():
    rng = np.random.default_rng(7)
    for _ in range(100):
        s = bursty(rng, int(rng.integers(10, 200)))
        s[rng.random(len(s)) < 0.1] = np.nan  # a NaN reaches no threshold
        grid = onsets.Onsets([0.2, 0.6], [1, 2], int(rng.integers(0, 10)))
        stepped = onsets.Onsets(grid.thresholds, grid.patiences, grid.gap)
        for i, v in enumerate(s):
            stepped.step(i, float(v))
        half = len(s) // 2  # in two calls, the second going on from the first
        grid.run(s[:half])
        grid.run(s[half:], first_index=half)
        assert (grid.counts == stepped.counts).all()
        assert (grid.above == stepped.above).all() and (grid.last == stepped.last).all()


def test_a_frame_not_analysed_ends_runs_and_the_refractory_period_runs_on():
    grid = onsets.Onsets([0.5], [2], 5)
    assert grid.step(0, 0.9).tolist() == [[False]]
    grid.interrupt()  # a muted frame between 0 and 1
    assert grid.step(1, 0.9).tolist() == [[False]]
    assert grid.step(2, 0.9).tolist() == [[True]]
    for i in range(3, 7):  # within the refractory period of frame 2
        assert not grid.step(i, 0.9).any()
    grid.interrupt()
    assert not grid.step(8, 0.9).any()
    assert grid.step(9, 0.9).all()  # a run of 2 again, 7 frames after the last
    assert grid.counts.tolist() == [[2]]


@pytest.mark.parametrize(
    "k,upper",
    [
        (0, 2.9957),
        (1, 4.7439),
        (2, 6.2958),
        (3, 7.7537),
        (4, 9.1535),
        (5, 10.5130),
        (10, 16.9622),
        (20, 29.0620),
    ],
)
def test_poisson_upper_bound_matches_the_chi_square_table(k, upper):
    # chi2.ppf(0.95, 2k + 2) / 2, from published tables
    assert onsets.poisson_upper(k) == pytest.approx(upper, abs=2e-4)


def test_poisson_upper_bound_leaves_five_percent_below_and_grows_with_k():
    for k in (0, 7, 50, 400):
        u = onsets.poisson_upper(k)
        assert onsets.poisson_cdf(k, u) == pytest.approx(0.05, abs=1e-6)
        assert u > k
    assert onsets.poisson_upper(0) == pytest.approx(-math.log(0.05), rel=1e-6)
    assert onsets.poisson_upper(1000) == pytest.approx(
        1000 + 1.645 * math.sqrt(1000) + 1.9, abs=1.5
    )


def test_poisson_upper_bound_of_many_events_is_continuous_with_the_exact_one():
    exact = onsets.poisson_upper(onsets.EXACT_UP_TO)
    approximated = onsets.poisson_upper(onsets.EXACT_UP_TO + 1)
    assert exact < approximated < exact + 1.1
    assert onsets.poisson_cdf(5_000, onsets.poisson_upper(5_000)) == pytest.approx(0.05, abs=1e-5)
    for k in (5_000, 1_000_000):
        assert onsets.poisson_upper(k) == pytest.approx(k + 1.645 * math.sqrt(k) + 1.9, rel=1e-4)


def test_the_rate_bound_and_the_exposure_it_needs():
    assert onsets.upper_rate(0, 0.0) is None
    assert onsets.upper_rate(3, 2.0) == pytest.approx(7.7537 / 2, abs=1e-4)
    assert onsets.exposure_needed(0.5) == pytest.approx(2.9957 / 0.5, abs=1e-3)
    # after exactly that exposure, zero events show the target
    assert onsets.upper_rate(0, onsets.exposure_needed(0.5)) == pytest.approx(0.5)
