"""Is the talker still speaking? webrtcvad's decision, judged against the room and the talker.

webrtcvad alone answers "is there speech-like sound here", so a TV, a radio or music keeps it
saying yes, and a breath or a microphone's hiss close to the talker can say yes too. At a wake
word the recorder knows more: the frames before it (levels only, never audio) tell how loud the
room is, and the wake phrase tells how loud the talker is. While a request is open:

- Nothing counts while the mean level of the last `window_frames` frames is not above the room's
  mean level before the wake word by a margin: `margin_db` at most, half the spread of the
  room's levels (a fan's steady noise needs little), and never more than half the talker's lead
  over the room. The talker adds to the room; when the talker stops, the level falls back to
  the room's, whatever the room is playing, and the request ends. The level is the one the
  room holds steadier before the wake word: the speech band's (after pre-emphasis) where a
  steady rumble fills the low frequencies and swings the whole level by several dB from frame
  to frame (a fan, traffic), the whole level where the room changes (talk, music).
- A frame the lenient webrtcvad (mode 1) calls speech counts when it reaches the talker's floor:
  within `talker_range_db` of the wake phrase's loudest frame, or `ROOM_CLEAR_DB` above the
  room's mean (a command said more softly than the wake word). A breath, a click's tail or a
  hiss near the room's level starts nothing.
- Once the talker has spoken (`TALKING_FRAMES` such frames in a row, after the wake phrase's
  own rest), a quieter syllable or a word's fading end that webrtcvad's strict mode calls
  speech counts too, until the level falls back to the room's (the talker paused): from
  there only the talker's level starts anything again, so the TV's talk after a pause is not
  taken for the talker's.

Where the talker is barely louder than the room (a TV as loud as the person), the margin shrinks
with the lead, and each of the talker's frames holds the next `HOLD_FRAMES` (a syllable the room
drowns), so a request is kept whole, if long, rather than cut short.

With a playback reference (`[audio] reference_channel`), `residual` also judges each frame
against what the echo canceller leaves of the playback (`recorder.residual`): a frame of that
residue alone is not the talker's. Without one, nothing of it runs. Pure and frame-counted like
the machine: one call per 80 ms frame, no clock, no I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from recorder.audio import FRAME_SAMPLES
from recorder.vad import SpeechDetector, level_db

ROOM_FRAMES = 62
"""Frames of levels kept for the room (5 s): levels only, never audio."""
MIN_ROOM_FRAMES = 6
"""With fewer frames of room before the wake phrase, the room is not judged."""
PHRASE_FRAMES = 12
"""The wake phrase's loudest frame is looked for in at least this many last frames (1 s)."""
JUDGED_AGGRESSIVENESS = 1
"""webrtcvad's mode inside a judged request: lenient, since the room and the talker's level
decide what of its yes is the talker (mode 3 drops quiet syllables in noise and cuts commands)."""
WINDOW_FRAMES = 6
"""The talker is heard while the mean level of this many last frames (0.48 s) stands out."""
SPREAD_FACTOR = 0.5
"""The room margin is at most this times the spread (standard deviation, dB) of its levels."""
NO_ROOM = -200.0
TALKING_FRAMES = 3
"""Frames in a row at the talker's level after which the talker counts as speaking."""
PHRASE_REST_FRAMES = 5
"""Loud frames straight after the detection that may still be the wake phrase (as the machine's
wake_tail_frames)."""
LOW_LEAD_DB = 3.0
"""A talker whose wake phrase stood less than this above the room is barely heard over it..."""
HOLD_FRAMES = 6
"""...so, once that talker has spoken, this many frames after each of the talker's frames count
too: the softer syllables the room drowns do not end the request."""
ROOM_CLEAR_DB = 12.0
"""A frame this far above the room's mean level is loud enough to be the talker's."""


class Residue(Protocol):
    """With a playback reference, what the echo canceller leaves (`recorder.residual`)."""

    def clear(self, samples: np.ndarray, reference: np.ndarray) -> bool: ...

    def wake(self, phrase_frames: int) -> None: ...

    def release(self) -> None: ...


def rms_db(samples: np.ndarray) -> float:
    """A frame's RMS level in dBFS, all frequencies (digital silence: -120)."""
    x = np.asarray(samples[:FRAME_SAMPLES], dtype=np.float64)
    power = float(np.dot(x, x)) / (max(len(x), 1) * 32768.0**2)
    return 10.0 * float(np.log10(power)) if power > 1e-12 else -120.0


