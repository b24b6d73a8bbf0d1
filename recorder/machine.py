"""The recorder's pure core: a frame-counted state machine from scores and VAD to events.

No I/O, no clock, no threads: time is the frame index. The daemon feeds it one frame at a time
and hands the events it returns, in order, to storage, the indicator and the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from recorder.audio import Frame


class State(StrEnum):
    """What the indicator shows."""

    OFF = "off"
    LISTENING = "listening"
    RECORDING = "recording"
    MUTED = "muted"
    ERROR = "error"


class EndReason(StrEnum):
    SILENCE = "silence"
    MAX_LENGTH = "max_length"
    EOF = "eof"
    SHUTDOWN = "shutdown"
    DEVICE_LOST = "device_lost"


@dataclass(frozen=True)
class MachineSettings:
    """Every duration in frames (80 ms each); thresholds and patience per wake-word name."""

    thresholds: Mapping[str, float]
    patience_frames: Mapping[str, int]
    refractory_frames: int = 25
    lookback_frames: int = 12
    min_speech_frames: int = 3
    silence_frames: int = 10
    no_speech_timeout_frames: int = 50
    max_length_frames: int = 188


@dataclass(frozen=True)
class WakeDetected:
    frame_index: int
    wake_word: str
    score: float


@dataclass(frozen=True)
class StateChanged:
    frame_index: int
    previous: State
    state: State


@dataclass(frozen=True)
class SpeechStarted:
    frame_index: int


@dataclass(frozen=True, eq=False)
class UtteranceReady:
    """A finished request. `start_frame`..`end_frame` (exclusive) index the source's frames."""

    wake: WakeDetected
    start_frame: int
    end_frame: int
    end_reason: EndReason
    audio: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class UtteranceDiscarded:
    frame_index: int
    wake: WakeDetected
    reason: str


Event = WakeDetected | StateChanged | SpeechStarted | UtteranceReady | UtteranceDiscarded


@dataclass
class _Utterance:
    wake: WakeDetected
    frames: list[Frame]
    speaking: bool = False
    speech_run: int = 0
    silence_run: int = 0


ONSET_FRACTION = 0.1
"""A wake word's score run starts where it first reaches this fraction of the threshold."""


