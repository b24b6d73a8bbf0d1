"""The pure state machine, table-style: scripted wake scores and VAD decisions, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.audio import FRAME_SAMPLES, Frame
from recorder.machine import (
    EndReason,
    Machine,
    MachineSettings,
    SpeechStarted,
    State,
    StateChanged,
    UtteranceDiscarded,
    UtteranceReady,
    WakeDetected,
)

W = "hey_jarvis"


def settings(**kw) -> MachineSettings:
    base = dict(
        thresholds={W: 0.5},
        patience_frames={W: 1},
        refractory_frames=25,
        lookback_frames=12,
        min_speech_frames=3,
        silence_frames=10,
        pause_frames=10,  # the pause after a short first command: tested on its own below
        no_speech_timeout_frames=50,
        max_length_frames=188,
    )
    base.update(kw)
    return MachineSettings(**base)


def frame(i: int) -> Frame:
    """Each frame's samples all hold its index, so saved audio tells which frames were kept."""
    return Frame(i, np.full(FRAME_SAMPLES, i, dtype=np.int16))


def script(spec: str) -> list[tuple[float, bool]]:
    """One char per frame: '.' quiet, 's' speech, 'W' wake score 0.9 + speech,
    'w' score 0.2 (rising, below threshold) + speech, 'h' 0.9 without speech."""
    table = {
        ".": (0.0, False),
        "s": (0.0, True),
        "W": (0.9, True),
        "w": (0.2, True),
        "h": (0.9, False),
    }
    return [table[c] for c in spec]


def drive(machine: Machine, spec: str, start: int = 0, scores_for=None):
    events = []
    for i, (score, speech) in enumerate(script(spec), start):
        scores = scores_for(i, score) if scores_for else {W: score}
        events += machine.step(frame(i), scores, speech)
    return events


def saved_frames(event: UtteranceReady) -> list[int]:
    return sorted(set(event.audio.tolist()))


def started(s: MachineSettings | None = None) -> Machine:
    m = Machine(s or settings())
    assert m.start() == [StateChanged(0, State.OFF, State.LISTENING)]
    return m


def test_speech_without_a_wake_word_is_never_kept():
    m = started()
    events = drive(m, "." * 20 + "s" * 40 + "." * 20)
    assert events == []
    assert m.state is State.LISTENING


def test_request_after_wake_word_is_kept_until_silence():
    m = started()
    # frames 0-9 quiet, 10-14 chat, 15-17 quiet, 18-21 wake phrase (score rising at 20,
    # detected at 21), 22-23 pause, 24-33 command, then silence
    spec = "." * 10 + "s" * 5 + "..." + "ssw" + "W" + ".." + "s" * 10 + "." * 15
    events = drive(m, spec)
    kinds = [type(e) for e in events]
    assert kinds == [WakeDetected, StateChanged, SpeechStarted, UtteranceReady, StateChanged]
    wake, rec, speech, ready, back = events
    assert wake == WakeDetected(21, W, 0.9)
    assert rec == StateChanged(21, State.LISTENING, State.RECORDING)
    assert speech == SpeechStarted(26)
    assert ready.end_reason is EndReason.SILENCE
    # starts where the score began to rise (frame 20), ends after 10 silent frames
    assert (ready.start_frame, ready.end_frame) == (20, 44)
    assert saved_frames(ready) == list(range(20, 44))
    assert len(ready.audio) == 24 * FRAME_SAMPLES
    assert back == StateChanged(43, State.RECORDING, State.LISTENING)


def test_lookback_caps_how_far_back_the_recording_reaches():
    m = started(settings(lookback_frames=3))
    # the score is above a tenth of the threshold for 8 frames before the detection
    events = drive(m, "." * 10 + "w" * 8 + "W" + "s" * 5 + "." * 12)
    ready = next(e for e in events if isinstance(e, UtteranceReady))
    assert ready.wake.frame_index == 18
    assert ready.start_frame == 18 - 3 + 1  # the detecting frame and the two before it
    assert saved_frames(ready)[0] == 16


def test_nothing_from_before_the_score_rise_is_kept():
    m = started()
    events = drive(m, "s" * 30 + "." * 2 + "wW" + "s" * 6 + "." * 12)
    ready = next(e for e in events if isinstance(e, UtteranceReady))
    assert min(saved_frames(ready)) == 32  # the earlier speech (0-29) is not in the recording


def test_bare_wake_word_saves_nothing():
    m = started()
    # the wake word's tail is speech for two frames after the detection, then silence
    events = drive(m, "." * 10 + "wW" + "ss" + "." * 60)
    discarded = [e for e in events if isinstance(e, UtteranceDiscarded)]
    assert [e.reason for e in discarded] == ["no_command"]  # the wake phrase and nothing else
    assert discarded[0].frame_index == 11 + 50  # exactly no_speech_timeout after the detection
    assert not any(isinstance(e, UtteranceReady) for e in events)
    assert m.state is State.LISTENING


