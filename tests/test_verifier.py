"""The second-stage verifier: training and its .npz file."""

from __future__ import annotations

import numpy as np
import pytest

from recorder import verifier
from recorder.errors import RecorderError


def test_training_separates_two_clouds_and_the_file_round_trips_without_pickle(tmp_path):
    rng = np.random.default_rng(3)
    pos = rng.normal(0.5, 1.0, (60, 192))
    neg = rng.normal(-0.5, 1.0, (300, 192))
    v = verifier.train("hey_jarvis", pos[:40], neg[:200])
    assert np.mean(v.probability(pos[40:]) >= 0.5) > 0.9
    assert np.mean(v.probability(neg[200:]) < 0.5) > 0.9
    path = tmp_path / "v.npz"
    v.save(path)
    with np.load(path, allow_pickle=False) as f:
        assert set(f.files) == {"weights", "bias", "mean", "scale", "decision", "model", "features"}
    w = verifier.load(path)
    assert w.model == "hey_jarvis"
    np.testing.assert_array_equal(w.probability(neg), v.probability(neg))


def test_a_file_that_is_not_a_verifier_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(RecorderError, match="bad.npz"):
        verifier.load(bad)
    with pytest.raises(RecorderError, match="no such file"):
        verifier.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(RecorderError, match="other.npz"):
        verifier.load(tmp_path / "other.npz")
