"""The calibration counters (recorder.calibration) and the report of `recorder calibrate`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recorder import calibration, onsets
from recorder.audio import Frame
from recorder.calibration import PATIENCES, THRESHOLDS, Calibration
from recorder.errors import RecorderError
from recorder.machine import State, WakeDetected
from recorder.tools import calibrate, enroll

SILENT = np.zeros(1280, dtype=np.int16)


def frame(i: int) -> Frame:
    return Frame(i, SILENT)


def bursty_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly near 0 with bursts of various heights and lengths, as a wake-word score looks."""
    s = rng.uniform(0, 0.04, n)
    for start in rng.integers(0, n - 10, n // 25):
        s[start : start + rng.integers(1, 8)] = rng.uniform(0, 1)
    return s


def feed(cal: Calibration, scores: dict[str, np.ndarray], first: int = 0) -> None:
    n = len(next(iter(scores.values())))
    for i in range(n):
        cal.observe(
            frame(first + i), {k: float(v[i]) for k, v in scores.items()}, False, State.LISTENING
        )


# --- counting as the machine and `tune` count ---------------------------------------------
@pytest.mark.parametrize("refractory", [0, 1, 5, 25])
def test_counts_are_tunes_whatever_the_operating_threshold_was_doing(tmp_path, refractory):
    """Frames listening or recording (the operating threshold's request), all counted: every
    (threshold, patience) counts what `tune` counts on the same scores."""
    rng = np.random.default_rng(refractory)
    scores = {"a": bursty_scores(rng, 3000), "b": bursty_scores(rng, 3000)}
    states = np.where(rng.random(3000) < 0.3, State.RECORDING, State.LISTENING)
    cal = Calibration(tmp_path, {"a": 1, "b": 4}, refractory)
    for i, state in enumerate(states):
        cal.observe(frame(i), {k: float(v[i]) for k, v in scores.items()}, False, state)
    total = 0
    for name, s in scores.items():
        m = cal.models[name]
        assert m.frames == 3000
        assert sorted(m.patience) == sorted({*PATIENCES, {"a": 1, "b": 4}[name]})
        expected = onsets.count(s, THRESHOLDS, m.patience, refractory)
        for row, (p, pc) in enumerate(sorted(m.patience.items())):
            assert pc.activations == expected[row].tolist(), (name, p)
            assert pc.requests == [0] * len(THRESHOLDS)
            assert pc.frames == 3000
        total += int(expected.sum())
    assert total > 100  # the comparison has something to compare


def test_a_gap_in_the_frames_or_a_state_not_analysed_ends_a_run(tmp_path):
    cal = Calibration(tmp_path, {"a": 2}, 0)
    for i in (0, 2, 3):  # frame 1 was muted (not analysed): 0 and 2 are not consecutive
        cal.observe(frame(i), {"a": 0.9}, False, State.LISTENING)
    cal.observe(frame(4), {"a": 0.9}, False, State.ERROR)
    cal.observe(frame(5), {"a": 0.9}, False, State.RECORDING)
    cal.observe(frame(6), {"a": 0.9}, False, State.LISTENING)
    pc = cal.models["a"].patience[2]
    assert pc.activations[THRESHOLDS.index(0.5)] == 2  # at frames 3 and 6
    assert pc.frames == 5  # 0, 2, 3, 5, 6: the frame in error is not heard time


def wake_then(cal: Calibration, start: int, saved: bool) -> None:
    """A burst the daemon detects at its third frame (state recording after it), then 10
    recorded frames at 0.9; the request is saved or discarded."""
    cal.observe(frame(start), {"a": 0.3}, False, State.LISTENING)
    cal.observe(frame(start + 1), {"a": 0.6}, False, State.LISTENING)
    cal.observe(frame(start + 2), {"a": 0.8}, False, State.RECORDING)
    wake = WakeDetected(start + 2, "a", 0.8)
    cal.on_wake(wake)
    for i in range(start + 3, start + 13):
        cal.observe(frame(i), {"a": 0.9}, False, State.RECORDING)
    if saved:
        cal.on_saved(wake)
    for i in range(start + 13, start + 20):
        cal.observe(frame(i), {"a": 0.0}, False, State.LISTENING)


def test_activations_that_became_saved_requests_are_counted_apart(tmp_path):
    cal = Calibration(tmp_path, {"a": 1}, 25)
    wake_then(cal, 0, saved=True)
    wake_then(cal, 100, saved=False)  # discarded (no speech): stays an activation
    p1, p3 = cal.models["a"].patience[1], cal.models["a"].patience[3]
    at = {t: THRESHOLDS.index(t) for t in (0.25, 0.55, 0.75, 0.85, 0.95)}
    # 0.85 first reached while recording, a frame after the detection: the same wake word
    assert [p1.requests[at[t]] for t in at] == [1, 1, 1, 1, 0]
    assert [p1.activations[at[t]] for t in at] == [1, 1, 1, 1, 0]
    assert [p3.requests[at[t]] for t in at] == [1, 1, 1, 1, 0]  # at frames 2, 3, 4 and 5
    assert [p3.activations[at[t]] for t in at] == [1, 1, 1, 1, 0]
    assert p1.frames == 2 * 20  # the recorded frames are heard time too


def test_an_activation_after_the_save_within_the_refractory_period_is_the_requests(tmp_path):
    cal = Calibration(tmp_path, {"a": 1}, 5)
    for i, s in enumerate([0.0, 0.6]):
        cal.observe(frame(i), {"a": s}, False, State.RECORDING if i else State.LISTENING)
    wake = WakeDetected(1, "a", 0.6)
    cal.on_wake(wake)
    cal.on_saved(wake)  # saved at once (a test's short request)
    scores = [0.7, 0.95, 0.0, 0.0, 0.0, 0.0, 0.96]  # frames 2..8
    for i, s in enumerate(scores, start=2):
        cal.observe(frame(i), {"a": s}, False, State.LISTENING)
    pc = cal.models["a"].patience[1]
    at = THRESHOLDS.index
    assert (pc.requests[at(0.55)], pc.requests[at(0.65)], pc.requests[at(0.95)]) == (1, 1, 1)
    # 0.96 at frame 8, 7 frames after the detection: new activations, not the request's
    assert [pc.activations[at(t)] for t in (0.05, 0.55, 0.65, 0.95)] == [1, 1, 1, 1]


# --- persistence -----------------------------------------------------------------------
def test_counts_survive_a_restart_and_add_up(tmp_path):
    rng = np.random.default_rng(1)
    s = bursty_scores(rng, 2000)
    first = Calibration(tmp_path, {"a": 1}, 25)
    feed(first, {"a": s})
    first.close()
    once = calibration.load(tmp_path)["a"]
    second = Calibration(tmp_path, {"a": 2, "b": 1}, 25)  # another model, another patience
    feed(second, {"a": s, "b": s})
    second.close()
    both = calibration.load(tmp_path)
    assert both["a"].frames == 2 * once.frames == 4000
    for p in PATIENCES:
        assert both["a"].patience[p].activations == [2 * c for c in once.patience[p].activations]
    assert both["b"].frames == 2000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration.json"]


def test_counts_reach_the_disk_every_few_minutes_of_audio(tmp_path):
    cal = Calibration(tmp_path, {"a": 1}, 25, save_every_frames=100)
    feed(cal, {"a": np.full(250, 0.01)})
    assert calibration.load(tmp_path)["a"].frames == 200  # not yet 250: no write per frame
    cal.close()
    assert calibration.load(tmp_path)["a"].frames == 250


@pytest.mark.parametrize(
    "content,culprit",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "something else"}', "not a recorder calibration file"),
        (
            json.dumps(
                {"format": "recorder-calibration", "version": 2, "thresholds": [0.5], "models": {}}
            ),
            "thresholds differ",
        ),
        (
            json.dumps(
                {
                    "format": "recorder-calibration",
                    "version": 2,
                    "thresholds": list(THRESHOLDS),
                    "models": {"a": {"frames": -3, "patience": {}}},
                }
            ),
            "models.a.frames",
        ),
    ],
)
def test_a_bad_file_is_one_clear_error_and_is_left_alone(tmp_path, content, culprit):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(RecorderError, match=culprit) as e:
        Calibration(tmp_path, {"a": 1}, 25)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert path.read_text() == content


