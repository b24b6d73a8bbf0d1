"""The recorder's pure core: a frame-counted state machine from scores and VAD to events.

No I/O, no clock, no threads: time is the frame index. The daemon feeds it one frame at a time
and hands the events it returns, in order, to storage, the indicator and the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np

from recorder.audio import Frame
from recorder.playback import PlaybackGuard


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
    pause_frames: int = 20
    """While the command has had less than `SHORT_COMMAND_FRAMES` of speech, the silence that
    ends it must last this long (a word after the wake phrase, then a pause: the talker may be
    waiting for the light, or about to say the rest)."""
    no_speech_timeout_frames: int = 50
    max_length_frames: int = 188
    wake_tail_frames: int = 5
    """Speech running on from the detecting frame is the wake phrase's rest, not a command,
    unless it lasts this long (a command said straight after the wake word, without a pause)."""


@dataclass(frozen=True)
class WakeDetected:
    """`start_frame`: the first frame a request keeps, inside the wake phrase (where the score
    began to rise, at most the look-back before `frame_index`)."""

    frame_index: int
    wake_word: str
    score: float
    start_frame: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class WakeIgnored:
    """A detection that the device's own playback explains (`recorder.playback`): nothing is
    recorded. `playback_score`: the reference's peak score for the same model."""

    frame_index: int
    wake_word: str
    score: float
    playback_score: float
    reason: str = "playback"


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


Event = (
    WakeDetected | WakeIgnored | StateChanged | SpeechStarted | UtteranceReady | UtteranceDiscarded
)


@dataclass
class _Utterance:
    wake: WakeDetected
    frames: list[Frame]
    speaking: bool = False
    phrase_end: int = 0  # the last frame whose score still reached the threshold
    ran_on: bool = True  # the last frame of the phrase (or of speech running on from it) was speech
    in_wake: bool = True  # the wake phrase, or speech running on from its end
    heard_tail: bool = False  # speech ran on from the detecting frame
    speech_run: int = 0
    silence_run: int = 0
    command_frames: int = 0  # frames of speech since the command began
    waiting_from: int = 0  # the frame since which the command is awaited
    last_speech: bool = False

    def restart(self, index: int, is_speech: bool) -> None:
        """The wake word heard again before much of a command: wait for the command anew."""
        self.in_wake, self.ran_on, self.phrase_end, self.waiting_from = (
            True,
            is_speech,
            index,
            index,
        )
        self.speaking, self.speech_run, self.silence_run, self.command_frames = False, 0, 0, 0

    @property
    def no_speech_reason(self) -> str:
        """Why a request without a command is dropped: only the wake phrase's rest was heard
        after the detection ("no_command"), or nothing at all ("no_speech")."""
        return "no_command" if self.heard_tail else "no_speech"


SHORT_COMMAND_FRAMES = 12
"""A command with less speech than this (about 1 s) so far ends only after `pause_frames`."""
ONSET_FRACTION = 0.1
"""A wake word's score run starts where it first reaches this fraction of the threshold."""


