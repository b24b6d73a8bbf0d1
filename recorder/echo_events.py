"""What the daemon tells of its playback: the detections it explained, and the saved audio.

A handler (see `recorder.handlers`) of the machine's `WakeIgnored`: the log's line and the
journal's `wake_ignored` record (the event stream, the audit log). Wired only when the pipeline
has an echo stage (`[audio] reference_channel`).
"""

from __future__ import annotations

import logging

from recorder import records
from recorder.audio import Frame, frames_to_s
from recorder.journal import Journal
from recorder.machine import Event, State, WakeIgnored
from recorder.pipeline import Analysis

log = logging.getLogger("recorder")

ECHO_META = {"echo_cancelled": True}
"""What a saved request's sidecar says of audio that went through the echo stage."""


class PlaybackEvents:
    def __init__(self, journal: Journal):
        self.journal = journal

    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None:
        pass

    def on_event(self, event: Event) -> str | None:
        if not isinstance(event, WakeIgnored):
            return None
        offset_s = frames_to_s(event.frame_index + 1)
        log.info(
            "wake word %s ignored at %.2f s: the playback explains it (its score there %.3f)",
            event.wake_word,
            offset_s,
            event.playback_score,
        )
        self.journal.publish(
            records.WakeIgnored(
                model=event.wake_word,
                score=round(event.score, 4),
                offset_s=round(offset_s, 4),
                reason=event.reason,
                playback_score=round(event.playback_score, 4),
            )
        )
        return None