def _room_bar(room: list[float], phrase: list[float], margin_db: float) -> tuple[float, float]:
    """The level the mean of the last frames must reach for the talker to be heard, and the
    talker's lead over the room."""
    room_mean = sum(room) / len(room)
    voiced = sorted(phrase)[len(phrase) // 2 :]  # the phrase's louder half
    lead = sum(voiced) / len(voiced) - room_mean
    # a steady room needs a small margin, a changing one (talk, music) a larger one; never
    # more than half the talker's lead, so a talker as loud as the room is still heard
    margin = min(margin_db, SPREAD_FACTOR * float(np.std(room)), max(lead, 0.0) / 2)
    return room_mean + margin, lead


class Endpointer:
    """The per-frame speech decision a request ends on.

    `is_speech(samples)` on every frame; `wake(phrase_frames)` when a wake word is detected,
    with the frames the wake phrase took (the detecting frame included); `release()` once no
    request is open. Outside a judged request, and with `talker_range_db=None`, the decision is
    `vad`'s alone; inside one, `judged_vad` (a lenient webrtcvad, whose yes the room and the
    talker then judge) hears the frames.
    """

    def __init__(
        self,
        vad: SpeechDetector,
        judged_vad: SpeechDetector,
        talker_range_db: float | None = 12.0,
        margin_db: float = 3.0,
        window_frames: int = WINDOW_FRAMES,
        residual: Residue | None = None,
    ):
        self._vad = vad
        self.residual = residual
        """With a playback reference: what the echo canceller leaves, which is not the talker."""
        self._judged_vad = judged_vad
        self.talker_range_db = talker_range_db
        self.margin_db = margin_db
        self.window_frames = max(1, window_frames)
        self._levels: deque[float] = deque(maxlen=ROOM_FRAMES)
        self._bands: deque[float] = deque(maxlen=ROOM_FRAMES)
        self.floor_db: float | None = None
        """While a request is open: the level a frame of the talker's speech reaches."""
        self.room_db = NO_ROOM
        """While a request is open: the level the last frames' mean must reach."""
        self._loud_run = 0
        self._talking = False
        self._past_phrase = False
        self.in_band = False
        """While a request is open: the room is judged on the speech band's level."""
        self._spoke = False  # the talker has spoken in this request
        self._hold = 0
        self._hold_frames = 0

    def is_speech(self, samples: np.ndarray, reference: np.ndarray | None = None) -> bool:
        """`reference`: what the speaker played over the frame (the echo cancelled from
        `samples`), for `residual`'s judgement."""
        heard = self._heard(samples)
        if self.residual is not None and reference is not None:
            heard = self.residual.clear(samples, reference) and heard
        if self.floor_db is None:
            return heard
        self._spoke = self._spoke or self._talking
        if heard:
            self._hold = self._hold_frames if self._spoke else 0
            return True
        if self._hold > 0:  # a syllable the room drowned, close after the talker's speech
            self._hold -= 1
            return True
        return False

    def _heard(self, samples: np.ndarray) -> bool:
        level = rms_db(samples)
        self._levels.append(level)
        self._bands.append(level_db(samples))
        if self.floor_db is None:
            return self._vad.is_speech(samples)
        strict = self._vad.is_speech(samples)
        lenient = self._judged_vad.is_speech(samples)
        recent = list(self._bands if self.in_band else self._levels)[-self.window_frames :]
        if sum(recent) / len(recent) < self.room_db:
            self._loud_run = 0
            self._talking = False  # the talker paused: speak up at the talker's level again
            return False
        if level >= self.floor_db and lenient:
            self._loud_run += 1
            # the wake phrase's own rest, right after the detection, is not the talker speaking
            needed = TALKING_FRAMES if self._past_phrase else TALKING_FRAMES + PHRASE_REST_FRAMES
            self._talking = self._talking or self._loud_run >= needed
            return True
        self._loud_run = 0
        self._past_phrase = True
        # once the talker is heard, a quieter syllable or a word's fading end that webrtcvad's
        # strict mode calls speech still counts; before, only the floor starts anything
        return self._talking and strict

    def wake(self, phrase_frames: int) -> None:
        """Measure the room before the wake phrase, and the talker in the phrase."""
        if self.residual is not None:
            self.residual.wake(phrase_frames)
        self.floor_db, self.room_db, self.in_band = None, NO_ROOM, False
        self._loud_run, self._talking, self._past_phrase = 0, False, False
        self._spoke, self._hold, self._hold_frames = False, 0, 0
        levels = list(self._levels)
        n = max(1, min(max(phrase_frames, PHRASE_FRAMES), len(levels)))
        room, phrase = levels[:-n], levels[-n:]
        if self.talker_range_db is None or len(room) < MIN_ROOM_FRAMES:
            return
        room_mean = sum(room) / len(room)
        # the room is judged on the level it holds steadier: the speech band's where a steady
        # rumble fills the low frequencies (a fan, pink noise: within a fraction of a dB),
        # the whole level where it changes (talk, music)
        bands = list(self._bands)
        band_room, band_phrase = bands[:-n], bands[-n:]
        self.in_band = float(np.std(band_room)) < float(np.std(room))
        if self.in_band:
            self.room_db, lead = _room_bar(band_room, band_phrase, self.margin_db)
        else:
            self.room_db, lead = _room_bar(room, phrase, self.margin_db)
        self._hold_frames = HOLD_FRAMES if lead < LOW_LEAD_DB else 0
        # within the talker's range, or well clear of the room: a command said more softly
        # than the wake word still counts, a breath near the room's own level does not
        self.floor_db = min(max(phrase) - self.talker_range_db, room_mean + ROOM_CLEAR_DB)

    def release(self) -> None:
        """No request is open: the room is measured afresh from here on (a request's own
        speech is not the room)."""
        if self.residual is not None:
            self.residual.release()
        if self.floor_db is not None or self.room_db != NO_ROOM:
            self._levels.clear()
            self._bands.clear()
            self.floor_db, self.room_db = None, NO_ROOM