@pytest.mark.parametrize(
    "patience, spec, detected",
    [
        (1, "....h....", True),
        (2, "....h.h.h", False),
        (2, "....hh...", True),
        (3, "....hh.hh", False),
        (3, "....hhh..", True),
    ],
)
def test_patience_counts_consecutive_frames(patience, spec, detected):
    m = started(settings(patience_frames={W: patience}))
    events = drive(m, spec)
    assert any(isinstance(e, WakeDetected) for e in events) is detected


def test_refractory_period_after_a_detection():
    m = started(settings(refractory_frames=30, no_speech_timeout_frames=5))
    events = drive(m, "h" + "." * 10 + "h" + "." * 20 + "h" + "." * 10)
    assert [e.frame_index for e in events if isinstance(e, WakeDetected)] == [0, 32]


def test_max_length_cuts_a_long_request():
    m = started(settings(max_length_frames=20))
    events = drive(m, "..wW" + "s" * 40)
    ready = [e for e in events if isinstance(e, UtteranceReady)]
    assert ready[0].end_reason is EndReason.MAX_LENGTH
    assert len(ready[0].audio) == 20 * FRAME_SAMPLES
    assert m.state is State.LISTENING


@pytest.mark.parametrize("reason", [EndReason.EOF, EndReason.SHUTDOWN])
def test_finish_keeps_a_request_in_progress(reason):
    m = started()
    drive(m, "..wW" + "s" * 8)
    events = m.finish(reason)
    assert isinstance(events[0], UtteranceReady) and events[0].end_reason is reason
    assert events[0].end_frame == 12
    assert events[-1] == StateChanged(12, State.RECORDING, State.OFF)


def test_finish_before_speech_started_keeps_nothing():
    m = started()
    drive(m, "..wW" + "s")
    events = m.finish(EndReason.SHUTDOWN)
    assert [type(e) for e in events] == [UtteranceDiscarded, StateChanged]
    assert events[1].state is State.OFF


def test_failure_while_recording_discards_and_shows_error_then_listening():
    m = started()
    drive(m, "..wW")
    events = m.fail("indicator failed")
    assert [type(e) for e in events] == [UtteranceDiscarded, StateChanged]
    assert events[0].reason == "indicator failed"
    assert events[1].state is State.ERROR
    events = drive(m, "s" * 20 + "." * 20, start=4)
    assert events[0] == StateChanged(4, State.ERROR, State.LISTENING)
    assert not any(isinstance(e, UtteranceReady) for e in events)


def test_muted_frames_are_not_analysed():
    m = started()
    assert m.set_muted(True) == [StateChanged(0, State.LISTENING, State.MUTED)]
    assert drive(m, "..wW" + "s" * 20 + "." * 20) == []
    assert m.set_muted(False)[0].state is State.LISTENING


def test_highest_scoring_model_wins_and_thresholds_are_per_model():
    s = settings(thresholds={"alexa": 0.95, W: 0.5}, patience_frames={"alexa": 1, W: 1})
    m = started(s)
    events = drive(
        m, "..h" + "s" * 5 + "." * 12, scores_for=lambda i, sc: {"alexa": sc, W: sc * 0.8}
    )
    wakes = [e for e in events if isinstance(e, WakeDetected)]
    assert [(w.wake_word, w.score) for w in wakes] == [(W, pytest.approx(0.72))]


def test_wake_with_no_speech_after_it_is_dropped_as_no_speech():
    m = started()
    events = drive(m, "." * 10 + "wh" + "." * 60)  # detected on a frame without speech
    assert [e.reason for e in events if isinstance(e, UtteranceDiscarded)] == ["no_speech"]


def test_the_rest_of_the_wake_phrase_does_not_start_the_command():
    """The detection comes while the phrase is still being said; its rest (4 frames of speech,
    longer than min_speech) is not the command, and the pause after it does not end the
    request: the command after the pause is kept whole."""
    m = started()
    spec = "." * 10 + "wW" + "s" * 4 + "." * 15 + "s" * 12 + "." * 12
    events = drive(m, spec)
    ready = [e for e in events if isinstance(e, UtteranceReady)]
    assert len(ready) == 1
    command = range(10 + 2 + 4 + 15, 10 + 2 + 4 + 15 + 12)
    assert set(command) <= set(saved_frames(ready[0]))
    assert [e.frame_index for e in events if isinstance(e, SpeechStarted)] == [command[0] + 2]


def test_a_command_said_straight_on_after_the_wake_word_is_kept():
    """Speech running on from the detection past wake_tail_frames is a command: it starts the
    request at once, with no pause needed."""
    m = started(settings(wake_tail_frames=5))
    events = drive(m, "." * 10 + "wW" + "s" * 20 + "." * 12)
    started_at = [e.frame_index for e in events if isinstance(e, SpeechStarted)]
    assert started_at == [11 + 5]
    ready = next(e for e in events if isinstance(e, UtteranceReady))
    assert saved_frames(ready) == list(range(10, 11 + 1 + 20 + 10))


