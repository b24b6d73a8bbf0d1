"""Saving the audio around each wake-word detection, for mining false activations.

Off by default: unlike a recording, an activation holds the wake word itself and the audio just
before it. Each one is a WAV (ACTIVATION_BEFORE_S before the detecting frame's end and
ACTIVATION_AFTER_S after) plus a sidecar with the score, written like the recordings.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from recorder.audio import SAMPLE_RATE, Frame, frames_to_s, s_to_frames
from recorder.machine import WakeDetected
from recorder.recording import time_id, utc_iso
from recorder.storage import Storage, StorageError

log = logging.getLogger("recorder.activations")

ACTIVATION_BEFORE_S = 1.5
ACTIVATION_AFTER_S = 0.5


@dataclass
class _Capture:
    wake: WakeDetected
    threshold: float
    frames: list[Frame]
    remaining: int


@dataclass
class ActivationSaver:
    storage: Storage
    source: str
    started_at: datetime
    _ring: deque[Frame] = field(
        default_factory=lambda: deque(maxlen=s_to_frames(ACTIVATION_BEFORE_S))
    )
    _pending: list[_Capture] = field(default_factory=list)

    def push(self, frame: Frame) -> None:
        self._ring.append(frame)
        for c in list(self._pending):
            c.frames.append(frame)
            c.remaining -= 1
            if c.remaining <= 0:
                self._write(c)

    def on_wake(self, wake: WakeDetected, threshold: float) -> None:
        """Call after push() of the detecting frame."""
        self._pending.append(
            _Capture(wake, threshold, list(self._ring), s_to_frames(ACTIVATION_AFTER_S))
        )

    def flush(self) -> None:
        for c in list(self._pending):
            self._write(c)

    def _write(self, c: _Capture) -> None:
        self._pending.remove(c)
        offset_s = frames_to_s(c.frames[0].index)
        t = self.started_at + timedelta(seconds=frames_to_s(c.wake.frame_index + 1))
        meta = {
            "kind": "activation",
            "wake_word": c.wake.wake_word,
            "score": round(c.wake.score, 4),
            "threshold": c.threshold,
            "detected_at": utc_iso(t),
            "source": self.source,
            "source_offset_s": round(offset_s, 4),
            "wake_offset_s": round(frames_to_s(c.wake.frame_index + 1), 4),
            "sample_rate": SAMPLE_RATE,
        }
        audio = np.concatenate([f.samples for f in c.frames])
        base_id = f"{time_id(t)}-{c.wake.wake_word}"
        try:
            rec = self.storage.save(base_id.replace(":", "_"), audio, meta)
        except StorageError as e:
            log.error("could not save the activation: %s", e)
            return
        log.info(
            "saved activation %s (%s, score %.3f)", rec.wav.name, c.wake.wake_word, c.wake.score
        )