class Machine:
    """listening -> (wake) -> recording -> (silence / max length) -> listening.

    The saved audio starts where the detecting model's score began to rise (its last run at or
    above a tenth of the threshold), which lies inside the wake phrase, but at most
    `lookback_frames` before the detecting frame's end. Detection lags the end of the wake word,
    so a command spoken straight after it is kept from its first syllable; audio from before the
    wake phrase is never kept.
    """

    def __init__(self, settings: MachineSettings):
        self.settings = settings
        self.state = State.OFF
        self._lookback: deque[Frame] = deque(maxlen=max(settings.lookback_frames, 0) or None)
        self._above: dict[str, int] = dict.fromkeys(settings.thresholds, 0)
        self._onset: dict[str, int | None] = dict.fromkeys(settings.thresholds)
        self._last_wake_frame: int | None = None
        self._utterance: _Utterance | None = None
        self._next_index = 0

    # --- transitions the daemon asks for -------------------------------------------------
    def start(self) -> list[Event]:
        """The source is open and the models are loaded."""
        return self._go(State.LISTENING, self._next_index)

    def set_muted(self, muted: bool) -> list[Event]:
        events: list[Event] = []
        if muted and self.state is not State.MUTED:
            events += self._drop_utterance("muted")
            self._lookback.clear()
            events += self._go(State.MUTED, self._next_index)
        elif not muted and self.state is State.MUTED:
            events += self._go(State.LISTENING, self._next_index)
        return events

    def fail(self, reason: str) -> list[Event]:
        """Something downstream failed (indicator, storage): drop any utterance, show error."""
        events = self._drop_utterance(reason)
        self._lookback.clear()
        return events + self._go(State.ERROR, self._next_index)

    def finish(self, reason: EndReason) -> list[Event]:
        """The stream ends: a request in progress is kept if speech has started."""
        events: list[Event] = []
        u = self._utterance
        if u is not None:
            events += self._end(reason) if u.speaking else self._drop_utterance("no_speech")
        return events + self._go(State.OFF, self._next_index)

    # --- the per-frame step --------------------------------------------------------------
    def step(self, frame: Frame, scores: Mapping[str, float], is_speech: bool) -> list[Event]:
        s = self.settings
        self._next_index = frame.index + 1
        events: list[Event] = []
        if self.state is State.ERROR:
            events += self._go(State.LISTENING, frame.index)
        if self.state in (State.MUTED, State.OFF):
            return events
        for name, threshold in s.thresholds.items():
            score = scores.get(name, 0.0)
            self._above[name] = self._above[name] + 1 if score >= threshold else 0
            if score < threshold * ONSET_FRACTION:
                self._onset[name] = None
            elif self._onset[name] is None:
                self._onset[name] = frame.index

        u = self._utterance
        if u is None:
            wake = self._detect(frame, scores)
            if wake is None:
                self._lookback.append(frame)
                return events
            self._last_wake_frame = frame.index
            onset = self._onset[wake.wake_word]
            first = max(frame.index + 1 - s.lookback_frames, onset if onset is not None else 0)
            kept = [f for f in self._lookback if f.index >= first]
            self._utterance = _Utterance(wake, [*kept, frame])
            self._lookback.clear()
            return [*events, wake, *self._go(State.RECORDING, frame.index)]

        u.frames.append(frame)
        if not u.speaking:
            u.speech_run = u.speech_run + 1 if is_speech else 0
            if u.speech_run >= s.min_speech_frames:
                u.speaking = True
                events.append(SpeechStarted(frame.index))
            elif frame.index - u.wake.frame_index >= s.no_speech_timeout_frames:
                return events + self._drop_utterance("no_speech") + self._go(
                    State.LISTENING, frame.index)
        else:
            u.silence_run = 0 if is_speech else u.silence_run + 1
            if u.silence_run >= s.silence_frames:
                return events + self._end(EndReason.SILENCE) + self._go(State.LISTENING,
                                                                         frame.index)
        if len(u.frames) >= s.max_length_frames:
            if u.speaking:
                return events + self._end(EndReason.MAX_LENGTH) + self._go(State.LISTENING,
                                                                            frame.index)
            return events + self._drop_utterance("no_speech") + self._go(State.LISTENING,
                                                                          frame.index)
        return events

    # --- helpers -------------------------------------------------------------------------
    def _detect(self, frame: Frame, scores: Mapping[str, float]) -> WakeDetected | None:
        s = self.settings
        if self._last_wake_frame is not None \
                and frame.index - self._last_wake_frame < s.refractory_frames:
            return None
        ready = [n for n, count in self._above.items() if count >= s.patience_frames[n]]
        if not ready:
            return None
        best = max(ready, key=lambda n: scores.get(n, 0.0))
        return WakeDetected(frame.index, best, float(scores[best]))

    def _end(self, reason: EndReason) -> list[Event]:
        u = self._utterance
        assert u is not None
        self._utterance = None
        audio = np.concatenate([f.samples for f in u.frames]).astype(np.int16, copy=False)
        return [UtteranceReady(u.wake, u.frames[0].index, u.frames[-1].index + 1, reason, audio)]

    def _drop_utterance(self, reason: str) -> list[Event]:
        u = self._utterance
        if u is None:
            return []
        self._utterance = None
        return [UtteranceDiscarded(self._next_index - 1, u.wake, reason)]

    def _go(self, state: State, frame_index: int) -> list[Event]:
        if state is self.state:
            return []
        previous, self.state = self.state, state
        return [StateChanged(frame_index, previous, state)]
