"""The residual echo's estimate: scripted levels, frame by frame."""

from __future__ import annotations

import numpy as np

from recorder.audio import FRAME_SAMPLES
from recorder.endpoint import Endpointer, rms_db
from recorder.residual import MARGIN_DB, PLAYING_DB, ResidualEcho

RNG = np.random.default_rng(1)
BASE = RNG.standard_normal(FRAME_SAMPLES)
PLAYED_DB = -20.0
COUPLING_DB = -27.0  # the cancelled microphone's residue below the reference


def at(level_db: float) -> np.ndarray:
    """A frame of noise at exactly `level_db` dBFS."""
    x = BASE / np.sqrt(np.mean(BASE**2)) * 32768 * 10 ** (level_db / 20)
    return np.round(x).astype(np.int16)


def listened(res: ResidualEcho, frames: int = 40, played_db: float = PLAYED_DB) -> None:
    """Frames before a wake word: the playback and what the canceller leaves of it, the
    residue swinging by 4 dB either way."""
    for i in range(frames):
        swing = (-4.0, 0.0, 4.0)[i % 3]
        assert res.clear(at(played_db + COUPLING_DB + swing), at(played_db))


def test_outside_a_request_every_frame_is_clear():
    res = ResidualEcho()
    listened(res)
    assert res.clear(at(-47.0), at(PLAYED_DB))
    assert res.coupling_db is None


def test_the_residue_alone_is_not_the_talker_and_the_talker_over_it_is():
    res = ResidualEcho()
    listened(res)
    res.wake(12)
    assert res.coupling_db is not None
    assert abs(res.coupling_db - COUPLING_DB) < 0.1  # the median of the loud frames
    residue = PLAYED_DB + COUPLING_DB
    assert not res.clear(at(residue + 4.0), at(PLAYED_DB))  # the residue's own swing
    assert not res.clear(at(residue + MARGIN_DB - 1.0), at(PLAYED_DB))
    assert res.clear(at(residue + MARGIN_DB + 1.0), at(PLAYED_DB))  # the talker over it
    # a louder playback predicts a louder residue: the same level is its residue there
    assert not res.clear(at(residue + MARGIN_DB + 1.0), at(PLAYED_DB + 6.0))


def test_the_playbacks_tail_is_predicted_in_the_quieter_frame_after_it():
    res = ResidualEcho()
    listened(res)
    res.wake(12)
    residue = PLAYED_DB + COUPLING_DB
    assert not res.clear(at(residue), at(PLAYED_DB))
    # the reference drops by 40 dB: its echo's tail still fills the next frame
    assert not res.clear(at(residue), at(PLAYED_DB - 40.0))


def test_a_silent_playback_leaves_nothing_to_judge():
    res = ResidualEcho()
    listened(res)
    res.wake(12)
    silent = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    for _ in range(10):  # past the tail
        res.clear(at(-60.0), silent)
    assert rms_db(silent) < PLAYING_DB
    assert res.clear(at(-60.0), silent)


def test_without_enough_frames_before_the_wake_phrase_nothing_is_judged():
    res = ResidualEcho()
    listened(res, frames=15)  # 12 of them are the wake phrase's
    res.wake(12)
    assert res.coupling_db is None
    assert res.clear(at(PLAYED_DB + COUPLING_DB), at(PLAYED_DB))


def test_the_coupling_is_learnt_on_the_playbacks_loud_frames_only():
    """Speech played has pauses: there the microphone holds the room's noise, not a residue,
    and the level below the reference says nothing of the canceller."""
    res = ResidualEcho()
    listened(res, frames=40)
    for _ in range(20):  # the playback 30 dB down, the room's noise at -60 dBFS
        res.clear(at(-60.0), at(PLAYED_DB - 30.0))
    res.wake(4)
    assert res.coupling_db is not None
    assert abs(res.coupling_db - COUPLING_DB) < 0.1


def test_a_request_ended_learns_the_coupling_afresh():
    res = ResidualEcho()
    listened(res)
    res.wake(12)
    res.release()
    listened(res, frames=15)
    res.wake(12)
    assert res.coupling_db is None


class Always:
    def is_speech(self, samples: np.ndarray) -> bool:
        return True


def test_the_endpointer_counts_a_frame_of_residue_as_no_speech():
    ep = Endpointer(Always(), Always(), talker_range_db=None, residual=ResidualEcho())
    for i in range(40):
        assert ep.is_speech(at(PLAYED_DB + COUPLING_DB + (-4.0, 0.0, 4.0)[i % 3]), at(PLAYED_DB))
    ep.wake(12)
    assert not ep.is_speech(at(PLAYED_DB + COUPLING_DB + 4.0), at(PLAYED_DB))
    assert ep.is_speech(at(PLAYED_DB + COUPLING_DB + MARGIN_DB + 6.0), at(PLAYED_DB))
    ep.release()
    assert ep.is_speech(at(PLAYED_DB + COUPLING_DB), at(PLAYED_DB))


def test_without_a_residual_estimate_the_reference_changes_nothing():
    ep = Endpointer(Always(), Always(), talker_range_db=None)
    for _ in range(40):
        ep.is_speech(at(-47.0), at(PLAYED_DB))
    ep.wake(12)
    assert ep.is_speech(at(-47.0), at(PLAYED_DB))
