"""Voice activity per 80 ms frame, from webrtcvad's 20 ms decisions."""

from __future__ import annotations

from typing import Protocol

import _webrtcvad  # webrtcvad-wheels' extension module, the `webrtcvad` module's whole engine
import numpy as np

from recorder.audio import FRAME_SAMPLES, SAMPLE_RATE

SUBFRAME_SAMPLES = 320  # 20 ms, one of webrtcvad's accepted sizes
SUBFRAMES = FRAME_SAMPLES // SUBFRAME_SAMPLES


class SpeechDetector(Protocol):
    def is_speech(self, samples: np.ndarray) -> bool: ...


def gate_vad() -> WebRtcVad:
    """The wake-word engine's speech gate: any 20 ms of speech opens it.

    Mode 3 rejects a quiet room's noise bed (the lenient modes take a third of it for speech),
    and one speech sub-frame anywhere in a wake phrase is enough, since the gate back-fills the
    whole classifier window when it opens.
    """
    return WebRtcVad(aggressiveness=3, min_speech_subframes=1)


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
        frame = np.zeros(FRAME_SAMPLES, dtype="<i2")
        frame[: len(samples)] = samples[:FRAME_SAMPLES]
        raw = frame.tobytes()
        step = SUBFRAME_SAMPLES * 2
        votes = sum(
            _webrtcvad.process(self._vad, SAMPLE_RATE, raw[i : i + step], SUBFRAME_SAMPLES)
            for i in range(0, len(raw), step)
        )
        return bool(votes >= self._min)
