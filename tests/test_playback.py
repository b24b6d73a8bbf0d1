"""No self-wakes: the playback guard's rule and the machine that asks it, frame by frame, with
scripted scores for the microphone and for the playback's reference (no audio)."""

from __future__ import annotations

import numpy as np

from recorder.audio import FRAME_SAMPLES, Frame
from recorder.machine import (
    Machine,
    MachineSettings,
    State,
    StateChanged,
    UtteranceReady,
    WakeDetected,
    WakeIgnored,
)
from recorder.playback import PLAYBACK_FRACTION, WINDOW_FRAMES, PlaybackGuard

W = "alexa"


def test_the_guard_explains_a_detection_within_its_window_after_the_playback_said_it():
    guard = PlaybackGuard({W: 0.5})
    for i, score in enumerate([0.0, 0.3, 0.9, 0.6, 0.1]):
        guard.push(i, {W: score})
    assert guard.explains(W, 3) == 0.9  # the run's peak
    assert guard.explains(W, 3 + WINDOW_FRAMES) == 0.9  # the window counts from the run's end
    assert guard.explains(W, 4 + WINDOW_FRAMES) is None  # too long after
    assert guard.explains(W, 0) is None  # the window looks back only
    assert guard.explains("hey_jarvis", 3) is None  # another model
    guard.forget()
    assert guard.explains(W, 3) is None


def test_the_guards_bar_is_a_share_of_the_threshold():
    guard = PlaybackGuard({W: 0.6})
    guard.push(0, {W: 0.6 * PLAYBACK_FRACTION - 0.01})
    assert guard.explains(W, 0) is None
    guard.push(1, {W: 0.6 * PLAYBACK_FRACTION})
    assert guard.explains(W, 1) == 0.6 * PLAYBACK_FRACTION


def settings() -> MachineSettings:
    return MachineSettings(thresholds={W: 0.5}, patience_frames={W: 1}, silence_frames=5)


def frame(i: int) -> Frame:
    return Frame(i, np.full(FRAME_SAMPLES, i, dtype=np.int16))


def drive(m: Machine, mic: str, played: str | None, start: int = 0) -> list:
    """One char per frame: '.' quiet, 's' speech, 'W' a wake score of 0.9 with speech; the
    playback's reference: '.' 0.0, 'W' 0.95."""
    events = []
    for k, c in enumerate(mic):
        i = start + k
        score, speech = {".": (0.0, False), "s": (0.0, True), "W": (0.9, True)}[c]
        ref = None if played is None else {W: 0.95 if played[k] == "W" else 0.0}
        events += m.step(frame(i), {W: score}, speech, ref)
    return events


def started() -> Machine:
    m = Machine(settings())
    m.start()
    return m


def test_a_wake_word_the_playback_said_just_before_records_nothing_and_says_why():
    m = started()
    # the device plays the wake word on frames 10-12; the echo reaches the microphone's model
    # on frames 12-14 (the canceller's residue, a little later)
    mic = "." * 12 + "WWW" + "s" * 10 + "." * 20
    played = "." * 10 + "WWW" + "." * 32
    events = drive(m, mic, played)
    assert events == [WakeIgnored(12, W, 0.9, 0.95)]  # once for the run, not once a frame
    assert m.state is State.LISTENING and not m.recording


def test_the_same_scores_without_the_playback_open_a_request():
    m = started()
    mic = "." * 12 + "WWW" + "s" * 10 + "." * 20
    events = drive(m, mic, None)
    assert events[0] == WakeDetected(12, W, 0.9)
    assert StateChanged(12, State.LISTENING, State.RECORDING) in events
    assert any(isinstance(e, UtteranceReady) for e in events)


def test_a_talker_after_the_window_is_heard_whatever_the_playback_plays_on():
    m = started()
    quiet = WINDOW_FRAMES + 1
    mic = "." * 12 + "WWW" + "." * quiet + "W" + "s" * 10 + "." * 20
    played = "." * 10 + "WWW" + "." * (len(mic) - 13)
    events = drive(m, mic, played)
    assert isinstance(events[0], WakeIgnored)
    detected = [e for e in events if isinstance(e, WakeDetected)]
    assert detected == [WakeDetected(15 + quiet, W, 0.9)]
    assert any(isinstance(e, UtteranceReady) for e in events)


def test_each_run_of_the_echo_within_the_window_is_ignored_once():
    """An ignored detection holds only that model's run of scores: the echo's next run is
    judged anew (and the playback explains it too)."""
    m = started()
    mic = "." * 12 + "WW" + "." * 2 + "W" + "s" * 10 + "." * 20
    played = "." * 10 + "WW" + "." * (len(mic) - 12)
    events = drive(m, mic, played)
    assert [e.frame_index for e in events if isinstance(e, WakeIgnored)] == [12, 16]
    assert not any(isinstance(e, WakeDetected) for e in events)


def test_muting_forgets_what_the_playback_said():
    m = started()
    drive(m, "." * 5, "." * 2 + "WWW")
    m.set_muted(True)
    m.set_muted(False)
    events = drive(m, "W" + "s" * 5 + "." * 10, "." * 16, start=5)
    assert isinstance(events[0], WakeDetected)