class Machine:
    """listening -> (wake) -> recording -> (silence / max length) -> listening.

    The saved audio starts where the detecting model's score began to rise (its last run at or
    above a tenth of the threshold), which lies inside the wake phrase, but at most
    `lookback_frames` before the detecting frame's end. Detection lags the end of the wake word,
    so a command spoken straight after it is kept from its first syllable; audio from before the
    wake phrase is never kept.

    The state shown is derived from plain flags: off until start() and after finish(),
    recording while a request is open, error while the device is lost (or for the one step
    after a failure), muted while muted, listening otherwise.
    """

    def __init__(self, settings: MachineSettings, muted: bool = False):
        self.state = State.OFF
        self.muted = muted
        self._running = False
        self._device_lost = False
        self._failed = False
        self._last_wake_frame: int | None = None
        self._utterance: _Utterance | None = None
        self._next_index = 0
        self.reconfigure(settings)

    def reconfigure(self, settings: MachineSettings) -> None:
        """New thresholds and durations (between requests); forgets the look-back audio."""
        assert self._utterance is None, "reconfigure between requests only"
        self.settings = settings
        self._lookback: deque[Frame] = deque(maxlen=max(settings.lookback_frames, 0) or None)
        self._above: dict[str, int] = dict.fromkeys(settings.thresholds, 0)
        self._onset: dict[str, int | None] = dict.fromkeys(settings.thresholds)
        self._playback: PlaybackGuard | None = None
        self._held: set[str] = set()  # models whose run of scores the playback explained

    @property
    def recording(self) -> bool:
        return self._utterance is not None

    # --- transitions the daemon asks for -------------------------------------------------
    def start(self) -> list[Event]:
        """The source is open and the models are loaded."""
        self._running = True
        return self._sync()

    def set_muted(self, muted: bool) -> list[Event]:
        """While muted, frames are not analysed and a request in progress is dropped."""
        self.muted = muted
        events = self._drop_utterance("muted") if muted else []
        self._forget_audio()
        return events + self._sync()

    def fail(self, reason: str) -> list[Event]:
        """Something downstream failed (indicator, storage): drop any request, show error."""
        events = self._drop_utterance(reason)
        self._forget_audio()
        self._failed = True
        return events + self._sync()

    def device_lost(self) -> list[Event]:
        """The audio source failed: keep the request so far if speech had started."""
        events = self._close_utterance(EndReason.DEVICE_LOST)
        self._forget_audio()
        self._device_lost = True
        return events + self._sync()

    def device_restored(self) -> list[Event]:
        self._device_lost = False
        return self._sync()

    def finish(self, reason: EndReason) -> list[Event]:
        """The stream ends: a request in progress is kept if speech has started."""
        events = self._close_utterance(reason)
        self._running = False
        return events + self._sync()

    # --- the per-frame step --------------------------------------------------------------
    def step(
        self,
        frame: Frame,
        scores: Mapping[str, float],
        is_speech: bool,
        playback: Mapping[str, float] | None = None,
    ) -> list[Event]:
        """`playback`: the scores of the speaker's reference on the same frame, when there is
        one; a detection they explain records nothing."""
        s = self.settings
        self._next_index = frame.index + 1
        self._failed = False
        events = self._sync(frame.index)
        if self.state in (State.MUTED, State.OFF, State.ERROR):
            return events
        self._count(frame, scores)
        if playback is not None:
            self._playback = self._playback or PlaybackGuard(s.thresholds)
            self._playback.push(frame.index, playback)
        u = self._utterance
        if u is None:
            wake = self._detect(frame, scores)
            ignored = self._played(wake) if wake is not None else None
            if wake is None or ignored is not None:
                self._lookback.append(frame)
                return events if ignored is None else [*events, ignored]
            return [*events, *self._open(frame, wake, is_speech)]

        u.frames.append(frame)
        is_speech = self._command_speech(u, frame, scores, is_speech)
        if not u.speaking:
            # a single frame's gap (a flicker of the VAD in noise) does not break the run
            u.speech_run = u.speech_run + 1 if is_speech else u.speech_run * u.last_speech
            if u.speech_run >= s.min_speech_frames:
                u.speaking = True
                u.command_frames = u.speech_run
                events.append(SpeechStarted(frame.index))
            elif frame.index - u.waiting_from >= s.no_speech_timeout_frames:
                dropped = self._drop_utterance(u.no_speech_reason)
                return events + dropped + self._sync(frame.index)
        else:
            u.silence_run = 0 if is_speech else u.silence_run + 1
            u.command_frames += is_speech
            short = u.command_frames < SHORT_COMMAND_FRAMES
            if u.silence_run >= (
                max(s.pause_frames, s.silence_frames) if short else s.silence_frames
            ):
                return events + self._end(EndReason.SILENCE) + self._sync(frame.index)
        u.last_speech = is_speech
        if len(u.frames) >= s.max_length_frames:
            return events + self._close_utterance(EndReason.MAX_LENGTH) + self._sync(frame.index)
        return events

    # --- helpers -------------------------------------------------------------------------
    def _count(self, frame: Frame, scores: Mapping[str, float]) -> None:
        """Each model's run of frames at its threshold, and where its score run began."""
        for name, threshold in self.settings.thresholds.items():
            score = scores.get(name, 0.0)
            self._above[name] = self._above[name] + 1 if score >= threshold else 0
            if score < threshold:
                self._held.discard(name)
            if score < threshold * ONSET_FRACTION:
                self._onset[name] = None
            elif self._onset[name] is None:
                self._onset[name] = frame.index

    def _open(self, frame: Frame, wake: WakeDetected, is_speech: bool) -> list[Event]:
        """A request from inside the wake phrase: the look-back's frames from the score's rise."""
        s = self.settings
        self._last_wake_frame = frame.index
        onset = self._onset[wake.wake_word]
        # the look-back leaves room for the next frame within max_length_frames
        lookback = min(s.lookback_frames, max(0, s.max_length_frames - 2))
        first = max(frame.index + 1 - lookback, onset if onset is not None else 0)
        kept = [f for f in self._lookback if f.index >= first]
        wake = replace(wake, start_frame=kept[0].index if kept else frame.index)
        self._utterance = _Utterance(
            wake,
            [*kept, frame],
            phrase_end=frame.index,
            ran_on=is_speech,
            waiting_from=frame.index,
        )
        self._lookback.clear()
        return [wake, *self._sync(frame.index)]

    def _command_speech(
        self, u: _Utterance, frame: Frame, scores: Mapping[str, float], is_speech: bool
    ) -> bool:
        """Whether this frame is speech of the command: not while the wake phrase lasts (its
        model still scores it, or speech runs on from it), and the wait starts anew when the
        wake word is said again before much of a command."""
        s = self.settings
        name = u.wake.wake_word
        held = scores.get(name, 0.0) >= s.thresholds[name]
        said_again = self._above[name] >= s.patience_frames[name]
        if said_again and not u.in_wake and u.command_frames < SHORT_COMMAND_FRAMES:
            u.restart(frame.index, is_speech)
        if not u.in_wake:
            return is_speech
        if held:  # the model still hears its wake word
            u.phrase_end = frame.index
        u.in_wake = held or (
            is_speech and u.ran_on and frame.index - u.phrase_end < s.wake_tail_frames
        )
        u.ran_on = is_speech
        u.heard_tail = u.heard_tail or (u.in_wake and is_speech)
        if u.in_wake or not is_speech:
            return False
        u.speech_run = s.wake_tail_frames - 1  # spoken straight on: the run so far counts
        return True

    # --- helpers -------------------------------------------------------------------------
    def _detect(self, frame: Frame, scores: Mapping[str, float]) -> WakeDetected | None:
        s = self.settings
        if (
            self._last_wake_frame is not None
            and frame.index - self._last_wake_frame < s.refractory_frames
        ):
            return None
        ready = [
            n
            for n, count in self._above.items()
            if count >= s.patience_frames[n] and n not in self._held
        ]
        if not ready:
            return None
        best = max(ready, key=lambda n: scores.get(n, 0.0))
        return WakeDetected(frame.index, best, float(scores[best]))

    def _played(self, wake: WakeDetected) -> WakeIgnored | None:
        """The detection as ignored when the playback explains it; the model's run of scores
        at its threshold is then held until it ends (the rest of the played phrase)."""
        explained = (
            self._playback.explains(wake.wake_word, wake.frame_index) if self._playback else None
        )
        if explained is None:
            return None
        self._held.add(wake.wake_word)
        return WakeIgnored(wake.frame_index, wake.wake_word, wake.score, explained)

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

    def _close_utterance(self, reason: EndReason) -> list[Event]:
        """Keep the request if speech has started, otherwise drop it."""
        u = self._utterance
        if u is None:
            return []
        return self._end(reason) if u.speaking else self._drop_utterance(u.no_speech_reason)

    def _forget_audio(self) -> None:
        self._lookback.clear()
        self._held.clear()
        if self._playback is not None:
            self._playback.forget()
        self._above = dict.fromkeys(self._above, 0)
        self._onset = dict.fromkeys(self._onset)

    def _sync(self, frame_index: int | None = None) -> list[Event]:
        """Derive the state from the flags; report it if it changed."""
        if not self._running:
            state = State.OFF
        elif self._utterance is not None:
            state = State.RECORDING
        elif self._device_lost or self._failed:
            state = State.ERROR
        elif self.muted:
            state = State.MUTED
        else:
            state = State.LISTENING
        if state is self.state:
            return []
        previous, self.state = self.state, state
        index = self._next_index if frame_index is None else frame_index
        return [StateChanged(index, previous, state)]
