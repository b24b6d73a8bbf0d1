"""What the echo canceller leaves: a frame counts for the request's end only above it.

A linear canceller removes most of the playback's echo, not all: under loud music what it
leaves of the drums and the bass still sounds speech-like to webrtcvad, and a request would run
on after the talker stops. With a playback reference the recorder knows, frame by frame, how
loud the playback is; before the wake word, while nobody speaks to it, it learns how far below
the reference the canceller's output lies (the *coupling*: the room's echo path less the
canceller's echo return loss enhancement). While a request is open, a frame counts as speech
for the endpoint only when the cancelled microphone stands `margin_db` above the residue that
coupling predicts from the reference's level: the talker adds to the residue, the residue alone
does not reach it.

The coupling is the median over the last `ROOM_FRAMES` listening frames (as the endpoint's
room, without the wake phrase's own frames) whose reference is loud, and the margin covers the
residue's own frame-to-frame swing. The reference's level carries the room's tail
(`TAIL_DB_PER_FRAME`), so the echo of a loud frame is still predicted in the quieter frame after
it. Levels only, never audio, and never the saved audio (that stays the cancelled microphone);
pure and frame-counted like the endpoint. Without a reference none of this exists.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from recorder.audio import FRAME_SAMPLES
from recorder.endpoint import MIN_ROOM_FRAMES, PHRASE_FRAMES, ROOM_FRAMES, rms_db

PLAYING_DB = -70.0
"""A reference below this level (dBFS) is silence: nothing of it is left to predict."""
TAIL_DB_PER_FRAME = 6.0
"""The reference's level falls by at most this much per 80 ms frame: its echo's tail."""
LOUD_DB = 10.0
"""The coupling is learnt on the frames whose reference is within this of the loudest one's
(where the residue, not the room's own noise, is what the microphone holds: speech played has
pauses)."""
QUANTILE = 0.5
"""The coupling: this quantile (the median) of the listening frames' cancelled level less the
reference's; the median is not moved by a talker before the wake word, nor by the canceller's
first second of learning the room."""
MARGIN_DB = 8.0
"""A frame of the talker's stands this far above the predicted residue (the residue's own
swing under music: a standard deviation of about 5 dB). Measured against 7, 9 and 10 dB, and
against the 0.7 to 0.95 quantiles with smaller margins, in docs/echo.md's benchmark."""


class ResidualEcho:
    """`clear(samples, reference)` on every frame with a reference (the cancelled microphone
    and what was played); `wake(phrase_frames)` when a request opens; `release()` once none is
    open. `clear` is True outside a request, while the reference is silent, and while no
    coupling is known; inside a request it is True when the frame stands above the residue."""

    def __init__(self, quantile: float = QUANTILE, margin_db: float = MARGIN_DB):
        self.quantile = quantile
        self.margin_db = margin_db
        self._played = PLAYING_DB - 1.0
        self._couplings: deque[tuple[float, float]] = deque(maxlen=ROOM_FRAMES)
        self._open = False
        self.coupling_db: float | None = None
        """While a request is open: the cancelled level's expected height over the reference's."""

    def clear(self, samples: np.ndarray, reference: np.ndarray) -> bool:
        level = rms_db(samples)
        played = max(rms_db(reference[:FRAME_SAMPLES]), self._played - TAIL_DB_PER_FRAME)
        self._played = played
        playing = played > PLAYING_DB
        if not self._open:
            self._couplings.append((played, level - played))
            return True
        if self.coupling_db is None or not playing:
            return True
        return level >= played + self.coupling_db + self.margin_db

    def wake(self, phrase_frames: int) -> None:
        """Learn the coupling from the frames before the wake phrase."""
        self._open = True
        n = max(phrase_frames, PHRASE_FRAMES)
        kept = list(self._couplings)[:-n] if n < len(self._couplings) else []
        loudest = max((p for p, _ in kept), default=PLAYING_DB)
        # frames where the residue stands over the room's own noise: the playback's loud ones
        couplings = sorted(c for p, c in kept if p > max(PLAYING_DB, loudest - LOUD_DB))
        if len(couplings) < MIN_ROOM_FRAMES:
            self.coupling_db = None
            return
        self.coupling_db = couplings[min(len(couplings) - 1, int(self.quantile * len(couplings)))]

    def release(self) -> None:
        """No request is open: the coupling is learnt afresh (a request's speech is none)."""
        if self._open:
            self._open = False
            self.coupling_db = None
            self._couplings.clear()
