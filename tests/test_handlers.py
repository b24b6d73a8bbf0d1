"""The daemon's handlers: the order they see events in, and what a failure stops."""

from __future__ import annotations

import numpy as np

from recorder.audio import Frame
from recorder.handlers import Handles, JournalEvents, ObserveFrames, handle
from recorder.journal import Journal
from recorder.machine import (
    EndReason,
    Event,
    State,
    StateChanged,
    UtteranceReady,
    WakeDetected,
)
from recorder.pipeline import Analysis

WAKE = WakeDetected(frame_index=9, wake_word="hey_jarvis", score=0.9)
READY = UtteranceReady(WAKE, 5, 20, EndReason.SILENCE, np.zeros(1280, dtype=np.int16))


class Recording(Handles):
    """Notes each event it sees; fails the events of `fails`."""

    def __init__(self, name: str, seen: list[tuple[str, str]], fails: type | None = None):
        self.name, self.seen, self.fails = name, seen, fails

    def on_event(self, event: Event) -> str | None:
        self.seen.append((self.name, type(event).__name__))
        return f"{self.name} failed" if self.fails and isinstance(event, self.fails) else None


def test_each_event_goes_to_every_handler_in_order():
    seen: list[tuple[str, str]] = []
    handlers = [Recording("a", seen), Recording("b", seen)]
    assert handle(handlers, [WAKE, READY]) is None
    assert seen == [
        ("a", "WakeDetected"),
        ("b", "WakeDetected"),
        ("a", "UtteranceReady"),
        ("b", "UtteranceReady"),
    ]


def test_a_failure_stops_that_event_only_and_the_last_failure_is_returned():
    seen: list[tuple[str, str]] = []
    state = StateChanged(frame_index=9, state=State.RECORDING, previous=State.LISTENING)
    handlers = [
        Recording("show", seen, fails=StateChanged),
        Recording("save", seen, fails=UtteranceReady),
        Recording("calibrate", seen),
    ]
    assert handle(handlers, [state, WAKE, READY]) == "save failed"
    assert seen == [
        ("show", "StateChanged"),  # its failure: the others never see this event
        ("show", "WakeDetected"),
        ("save", "WakeDetected"),
        ("calibrate", "WakeDetected"),
        ("show", "UtteranceReady"),
        ("save", "UtteranceReady"),  # a failed save: the calibration never counts it saved
    ]


def test_frame_observers_see_every_frame_with_its_scores_and_state():
    seen = []
    observe = ObserveFrames([lambda *args: seen.append(args)])
    frame = Frame(3, np.zeros(1280, dtype=np.int16))
    observe.on_frame(frame, Analysis({"hey_jarvis": 0.25}, True, []), State.LISTENING)
    assert seen == [(frame, {"hey_jarvis": 0.25}, True, State.LISTENING)]
    assert observe.on_event(WAKE) is None


def test_the_journal_handler_publishes_wakes_and_states_but_not_saves():
    journal, got = Journal(), []
    journal.subscribe(got.append)
    state = StateChanged(frame_index=9, state=State.RECORDING, previous=State.LISTENING)
    handle([JournalEvents(journal)], [WAKE, state, READY])
    assert [r["event"] for r in got] == ["wake", "state"]
    assert (got[0]["model"], got[0]["score"], got[0]["offset_s"]) == ("hey_jarvis", 0.9, 0.8)
    assert (got[1]["state"], got[1]["previous"]) == ("recording", "listening")


def test_no_calibration_handler_unless_the_configuration_calibrates(tmp_path):
    from recorder.calibrating import Calibrate
    from recorder.config import Config

    class NoEngine:  # never asked: a configuration that does not calibrate needs none
        def __getattr__(self, name):
            raise AssertionError(name)

    assert Calibrate.for_config(Config(), NoEngine(), {}, tmp_path) is None
    assert not any(tmp_path.iterdir())
