"""Echo cancellation before the ears: the microphone without what the speaker plays.

With `[audio] reference_channel`, each frame carries the playback reference beside the
microphone's samples. `EchoStage` takes it off the frame: a canceller (`[audio] echo_canceller`:
the linear one of `recorder.aec`, or WebRTC's AEC3 from the `aec` extra, pywebrtc-audio)
removes the reference's echo from the microphone's samples, and a second
wake-word engine scores the reference itself, so that the state machine can tell a wake word
the device played from one said in the room (`recorder.playback`). The frame that goes on (to
the wake-word engine, the speech gate, the VAD, the machine and so the saved request) is the
echo-cancelled microphone, without the reference: the reference is never kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import numpy as np

from recorder.audio import SAMPLE_RATE, Frame
from recorder.engines import WakeEngine
from recorder.errors import RecorderError

AEC_BLOCK = SAMPLE_RATE // 50
"""A frame's samples are padded to a whole number of 20 ms (AEC3 works on 10 ms blocks, the
linear canceller on 20 ms ones)."""
INSTALL_HINT = "pip install 'wakeword-recorder[aec]'"


class Canceller(Protocol):
    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


def canceller(kind: str) -> Canceller:
    """`[audio] echo_canceller`'s canceller: "linear" or "webrtc"."""
    if kind == "linear":
        from recorder.aec import LinearCanceller

        return LinearCanceller()
    return webrtc_canceller()


def webrtc_canceller(stream_delay_ms: int = 0) -> Canceller:
    """WebRTC's AEC3 at 16 kHz mono; a missing `aec` extra is the configuration's error."""
    try:
        from pywebrtc_audio import EchoCanceller
    except ImportError:
        raise RecorderError(
            f'[audio] echo_canceller = "webrtc" needs the aec extra ({INSTALL_HINT})'
        ) from None
    canceller: Canceller = EchoCanceller(SAMPLE_RATE, 1, stream_delay_ms=stream_delay_ms)
    return canceller


class EchoStage:
    """Per frame with a reference: the microphone's samples with the echo cancelled, and the
    reference engine's scores on what was played. A frame that does not follow the last one
    (audio dropped while muted, a reopened device) starts both afresh."""

    def __init__(self, canceller: Canceller, reference_engine: WakeEngine | None):
        self.canceller = canceller
        self.reference_engine = reference_engine
        self._next_index: int | None = None

    def reset(self) -> None:
        self.canceller.reset()
        if self.reference_engine is not None:
            self.reference_engine.reset()

    def process(self, frame: Frame) -> tuple[Frame, Mapping[str, float] | None]:
        ref = frame.reference
        assert ref is not None, "only a frame with a reference goes through the echo stage"
        if self._next_index is not None and frame.index != self._next_index:
            self.reset()
        self._next_index = frame.index + 1
        mic = frame.samples
        n = len(mic)
        pad = -n % AEC_BLOCK
        if pad:  # a file's last, short frame
            mic = np.concatenate([mic, np.zeros(pad, dtype=np.int16)])
            ref = np.concatenate([ref, np.zeros(pad, dtype=np.int16)])
        cleaned = self.canceller.process(
            np.ascontiguousarray(mic, dtype=np.int16), np.ascontiguousarray(ref, dtype=np.int16)
        )
        played = (
            self.reference_engine.process(ref[:n]) if self.reference_engine is not None else None
        )
        return Frame(frame.index, np.asarray(cleaned[:n], dtype=np.int16)), played

    def with_engine(self, reference_engine: WakeEngine | None) -> EchoStage:
        """The same canceller (its filter adapted to the room) with another reference engine."""
        stage = EchoStage(self.canceller, reference_engine)
        stage._next_index = self._next_index
        return stage
