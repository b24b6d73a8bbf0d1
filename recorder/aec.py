"""A linear acoustic echo canceller in numpy: the reference's path through the room, learnt.

A partitioned-block frequency-domain adaptive filter (overlap-save, 20 ms blocks, a tail of
`tail_s`) predicts the echo from the reference and subtracts it; nothing else touches the
microphone's samples, so a talker over the playback reaches the wake-word model undistorted
(WebRTC's AEC3 also suppresses what its filter leaves, and with it much of a talker who speaks
over loud playback: docs/echo.md has the measurements).

Two filters, as in Speex's canceller: a background one adapts on every block (NLMS, normalised
per frequency by the reference's power) and the foreground one, whose prediction is subtracted,
takes the background's coefficients once they predict clearly better. A talker's speech makes
the background filter wander; it never reaches the output, and it is reset to the foreground
one when its error grows far past the foreground's.
"""

from __future__ import annotations

import numpy as np

from recorder.audio import SAMPLE_RATE

BLOCK = 320
"""Samples per block (20 ms at 16 kHz): four blocks per 80 ms frame."""
TAIL_S = 0.2
"""The echo path the filter models: the direct path and 200 ms of the room. Measured against
0.1, 0.15, 0.3 and 0.5 s in rooms of 250 and 500 ms RT60 (docs/echo.md): a longer filter
adapts slower and leaves more of loud music; a shorter one misses more of the room."""
STEP = 0.7
"""The background filter's normalised step."""
SMOOTH = 0.9
"""Per-block smoothing of the error energies and of the reference's power per bin."""
MIN_STEP = 0.2
"""The step's floor, as a share of STEP (see `_step`)."""
ADOPT = 0.7
"""The foreground takes the background's coefficients when the background's error energy is
below this share of its own."""
RESET = 4.0
"""The background restarts from the foreground when its error energy exceeds this many times
the foreground's."""


class LinearCanceller:
    """`process(near, far)`: int16 blocks of any whole number of BLOCKs, the microphone and
    the reference sample-synchronous; returns the microphone less the predicted echo."""

    def __init__(self, tail_s: float = TAIL_S, sample_rate: int = SAMPLE_RATE):
        self.partitions = max(1, int(np.ceil(tail_s * sample_rate / BLOCK)))
        self.reset()

    def reset(self) -> None:
        bins = BLOCK + 1
        self._x = np.zeros((self.partitions, bins), dtype=np.complex128)  # newest first
        self._fore = np.zeros((self.partitions, bins), dtype=np.complex128)
        self._back = np.zeros((self.partitions, bins), dtype=np.complex128)
        self._last_far = np.zeros(BLOCK)
        self._power = np.zeros(bins)
        self._err_fore = self._err_back = 0.0
        self._constrain_next = 0

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        out = np.empty(len(near), dtype=np.int16)
        for start in range(0, len(near) - len(near) % BLOCK, BLOCK):
            part = slice(start, start + BLOCK)
            e = self._block(near[part].astype(np.float64), far[part].astype(np.float64))
            out[part] = np.clip(np.round(e), -32768, 32767)
        return out

    def _block(self, d: np.ndarray, x: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft(np.concatenate([self._last_far, x]))
        self._last_far = x
        self._x = np.roll(self._x, 1, axis=0)
        self._x[0] = spectrum
        e_fore = d - self._predict(self._fore)
        y_back = self._predict(self._back)
        e_back = d - y_back
        self._adapt(e_back, spectrum, self._step(float(y_back @ y_back), float(e_back @ e_back)))
        self._arbitrate(float(e_fore @ e_fore), float(e_back @ e_back))
        return e_fore

    def _predict(self, w: np.ndarray) -> np.ndarray:
        y: np.ndarray = np.fft.irfft((self._x * w).sum(axis=0))[BLOCK:]
        return y

    def _step(self, echo: float, error: float) -> float:
        """A smaller step while the error holds more than the echo the filter predicts (a
        talker, or a filter still far from the room's path), never below STEP * MIN_STEP."""
        return STEP * min(1.0, max(MIN_STEP, echo / (error + 1.0)))

    def _adapt(self, error: np.ndarray, spectrum: np.ndarray, step: float) -> None:
        self._power = SMOOTH * self._power + (1 - SMOOTH) * np.abs(spectrum) ** 2
        floor = 1e-3 * self._power.mean() + 1.0
        e = np.fft.rfft(np.concatenate([np.zeros(BLOCK), error]))
        gain = step * e / (self.partitions * self._power + floor)
        self._back += np.conj(self._x) * gain
        # the gradient constraint (each partition a causal BLOCK of taps), one partition a block
        p = self._constrain_next
        taps = np.fft.irfft(self._back[p])
        taps[BLOCK:] = 0.0
        self._back[p] = np.fft.rfft(taps)
        self._constrain_next = (p + 1) % self.partitions

    def _arbitrate(self, fore: float, back: float) -> None:
        self._err_fore = SMOOTH * self._err_fore + (1 - SMOOTH) * fore
        self._err_back = SMOOTH * self._err_back + (1 - SMOOTH) * back
        if self._err_back < ADOPT * self._err_fore:
            self._fore = self._back.copy()
            self._err_fore = self._err_back
        elif self._err_back > RESET * self._err_fore:
            self._back = self._fore.copy()
            self._err_back = self._err_fore