def test_a_version_1_file_is_moved_aside_and_counting_starts_anew(tmp_path, caplog):
    """Version 1 counted only while listening: its counts are kept as they were, apart, and
    not added to; the report refuses it in one line that says what the daemon does."""
    old = {
        "format": "recorder-calibration",
        "version": 1,
        "frame_s": 0.08,
        "thresholds": list(THRESHOLDS),
        "refractory_frames": 25,
        "models": {"a": {"frames": 7, "patience": {}}},
    }
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(old))
    with pytest.raises(calibration.OldVersion, match="version 1 counted only while listening"):
        calibration.load(tmp_path)
    cal = Calibration(tmp_path, {"a": 1}, 25)
    feed(cal, {"a": np.zeros(3)})
    cal.close()
    assert json.loads((tmp_path / "calibration.json.v1").read_text()) == old
    assert calibration.load(tmp_path)["a"].frames == 3
    assert json.loads(path.read_text())["version"] == calibration.VERSION == 2
    assert "kept as" in caplog.text and "calibration.json.v1" in caplog.text


def test_an_unwritable_state_directory_is_an_error_at_start(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file, not a directory")
    with pytest.raises(RecorderError, match="state directory"):
        Calibration(blocker, {"a": 1}, 25)


# --- the report and the recommendation ---------------------------------------------------
def counts_for(hours: float, activations: dict[float, int]) -> calibration.ModelCounts:
    frames = round(hours * 3600 / 0.08)
    pc = calibration.PatienceCounts(frames)
    for t, n in activations.items():
        pc.activations[THRESHOLDS.index(t)] = n
    return calibration.ModelCounts(frames, {1: pc})


def test_report_rates_bounds_and_the_lowest_threshold_meeting_the_target():
    # 30 days; the activations fall as the threshold rises
    acts = {t: max(0, 200 - int(t * 400)) for t in THRESHOLDS}
    m = calibrate.model_report("a", counts_for(720, acts), 1, None, target=1.0)
    row = {r["threshold"]: r for r in m["thresholds"]}
    assert row[0.05]["activations"] == 180 and row[0.05]["fa_per_day"] == pytest.approx(6.0)
    assert row[0.05]["fa_per_day_upper"] == pytest.approx(onsets.poisson_upper(180) / 30)
    meets = [t for t in THRESHOLDS if onsets.poisson_upper(acts[t]) / 30 <= 1.0]
    assert m["recommended"]["threshold"] == min(meets) == 0.45
    assert m["reason"] is None and m["hours"] == pytest.approx(720)


def test_too_few_hours_recommend_nothing_and_say_why():
    m = calibrate.model_report("a", counts_for(50, {}), 1, None, target=1.0)
    assert m["recommended"] is None
    assert "too few hours" in m["reason"] and "71.9 h" in m["reason"]
    # enough hours, but too many activations everywhere: another reason
    m = calibrate.model_report("a", counts_for(100, dict.fromkeys(THRESHOLDS, 50)), 1, None, 1.0)
    assert m["recommended"] is None and "no threshold" in m["reason"]


def test_with_enrolled_voices_the_lowest_false_reject_rate_within_the_target_wins():
    acts = {t: max(0, 60 - int(t * 200)) for t in THRESHOLDS}  # none from 0.3 up
    detected = {1: [10 if t < 0.6 else 7 for t in THRESHOLDS]}
    m = calibrate.model_report(
        "a", counts_for(24 * 30, acts), 1, {"clips": 10, "detected": detected}, target=1.0
    )
    rec = m["recommended"]
    # 0.2: 20 activations in 30 days, upper bound 29.06 / 30 <= 1; 0.15: 30, 40.3 / 30 > 1
    assert (rec["threshold"], rec["false_reject_rate"]) == (0.2, 0.0)
    m = calibrate.model_report(
        "a", counts_for(24 * 30, acts), 1, {"clips": 10, "detected": detected}, target=0.1
    )
    assert m["recommended"]["threshold"] == 0.3  # the first with no activation at all
    row = {r["threshold"]: r for r in m["thresholds"]}
    assert row[0.7]["false_reject_rate"] == pytest.approx(0.3)


def test_enrollment_counts_round_trip_and_replace_per_model(tmp_path):
    d1 = {1: [3] * len(THRESHOLDS), 2: [2] * len(THRESHOLDS)}
    enroll.save(tmp_path, "a", 4, d1)
    enroll.save(tmp_path, "b", 1, {1: [1] * len(THRESHOLDS)})
    enroll.save(tmp_path, "a", 5, {1: [5] * len(THRESHOLDS)})
    got = enroll.load(tmp_path)
    assert got["a"] == {"clips": 5, "detected": {1: [5] * len(THRESHOLDS)}}
    assert got["b"]["clips"] == 1


def test_detected_counts_follow_the_best_run_per_patience():
    clips = [np.array([0.0, 0.9, 0.2, 0.0]), np.array([0.0, 0.4, 0.5, 0.6, 0.0])]
    bests = [enroll.best_runs(c, [1, 2, 3]) for c in clips]
    got = enroll.detected_counts(bests, [1, 2, 3])
    at = THRESHOLDS.index
    assert (got[1][at(0.6)], got[1][at(0.65)], got[1][at(0.9)], got[1][at(0.95)]) == (2, 1, 1, 0)
    assert (got[2][at(0.2)], got[2][at(0.25)], got[2][at(0.5)], got[2][at(0.55)]) == (2, 1, 1, 0)
    assert (got[3][at(0.4)], got[3][at(0.45)]) == (1, 0)


def test_a_rise_that_dips_before_the_detection_is_still_the_requests(tmp_path):
    """0.45, 0.3, then detected at 0.85: the activation at 0.4 two frames before belongs to the
    request (it lies within the refractory period of the detection)."""
    cal = Calibration(tmp_path, {"a": 1}, 25)
    for i, s in enumerate([0.0, 0.45, 0.3]):
        cal.observe(frame(i), {"a": s}, False, State.LISTENING)
    cal.observe(frame(3), {"a": 0.85}, False, State.RECORDING)
    wake = WakeDetected(3, "a", 0.85)
    cal.on_wake(wake)
    cal.on_saved(wake)
    pc = cal.models["a"].patience[1]
    at = THRESHOLDS.index
    assert (pc.requests[at(0.4)], pc.requests[at(0.5)], pc.requests[at(0.9)]) == (1, 1, 0)
    assert sum(pc.activations) == 0
    assert pc.frames == 4
