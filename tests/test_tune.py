"""The tuning grid's arithmetic: thresholds, patience, false-accept onsets."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recorder.errors import RecorderError
from recorder.tools import tune

GRID = "0.05:0.95:0.05"


def test_grid_evaluation_by_hand():
    positives = [np.array([0, 0.6, 0.6, 0]), np.array([0, 0.9, 0.9, 0, 0.9]), np.zeros(3)]
    # a 6-frame run at 0.8 (refractory 3: onsets at frames 1 and 4), then a lone 0.4 frame
    negatives = [np.array([0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0, 0.4, 0])]
    rows = tune.evaluate(positives, negatives, 3600.0, [0.3, 0.5, 0.7], [1, 2], 3)
    got = {(r.threshold, r.patience): (r.false_reject_rate, r.false_accepts) for r in rows}
    third, two_thirds = 1 / 3, 2 / 3
    assert got == {
        (0.3, 1): (third, 3),
        (0.3, 2): (third, 2),
        (0.5, 1): (third, 2),
        (0.5, 2): (third, 2),
        (0.7, 1): (two_thirds, 2),
        (0.7, 2): (two_thirds, 2),
    }
    assert rows[0].false_accepts_per_hour == 3.0
    # FRR 1/3 within 2 FA/h at (0.3, 2), (0.5, 1) and (0.5, 2): the higher threshold, then
    # the lower patience
    best = tune.recommend(rows, 2.0)
    assert (best.threshold, best.patience) == (0.5, 1)
    assert tune.recommend(rows, 1.9) is None
    assert tune.count_onsets(np.ones(10, dtype=bool), 0) == 10
    assert tune.count_onsets(np.ones(10, dtype=bool), 25) == 1
    assert tune.count_onsets(np.array([1, 0, 0, 1, 1], dtype=bool), 3) == 2


def test_false_accept_onsets_follow_the_machines_refractory_rule():
    """The real machine, its requests dropped one frame after each wake (no speech), detects
    exactly at the onsets tune counts."""
    from recorder.audio import Frame
    from recorder.machine import Machine, MachineSettings, WakeDetected

    rng = np.random.default_rng(1)
    frame = np.zeros(1280, dtype=np.int16)
    total = 0
    for trial in range(30):
        scores = rng.random(400) ** rng.uniform(0.3, 3)
        t, p, refractory = (
            float(rng.choice([0.3, 0.5, 0.8])),
            int(rng.integers(1, 4)),
            int(rng.integers(2, 30)),
        )
        machine = Machine(
            MachineSettings(
                {"w": t}, {"w": p}, refractory_frames=refractory, no_speech_timeout_frames=1
            )
        )
        machine.start()
        wakes = sum(
            isinstance(e, WakeDetected)
            for i, s in enumerate(scores)
            for e in machine.step(Frame(i, frame), {"w": float(s)}, False)
        )
        assert tune.count_onsets(tune.run_min(scores, p) >= t, refractory) == wakes, trial
        total += wakes
    assert total > 100


def test_thresholds_and_patience_parsing():
    assert tune.parse_thresholds("0.1:0.3:0.1") == [0.1, 0.2, 0.3]
    grid = tune.parse_thresholds(GRID)
    assert len(grid) == 19 and grid[0] == 0.05 and grid[-1] == 0.95 and grid[5] == 0.3
    assert tune.parse_thresholds("0.5") == [0.5]
    assert tune.parse_thresholds("0.2:1:0.2") == [0.2, 0.4, 0.6, 0.8, 1.0]
    for bad, why in [
        ("0.1:0.5", "START:STOP:STEP"),
        ("a:b:c", "not a number"),
        ("0.5:0.1:0.1", "below START"),
        ("0:1:0.1", "above 0"),
        ("0.1:1.5:0.1", "at most 1"),
        ("0.1:0.5:0", "STEP must be above 0"),
        ("0.1:0.5:0.15", "whole number"),
        ("nan:0.5:0.1", "START:STOP:STEP"),
        ("0.1:0.9:0.0001", "at most 1000"),
    ]:
        with pytest.raises(RecorderError, match=re.escape(why)):
            tune.parse_thresholds(bad)
    assert tune.parse_patience("3,1,2,1") == [1, 2, 3]
    for bad in ("0", "1,x", "101", ""):
        with pytest.raises(RecorderError):
            tune.parse_patience(bad)