def test_a_short_burst_in_the_pause_does_not_end_the_wait_for_the_command():
    """Two frames of a click or a breath after the tail: too short to start the command."""
    m = started()
    spec = "." * 10 + "wW" + "ss" + "." * 6 + "ss" + "." * 8 + "s" * 10 + "." * 12
    events = drive(m, spec)
    ready = [e for e in events if isinstance(e, UtteranceReady)]
    assert len(ready) == 1 and ready[0].end_reason is EndReason.SILENCE
    assert max(saved_frames(ready[0])) >= 10 + 2 + 2 + 6 + 2 + 8 + 10 - 1


def test_speech_while_the_model_still_hears_its_wake_word_is_the_phrase():
    """A slow wake word, detected early: 8 more frames of speech scoring above the threshold,
    a gap, 2 more of its end; then a pause and the command. None of the phrase starts the
    command, so the pause does not end the request."""
    m = started()
    spec = "." * 10 + "wW" + "W" * 8 + ".." + "ss" + "." * 14 + "s" * 15 + "." * 12
    events = drive(m, spec)
    command = 10 + 2 + 8 + 2 + 2 + 14
    assert [e.frame_index for e in events if isinstance(e, SpeechStarted)] == [command + 2]
    [ready] = [e for e in events if isinstance(e, UtteranceReady)]
    assert set(range(command, command + 15)) <= set(saved_frames(ready))


def test_the_model_hearing_its_wake_word_without_speech_after_it_is_no_command():
    m = started()
    events = drive(m, "." * 10 + "wW" + "W" * 6 + "." * 60)
    assert [e.reason for e in events if isinstance(e, UtteranceDiscarded)] == ["no_command"]


@pytest.mark.parametrize(
    ("first_word", "pause", "kept_whole"),
    [
        (6, 15, True),  # a short first word, a 1.2-s pause: the rest is still to come
        (6, 25, False),  # a pause longer than pause_frames ends it after the first word
        (14, 15, False),  # 1 s of command heard: silence_frames ends it
    ],
)
def test_a_short_first_word_needs_the_longer_pause_to_end_it(first_word, pause, kept_whole):
    m = started(settings(silence_frames=10, pause_frames=20))
    spec = "." * 10 + "wW" + "..." + "s" * first_word + "." * pause + "s" * 15 + "." * 25
    events = drive(m, spec)
    ready = [e for e in events if isinstance(e, UtteranceReady)]
    rest = 10 + 2 + 3 + first_word + pause
    assert (set(range(rest, rest + 15)) <= set(saved_frames(ready[0]))) is kept_whole
    first_end = 10 + 2 + 3 + first_word
    if not kept_whole:  # ended by the silence after the first word
        assert ready[0].end_frame == first_end + (20 if first_word < 12 else 10)


def test_the_wake_word_said_again_before_the_command_restarts_the_wait():
    """ "Alexa ... Alexa, <command>": a second wake word after a pause, before any command, is
    the phrase again; the wait for the command (and its timeout) starts anew from it."""
    m = started(settings(no_speech_timeout_frames=20))
    spec = "." * 10 + "wW" + "." * 15 + "wW" + "." * 12 + "s" * 12 + "." * 12
    events = drive(m, spec)
    assert [type(e) for e in events if not isinstance(e, StateChanged)] == [
        WakeDetected,
        SpeechStarted,
        UtteranceReady,
    ]
    [ready] = [e for e in events if isinstance(e, UtteranceReady)]
    command = 10 + 2 + 15 + 2 + 12
    assert set(range(command, command + 12)) <= set(saved_frames(ready))
    assert ready.start_frame == 10  # the request still starts at the first wake phrase


def test_a_wake_word_again_after_a_long_command_does_not_restart_it():
    """Once a command of 1 s or more is heard, a score above the threshold inside it starts
    nothing new: the request ends on silence after it."""
    m = started()
    spec = "." * 10 + "wW" + ".." + "s" * 14 + "W" + "s" * 2 + "." * 12
    events = drive(m, spec)
    [ready] = [e for e in events if isinstance(e, UtteranceReady)]
    assert ready.end_frame == 10 + 2 + 2 + 14 + 1 + 2 + 10
    assert len([e for e in events if isinstance(e, SpeechStarted)]) == 1


@pytest.mark.parametrize(
    ("command", "starts"),
    [
        ("ss.ss.ss", True),  # a VAD flickering in noise: single-frame gaps bridge
        ("s.s.s", True),  # three frames of speech, each gap a single frame
        ("ss..ss..ss", False),  # two-frame gaps break the run
        ("s..s..s..s", False),
    ],
)
def test_a_single_frame_gap_does_not_break_the_start_of_the_command(command, starts):
    m = started(settings(no_speech_timeout_frames=30))
    events = drive(m, "." * 10 + "wW" + "..." + command + "." * 40)
    assert bool([e for e in events if isinstance(e, SpeechStarted)]) is starts
