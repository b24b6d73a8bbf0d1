"""The tuning grid's arithmetic: thresholds, patience, false-accept onsets."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recorder.errors import RecorderError
from recorder.onsets import poisson_upper
from recorder.tools import tune
from recorder.tools.report import tune_table

GRID = "0.05:0.95:0.05"


def test_grid_evaluation_by_hand():
    positives = [np.array([0, 0.6, 0.6, 0]), np.array([0, 0.9, 0.9, 0, 0.9]), np.zeros(3)]
    # a 6-frame run at 0.8 (refractory 3: onsets at frames 1 and 4), then a lone 0.4 frame
    negatives = [np.array([0, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0, 0.4, 0])]
    hours = 10.0
    rows = tune.evaluate(positives, negatives, hours * 3600, [0.3, 0.5, 0.7], [1, 2], 3)
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
    assert rows[0].false_accepts_per_hour == 0.3
    # the same exact Poisson bound as `recorder calibrate`: 7.75 events after 3, 6.30 after 2
    assert rows[0].false_accepts_per_hour_upper == pytest.approx(poisson_upper(3) / hours)
    assert rows[1].false_accepts_per_hour_upper == pytest.approx(0.62958, abs=1e-4)
    # FRR 1/3 within 0.7 FA/h at the bound at (0.3, 2), (0.5, 1) and (0.5, 2): the higher
    # threshold, then the lower patience
    best, reason = tune.recommend(rows, 0.7, hours)
    assert best is not None and (best.threshold, best.patience) == (0.5, 1) and reason is None
    best, reason = tune.recommend(rows, 0.6, hours)
    assert (
        best is None and reason == "no point's 95% upper bound is within 0.6 false accepts per hour"
    )


def test_negatives_too_short_to_bound_the_rate_recommend_nothing_and_say_why():
    """18 s of negatives without a false accept: 0.00 per hour, but up to 599 per hour at the
    95 % bound; a limit of 0.5 per hour needs 6 h of negatives."""
    positives = [np.array([0, 0.95, 0.95, 0])]
    negatives = [np.zeros(225)]  # 18 s
    rows = tune.evaluate(positives, negatives, 18.0, [0.5, 0.9], [1], 25)
    assert all(r.false_accepts == 0 and r.false_accepts_per_hour == 0.0 for r in rows)
    assert rows[0].false_accepts_per_hour_upper == pytest.approx(poisson_upper(0) / 0.005)
    best, reason = tune.recommend(rows, 0.5, 18.0 / 3600)
    assert best is None
    assert reason == (
        "the negatives are too short: 0.3 min; at least 6.0 h are needed before even zero "
        "false accepts show at most 0.5 per hour at 95% confidence"
    )
    # a limit the bound after 18 s can meet: then the point is recommended
    best, reason = tune.recommend(rows, 600.0, 18.0 / 3600)
    assert best is not None and (best.threshold, reason) == (0.9, None)
    # the hours needed are those after which zero false accepts just meet the limit
    for hours, recommended in ((5.98, False), (6.0, True)):
        longer = tune.evaluate(positives, negatives, hours * 3600, [0.5, 0.9], [1], 25)
        assert (tune.recommend(longer, 0.5, hours)[0] is not None) == recommended, hours
    # and the table says so instead of recommending a point "at 0.00 per hour"
    result = {
        "model": "m",
        "positives": 1,
        "negative_hours": 18.0 / 3600,
        "confidence": 0.95,
        "rows": [r.as_dict() for r in rows],
        "recommended": None,
        "reason": tune.recommend(rows, 0.5, 18.0 / 3600)[1],
    }
    table = tune_table(result, 0.5, 2.0)
    assert table.splitlines()[-1] == f"recommended: none ({result['reason']})"
    assert "599.15" in table  # the bound per row


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
