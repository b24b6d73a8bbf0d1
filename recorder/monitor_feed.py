"""The monitor's frames: each analysed frame as one record of numbers (the scores, the VAD
decision, the state, the input level), for `recorder monitor`, local or attached.

A record never carries audio: the level is one number per 80 ms frame, the frame's RMS in dB
relative to full scale. `MonitorFeed` is the running daemon's frame observer for the control
socket's `monitor` subscribers: while none is attached it returns at once, and while one is,
it only serializes the record and hands it to the server, which queues it (the processing loop
never waits for a subscriber).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from recorder.audio import Frame
from recorder.machine import State

SILENCE_DBFS = round(20 * math.log10(1 / 32768), 1)
"""The level of a frame whose RMS is below one step of 16-bit audio (digital silence)."""


def level_dbfs(samples: np.ndarray) -> float:
    """The RMS level of 16-bit samples in dBFS (0 is a full-scale square wave), at least
    SILENCE_DBFS, to 0.1 dB."""
    if not len(samples):
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return round(max(SILENCE_DBFS, 20 * math.log10(max(rms, 1.0) / 32768)), 1)


def frame_record(frame: Frame, scores: Mapping[str, float], speech: bool, state: State) -> dict:
    """One analysed frame as the monitor's record: numbers and the state's name only."""
    return {
        "event": "frame",
        "offset_s": round(frame.end_s, 2),
        "scores": {name: round(float(s), 4) for name, s in scores.items()},
        "speech": bool(speech),
        "state": state.value,
        "level_dbfs": level_dbfs(frame.samples),
    }


class MonitorFeed:
    """The daemon's frame observer for the `monitor` subscribers of its control socket.

    The control server sets `send` (queue a line and wake its thread) and `attached` (how many
    monitor subscribers there are); `hello` is what a new subscriber is told first, and a
    frame's record carries the thresholds too when they changed (a reload)."""

    def __init__(self, thresholds: Callable[[], Mapping[str, float]]):
        self.thresholds = thresholds
        self.send: Callable[[bytes], None] | None = None
        self.attached = 0
        self._shown: Mapping[str, float] | None = None

    def __call__(self, frame: Frame, scores: dict[str, float], speech: bool, state: State) -> None:
        if not self.attached or self.send is None:
            return
        record = frame_record(frame, scores, speech, state)
        thresholds = self.thresholds()
        if thresholds is not self._shown:  # a reload changed them: the record says so once
            self._shown = thresholds
            record["thresholds"] = self.hello()["thresholds"]
        self.send((json.dumps(record) + "\n").encode())

    def hello(self) -> dict[str, Any]:
        """The models' thresholds now, for the subscriber's threshold marks."""
        return {"thresholds": {name: float(t) for name, t in self.thresholds().items()}}
