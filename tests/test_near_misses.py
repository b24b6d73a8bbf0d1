"""Near misses kept while calibrating: episodes, what is dropped, the bound, the file."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.audio import Frame
from recorder.errors import RecorderError
from recorder.machine import State
from recorder.near_misses import FILE_NAME, MAX_PER_MODEL, NearMisses, load
from recorder.verifier import FEATURE_DIM

L, R = State.LISTENING, State.RECORDING
SILENCE = np.zeros(1280, dtype=np.int16)


class Embeddings:
    """The engine's last embeddings, made to tell frames apart: row values = frame number."""

    def __init__(self) -> None:
        self.frame = 0

    def __call__(self, n: int) -> np.ndarray:
        return np.full((n, 96), float(self.frame))


def feed(nm: NearMisses, emb: Embeddings, scores: list[float], states: list[State] | None = None):
    for i, s in enumerate(scores):
        emb.frame = i
        nm.observe(Frame(i, SILENCE), {"m": s}, False, (states or [L] * len(scores))[i])


def test_an_episode_keeps_the_features_of_its_peak_and_nothing_else(tmp_path):
    emb = Embeddings()
    nm = NearMisses(tmp_path, {"m": 0.5}, emb, seed=1)  # floor 0.15
    feed(nm, emb, [0.0, 0.2, 0.4, 0.3, 0.1, 0.0, 0.16, 0.0, 0.1])
    rows = nm.reservoirs["m"].array()
    assert [r[0] for r in rows] == [2.0, 6.0]  # the peak frame of each episode
    assert nm.counts() == {"m": (2, 2)}


def test_episodes_that_reach_the_threshold_or_a_recording_are_not_kept(tmp_path):
    emb = Embeddings()
    nm = NearMisses(tmp_path, {"m": 0.5}, emb)
    feed(nm, emb, [0.2, 0.6, 0.2, 0.0])  # reached the threshold: maybe the wake word
    feed(nm, emb, [0.3, 0.3, 0.0, 0.0], [L, R, R, L])  # the daemon recorded
    feed(nm, emb, [0.3, 0.0])  # a plain near miss
    assert nm.counts() == {"m": (1, 1)}


def test_the_reservoir_is_bounded_and_survives_a_restart(tmp_path):
    emb = Embeddings()
    nm = NearMisses(tmp_path, {"m": 0.5, "other": 0.5}, emb, seed=2)
    feed(nm, emb, [0.3, 0.0] * (MAX_PER_MODEL + 200))
    assert nm.counts()["m"] == (MAX_PER_MODEL, MAX_PER_MODEL + 200)
    nm.save()
    kept = load(tmp_path)
    assert (
        kept["m"][0].shape == (MAX_PER_MODEL, FEATURE_DIM) and kept["m"][1] == MAX_PER_MODEL + 200
    )
    # the sample is spread over the whole stream, not its beginning
    frames = kept["m"][0][:, 0]
    assert frames.max() > 2 * MAX_PER_MODEL
    # a restart with one model only: the other's data is carried over untouched
    again = NearMisses(tmp_path, {"other": 0.5}, emb)
    again.save()
    assert set(load(tmp_path)) == {"m", "other"}
    assert np.array_equal(load(tmp_path)["m"][0], kept["m"][0])


def test_a_damaged_file_is_one_clear_error(tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(RecorderError, match="near-miss file .*not readable"):
        NearMisses(tmp_path, {"m": 0.5}, Embeddings())
