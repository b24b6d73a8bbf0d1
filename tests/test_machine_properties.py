"""The recorder's promises as properties of the pure state machine.

A hypothesis state machine drives `Machine.step` with random settings, scores and VAD
decisions, and mutes, device losses, failures and shutdowns at random frames, and checks
after every step:

- nothing is saved without a detection;
- no saved sample comes from before the wake phrase's look-back bound (the later of the
  detecting frame's end minus `lookback_frames` and the start of the score run above a tenth
  of the threshold), and the saved audio is exactly the frames it claims, in order;
- no saved sample was heard while muted, off or with the device lost;
- every recording is at most `max_length_frames` long (at least 6 frames: the configuration's
  0.5 s floor), whatever the look-back;
- `recording` is announced before any audio of the request is handed to storage;
- no detection falls within the refractory period of the previous one.

`scripts/fuzz.py --minutes N` runs the same machine for longer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from recorder.audio import FRAME_SAMPLES, Frame
from recorder.machine import ONSET_FRACTION as ONSET
from recorder.machine import (
    EndReason,
    Machine,
    MachineSettings,
    State,
    StateChanged,
    UtteranceReady,
    WakeDetected,
)

pytestmark = pytest.mark.fuzz  # `make test-fast` leaves the property budgets out

NAMES = ("a", "b")
scores = st.floats(0.0, 1.0)


class MachinePromises(RuleBasedStateMachine):
    runs = 0
    steps = 0

    @initialize(
        thresholds=st.tuples(st.floats(0.05, 1.0), st.floats(0.05, 1.0)),
        patience=st.tuples(st.integers(1, 4), st.integers(1, 4)),
        refractory=st.integers(0, 30),
        lookback=st.integers(0, 15),
        min_speech=st.integers(1, 5),
        silence=st.integers(1, 12),
        pause=st.integers(1, 24),
        no_speech=st.integers(1, 30),
        max_length=st.integers(6, 16) | st.integers(6, 60),
        muted=st.booleans(),
    )
    def setup(
        self,
        thresholds,
        patience,
        refractory,
        lookback,
        min_speech,
        silence,
        pause,
        no_speech,
        max_length,
        muted,
    ):
        type(self).runs += 1
        self.settings = MachineSettings(
            thresholds=dict(zip(NAMES, thresholds, strict=True)),
            patience_frames=dict(zip(NAMES, patience, strict=True)),
            refractory_frames=refractory,
            lookback_frames=lookback,
            min_speech_frames=min_speech,
            silence_frames=silence,
            pause_frames=pause,
            no_speech_timeout_frames=no_speech,
            max_length_frames=max_length,
        )
        self.m = Machine(self.settings, muted=muted)
        self.index = 0
        self.history: dict[str, list[float]] = {n: [] for n in NAMES}  # score per frame
        self.unheard: set[int] = set()  # frames stepped while muted, off or in error
        self.events: list = []
        self.wakes: list[WakeDetected] = []
        self.saved: list[UtteranceReady] = []
        self.started = False
        self.finished = False
        self.lost = False
        self.take(self.m.start())
        self.started = True

    # --- what happens ------------------------------------------------------------------
    @rule(a=scores, b=scores, speech=st.booleans(), loud=st.integers(0, 3))
    def step(self, a, b, speech, loud):
        if loud < 2:  # often just above the thresholds (detections) or below (score runs)
            a, b = (self.settings.thresholds[n] * (1.01 if loud == 0 else 0.5) for n in NAMES)
        type(self).steps += 1
        if self.m.state in (State.MUTED, State.OFF) or self.lost:
            self.unheard.add(self.index)
        frame = Frame(self.index, np.full(FRAME_SAMPLES, self.index % 30000, dtype=np.int16))
        for n, s in zip(NAMES, (a, b), strict=True):
            self.history[n].append(s)
        self.take(self.m.step(frame, {"a": a, "b": b}, speech))
        self.index += 1

    @rule(n=st.integers(1, 20), above=st.integers(0, 4), speech=st.booleans())
    def wake_phrase(self, n, above, speech):
        """A wake phrase: `n` frames scoring half the threshold (the score's rise), then
        `above` frames above it."""
        for i in range(n + above):
            self.step(0.0, 0.0, speech, 1 if i < n else 0)

    @precondition(lambda self: not self.finished)
    @rule(muted=st.booleans())
    def mute(self, muted):
        self.take(self.m.set_muted(muted))

    @precondition(lambda self: not self.finished)
    @rule()
    def lose_device(self):
        self.take(self.m.device_lost())
        self.lost = True

    @precondition(lambda self: not self.finished)
    @rule()
    def restore_device(self):
        self.take(self.m.device_restored())
        self.lost = False

    @precondition(lambda self: not self.finished)
    @rule()
    def downstream_failure(self):
        self.take(self.m.fail("storage failed"))

    @precondition(lambda self: not self.finished)
    @rule(reason=st.sampled_from([EndReason.SHUTDOWN, EndReason.EOF]))
    def shutdown(self, reason):
        self.take(self.m.finish(reason))
        self.finished = True

    def take(self, events: list) -> None:
        for e in events:
            if isinstance(e, WakeDetected):
                self.wakes.append(e)
            elif isinstance(e, UtteranceReady):
                self.check_saved(e)
                self.saved.append(e)
            self.events.append(e)

    # --- the promises --------------------------------------------------------------------
    def check_saved(self, u: UtteranceReady) -> None:
        s = self.settings
        assert u.wake in self.wakes, "saved without a detection"
        shown = [e for e in self.events if isinstance(e, StateChanged)]
        assert shown and shown[-1].state is State.RECORDING, (
            "audio handed to storage before `recording` was announced"
        )
        w = u.wake.frame_index
        onset = w  # the start of the score run at or above a tenth of the threshold
        scores_w = self.history[u.wake.wake_word]
        while onset > 0 and scores_w[onset - 1] >= s.thresholds[u.wake.wake_word] * ONSET:
            onset -= 1
        # the detecting frame itself is always kept (with lookback_frames 0 too)
        assert u.start_frame >= max(w + 1 - max(s.lookback_frames, 1), onset), (
            f"saved from frame {u.start_frame}, before the wake phrase (wake {w}, onset {onset})"
        )
        assert u.end_frame - u.start_frame <= s.max_length_frames, "longer than max_length"
        expected = np.repeat(np.arange(u.start_frame, u.end_frame) % 30000, FRAME_SAMPLES)
        assert np.array_equal(u.audio, expected.astype(np.int16)), "not the frames it claims"
        heard = set(range(u.start_frame, u.end_frame))
        assert not heard & self.unheard, "saved audio heard while muted, off or device lost"

    @invariant()
    def refractory_period_holds(self):
        if self.started:
            frames = [w.frame_index for w in self.wakes]
            assert all(
                b - a >= self.settings.refractory_frames
                for a, b in zip(frames, frames[1:], strict=False)
            )

    @invariant()
    def state_is_reported(self):
        if self.started:
            shown = [e for e in self.events if isinstance(e, StateChanged)]
            assert shown and shown[-1].state is self.m.state


MachinePromises.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TestMachinePromises = MachinePromises.TestCase


def test_a_look_back_longer_than_max_length_still_ends_within_max_length():
    """The case the properties found: 10 frames of the score's rise, a detection with a
    15-frame look-back and max_length_frames 6; the request once came out 12 frames long.
    (The score falls after the detection: speech while it stays up is the wake phrase.)"""
    settings_ = MachineSettings(
        thresholds={"a": 0.5},
        patience_frames={"a": 1},
        refractory_frames=0,
        lookback_frames=15,
        min_speech_frames=1,
        silence_frames=5,
        no_speech_timeout_frames=10,
        max_length_frames=6,
    )
    m = Machine(settings_)
    m.start()
    events = []
    for i, (score, speech) in enumerate([(0.25, False)] * 10 + [(0.6, False)] + [(0.0, True)] * 6):
        events += m.step(Frame(i, np.full(FRAME_SAMPLES, i, dtype=np.int16)), {"a": score}, speech)
    [ready] = [e for e in events if isinstance(e, UtteranceReady)]
    assert ready.end_frame - ready.start_frame == 6 and ready.end_reason is EndReason.MAX_LENGTH
