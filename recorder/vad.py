"""Voice activity per 80 ms frame, from webrtcvad's 20 ms decisions."""

from __future__ import annotations

import math
from typing import Protocol

import _webrtcvad  # webrtcvad-wheels' extension module, the `webrtcvad` module's whole engine
import numpy as np

from recorder.audio import FRAME_SAMPLES, SAMPLE_RATE

SUBFRAME_SAMPLES = 320  # 20 ms, one of webrtcvad's accepted sizes
SUBFRAMES = FRAME_SAMPLES // SUBFRAME_SAMPLES


class SpeechDetector(Protocol):
    def is_speech(self, samples: np.ndarray) -> bool: ...


def gate_vad() -> LevelGate:
    """The wake-word engine's speech gate: any 20 ms of speech by webrtcvad's strict mode, or a
    frame standing out of the room's noise floor, opens it.

    Mode 3 rejects a quiet room's noise bed (the lenient modes take a third of it for speech),
    and one speech sub-frame anywhere in a wake phrase is enough, since the gate back-fills the
    whole classifier window when it opens. The level rule opens it where mode 3 hears nothing:
    a quiet talker, or a voice in steady noise.
    """
    return LevelGate(WebRtcVad(aggressiveness=3, min_speech_subframes=1))


SILENT_DB = -120.0
_SILENT_POWER = 10 ** (SILENT_DB / 10)
FLOOR_MIN_DB = -100.0
"""Below this a frame is digital silence, not a room: the gate's floor never follows it."""


def level_db(samples: np.ndarray) -> float:
    """A frame's level in dBFS after a first-difference pre-emphasis (x[n] - 0.97 x[n-1]),
    which leaves out rumble and mains hum: the speech band's level (digital silence: -120)."""
    x = np.asarray(samples[:FRAME_SAMPLES], dtype=np.float64)
    d = x[1:] - 0.97 * x[:-1]
    power = float(np.dot(d, d)) / (max(len(d), 1) * 32768.0**2)
    return 10.0 * math.log10(power) if power > _SILENT_POWER else SILENT_DB


class WebRtcVad:
    """A frame is speech when at least `min_speech_subframes` of its four 20 ms parts are."""

    def __init__(self, aggressiveness: int = 2, min_speech_subframes: int = 2):
        # The extension is used directly: the `webrtcvad` wrapper module looks up its own version
        # with importlib.metadata when imported, a tenth of the daemon's start-up time.
        self._vad = _webrtcvad.create()
        _webrtcvad.init(self._vad)
        _webrtcvad.set_mode(self._vad, aggressiveness)
        self._min = min_speech_subframes

    def is_speech(self, samples: np.ndarray) -> bool:
        if len(samples) >= FRAME_SAMPLES:
            frame = samples[:FRAME_SAMPLES].astype("<i2")  # as assigning would: truncated
        else:
            frame = np.zeros(FRAME_SAMPLES, dtype="<i2")
            frame[: len(samples)] = samples
        raw = frame.data.cast("B")
        vad, step = self._vad, SUBFRAME_SAMPLES * 2
        votes = 0
        for i in range(0, len(raw), step):
            votes += _webrtcvad.process(vad, SAMPLE_RATE, raw[i : i + step], SUBFRAME_SAMPLES)
        return votes >= self._min


class LevelGate:
    """The speech gate for real rooms: webrtcvad's strict decision, or a frame that stands out
    of the room's noise floor.

    webrtcvad's strict mode misses quiet talkers (a far microphone, a low gain) and speech in
    steady noise, so the wake-word models would never run on a phrase they would detect. The
    level here is taken after a first-difference pre-emphasis, which leaves out the rumble and
    mains hum whose slow swings move a plain level by several dB: over the rest, a steady noise
    varies by a fraction of a dB from frame to frame, so `open_db` above the floor is a new
    sound, however quiet the talker or loud the fan. The floor follows a quieter frame at once
    and a louder room slowly (`rise_db_per_frame`).
    """

    def __init__(self, vad: SpeechDetector, open_db: float = 3.0, rise_db_per_frame: float = 0.05):
        self._vad = vad
        self.open_db = open_db
        self.rise_db_per_frame = rise_db_per_frame
        self.floor_db: float | None = None

    def is_speech(self, samples: np.ndarray) -> bool:
        level = level_db(samples)
        if level > FLOOR_MIN_DB:  # digital silence (padding, a muted input) is no room's floor
            floor = self.floor_db
            self.floor_db = level if floor is None else min(level, floor + self.rise_db_per_frame)
        floor = FLOOR_MIN_DB if self.floor_db is None else self.floor_db
        speech = self._vad.is_speech(samples)  # every frame: webrtcvad adapts to what it hears
        return speech or level >= floor + self.open_db
