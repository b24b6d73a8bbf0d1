"""No self-wakes: a detection that the device's own playback explains records nothing.

Pure and frame-counted, like the machine that asks it. The wake-word engine also scores the
playback reference (`recorder.echo`); a detection on the microphone is the playback's own when
the reference's score for the same model reached `PLAYBACK_FRACTION` of that model's threshold
within the `WINDOW_FRAMES` up to and including the detecting frame. The loopback is captured as
the sound leaves for the speaker, so the reference leads its echo in the microphone: the window
looks back only, and the decision is made on the detecting frame, without delay.
"""

from __future__ import annotations

from collections.abc import Mapping

WINDOW_FRAMES = 25
"""2 s: the echo's detection can lag the reference's (the room's tail, the canceller's residue
rising slowly to the threshold), but not by a whole wake phrase."""
PLAYBACK_FRACTION = 0.5
"""The reference is clean: a wake word played scores high on it; half the threshold is
already the model hearing its word, while music or talk rarely gets there."""


class PlaybackGuard:
    """The reference's latest score at or above its bar, per model: (frame index, peak score of
    the run that ended there)."""

    def __init__(
        self,
        thresholds: Mapping[str, float],
        window_frames: int = WINDOW_FRAMES,
        fraction: float = PLAYBACK_FRACTION,
    ):
        self.bars = {name: t * fraction for name, t in thresholds.items()}
        self.window_frames = window_frames
        self._last: dict[str, tuple[int, float]] = {}

    def push(self, index: int, scores: Mapping[str, float]) -> None:
        """The reference's scores on frame `index`."""
        for name, bar in self.bars.items():
            score = scores.get(name, 0.0)
            if score < bar:
                continue
            last = self._last.get(name)
            if last is not None and index - last[0] <= self.window_frames:
                score = max(score, last[1])
            self._last[name] = (index, score)

    def explains(self, name: str, index: int) -> float | None:
        """The reference's peak score for `name` if it reached the bar within the window up to
        frame `index`; None when the playback does not explain a detection there."""
        last = self._last.get(name)
        if last is None or not 0 <= index - last[0] <= self.window_frames:
            return None
        return last[1]

    def forget(self) -> None:
        self._last.clear()
