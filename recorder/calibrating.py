"""`[wake] calibrate` in the daemon: the handler (see `recorder.handlers`) that gives each
analysed frame and each of the machine's events to the counters per threshold and patience
(`recorder.calibration`) and to the near misses (`recorder.near_misses`). Imported only when
the configuration calibrates.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from recorder.audio import Frame, s_to_frames
from recorder.calibration import Calibration
from recorder.config import Config
from recorder.engines import WakeEngine
from recorder.machine import Event, State, UtteranceReady, WakeDetected
from recorder.near_misses import NearMisses
from recorder.pipeline import Analysis


class Calibrate:
    """`[wake] calibrate`: the counters, and the near misses of the models with embeddings."""

    def __init__(self, calibration: Calibration, near_misses: NearMisses | None):
        self.calibration, self.near_misses = calibration, near_misses

    @classmethod
    def for_config(
        cls,
        config: Config,
        engine: WakeEngine,
        thresholds: Mapping[str, float],
        state_dir: Path,
    ) -> Calibrate | None:
        """The counters (the file's counts read back first) and, for the models a verifier
        can check, the near misses; None when the configuration does not calibrate."""
        w = config.wake
        if not w.calibrate:
            return None
        near_misses = None
        embeddings = engine.embeddings
        if embeddings is not None:  # the room's negatives for `recorder verifier train`
            oww = {n: t for n, t in thresholds.items() if engine.takes_verifier(n)}
            near_misses = NearMisses(state_dir, oww, embeddings)
        calibration = Calibration(
            state_dir,
            {n: w.patience_for(n) for n in engine.names},
            s_to_frames(w.refractory_s),
            also_save=[near_misses.save] if near_misses else [],
        )
        return cls(calibration, near_misses)

    def close(self) -> None:
        """Write the counts (and the near misses)."""
        self.calibration.close()

    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None:
        scores = dict(analysis.scores)
        self.calibration.observe(frame, scores, analysis.speech, state)
        if self.near_misses is not None:
            self.near_misses.observe(frame, scores, analysis.speech, state)

    def on_event(self, event: Event) -> str | None:
        if isinstance(event, WakeDetected):
            self.calibration.on_wake(event)
        elif isinstance(event, UtteranceReady):  # saved: a failed save stops it before here
            self.calibration.on_saved(event.wake)
        return None
