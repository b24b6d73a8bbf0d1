"""What the daemon does with each analysed frame and each of the machine's events: one ordered
list of handlers (the log, the journal, the activations, the frame observers, the indicator
and chime, the storage, the calibration).

The loop hands every frame, then every event, to each handler in the list's order. A handler
returns the failure that discards the request (an indicator that must show recording, a save
that failed); the event then goes no further, and the machine is told once the batch is done.
Handlers never reach back into the machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from recorder import records
from recorder.audio import Frame, frames_to_s
from recorder.echo_events import ECHO_META, PlaybackEvents
from recorder.indicators import IndicatorError
from recorder.journal import Journal, Refused
from recorder.machine import (
    Event,
    SpeechStarted,
    State,
    StateChanged,
    UtteranceDiscarded,
    UtteranceReady,
    WakeDetected,
)
from recorder.pipeline import Analysis, Pipeline
from recorder.recording import RecordingMeta
from recorder.sources import Source
from recorder.storage import Recording, Storage, StorageError

if TYPE_CHECKING:  # imported where used: a daemon that does not use them starts without them
    from recorder.activations import ActivationSaver
    from recorder.calibrating import Calibrate
    from recorder.handoff import Handoff

log = logging.getLogger("recorder")

FrameObserver = Callable[[Frame, dict[str, float], bool, State], None]
"""Sees every analysed frame with its scores, VAD decision and the state after it."""


class Handler(Protocol):
    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None: ...

    def on_event(self, event: Event) -> str | None:
        """The failure that discards the request, if any."""
        ...


class Handles:
    """A handler's defaults: frames and events it has nothing to do with."""

    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None:
        pass

    def on_event(self, event: Event) -> str | None:
        return None


def handle(handlers: list[Handler], events: list[Event]) -> str | None:
    """Each event to each handler in order; the last failure of the batch, if any."""
    failure: str | None = None
    for event in events:
        for h in handlers:
            failed = h.on_event(event)
            if failed:
                failure = failed
                break
    return failure


class LogEvents(Handles):
    def on_event(self, event: Event) -> str | None:
        match event:
            case WakeDetected():
                log.info(
                    "wake word %s detected (score %.3f) at %.2f s",
                    event.wake_word,
                    event.score,
                    frames_to_s(event.frame_index + 1),
                )
            case SpeechStarted():
                log.debug("speech started at %.2f s", frames_to_s(event.frame_index))
            case UtteranceDiscarded():
                log.info(
                    "discarded the request after %s at %.2f s: %s",
                    event.wake.wake_word,
                    frames_to_s(event.wake.frame_index + 1),
                    event.reason,
                )
        return None


class JournalEvents(Handles):
    """The machine's wake words, states and discarded requests, as journal records (a saved
    request is published by `SaveRequests`, which knows its files)."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def on_event(self, event: Event) -> str | None:
        match event:
            case WakeDetected():
                self.journal.publish(
                    records.Wake(
                        model=event.wake_word,
                        score=round(event.score, 4),
                        offset_s=round(frames_to_s(event.frame_index + 1), 4),
                    )
                )
            case StateChanged():
                self.journal.publish(
                    records.StateShown(
                        state=event.state.value,
                        previous=None if event.previous is None else event.previous.value,
                    )
                )
            case UtteranceDiscarded():
                self.journal.publish(
                    records.Discarded(reason=event.reason, wake_word=event.wake.wake_word)
                )
        return None


class SaveActivations(Handles):
    """`[wake] save_activations`: every analysed frame, and the audio around each wake word."""

    def __init__(self, saver: ActivationSaver, thresholds: Mapping[str, float]):
        self.saver, self.thresholds = saver, thresholds

    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None:
        self.saver.push(frame)

    def on_event(self, event: Event) -> str | None:
        if isinstance(event, WakeDetected):
            self.saver.on_wake(event, self.thresholds[event.wake_word])
        return None


class ObserveFrames(Handles):
    """The frame observers (the monitor's, local or the control socket's; tests'), in order."""

    def __init__(self, observers: list[FrameObserver]):
        self.observers = observers

    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None:
        scores = dict(analysis.scores)
        for observe in self.observers:
            observe(frame, scores, analysis.speech, state)


class ShowState(Handles):
    """The indicator, then the chime (which never blocks). A required indicator that fails to
    show recording discards the request."""

    def __init__(self, pipeline: Pipeline):
        self.p = pipeline

    def on_event(self, event: Event) -> str | None:
        if not isinstance(event, StateChanged):
            return None
        failure = None
        try:
            self.p.indicator.show(event.state, event.previous)
        except IndicatorError as e:
            if event.state is State.RECORDING and self.p.config.indicator.required:
                log.error("indicator failed, discarding the request: %s", e)
                failure = "indicator failed"
            else:
                log.warning("indicator failed: %s", e)
        if self.p.chime is not None:  # after the light
            self.p.chime.on_state(event, discarded=failure is not None)
        return failure


class SaveRequests(Handles):
    """Each ready request saved (or, in a dry run, logged), and its `saved` record published.

    `counted` is called for each request saved or that a dry run would save, before its
    record; `written` after the record of one written, before the retention. A request whose
    record the journal's gate refused (its audit line could not be written) is deleted and
    dropped, as one that could not be saved."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: Source,
        thresholds: Mapping[str, float],
        started_at: datetime,
        journal: Journal,
        handoff: Handoff | None,
        dry_run: bool,
        counted: Callable[[], None],
        written: Callable[[], None],
    ):
        self.p, self.source, self.thresholds = pipeline, source, thresholds
        self.started_at, self.journal, self.handoff = started_at, journal, handoff
        self.dry_run, self.counted, self.written = dry_run, counted, written

    def on_event(self, event: Event) -> str | None:
        return self.save(event) if isinstance(event, UtteranceReady) else None

    def save(self, event: UtteranceReady) -> str | None:
        """Save the request; the failure that dropped it, if any."""
        meta = self._meta(event)
        if self.dry_run:
            log.info(
                "dry run: would save %.2f s from %.2f s to %.2f s (%s, wake word %s at %.2f s)",
                meta.duration_s,
                meta.source_offset_s,
                meta.source_offset_s + meta.duration_s,
                meta.end_reason,
                meta.wake_word,
                meta.wake_offset_s,
            )
            self.counted()
            self.journal.publish(_saved(meta, None))
            return None
        try:
            rec = self.p.storage.save(meta.id, event.audio, meta.to_json())
        except StorageError as e:
            log.error("could not save the request, dropped it: %s", e)
            return "storage failed"
        record = self.journal.stamp(_saved(meta, _files(rec)))
        try:
            self.journal.check(record)  # the audit log's line, before anything counts it
        except Refused as e:
            log.error("could not write the request's audit line, deleted it: %s", e)
            try:
                self.p.storage.delete(rec)
            except OSError as err:
                log.error("could not delete %s: %s", rec.wav, err.strerror or err)
            return "audit log failed"
        self.counted()
        log.info(
            "saved %s (%.2f s, %s, from %.2f s)",
            rec.wav.name,
            meta.duration_s,
            meta.end_reason,
            meta.source_offset_s,
        )
        if rec.sealed and self.handoff is not None:
            self.handoff.hold(rec, event.audio)  # the transcriber cannot read the files back
        self.journal.deliver(record)
        self.written()
        self.enforce_retention()
        return None

    def enforce_retention(self) -> None:
        """`[storage]` max_age, max_count, max_total_mb: the recordings past them deleted."""
        s = self.p.config.storage
        if self.dry_run or not (s.max_age or s.max_count or s.max_total_mb):
            return
        try:
            gone = self.p.storage.enforce(
                s.max_age_s, s.max_count, int(s.max_total_mb * 1e6), datetime.now(UTC)
            )
        except OSError as e:
            log.error("retention: %s", e)
            return
        if gone:
            log.info(
                "retention deleted %d recording(s): %s", len(gone), ", ".join(r.id for r in gone)
            )
        for r in gone:
            self.journal.publish(records.Deleted(id=r.id, why="retention"))

    def _meta(self, event: UtteranceReady) -> RecordingMeta:
        extra: dict[str, Any] = {**self.source.info, **(ECHO_META if self.p.echo else {})}
        if self.p.chime is not None:  # where the awake chime started, for consumers to skip
            extra.update(self.p.chime.awake_meta(event.wake.frame_index))
        return RecordingMeta.of(
            event,
            self.started_at,
            self.thresholds[event.wake.wake_word],
            self.source.description,
            extra,
            gaps=list(self.source.gaps),
        )


def _files(rec: Recording) -> records.SavedFiles:
    return records.SavedFiles(
        id=rec.id,
        sidecar=str(rec.sidecar),
        audio=str(rec.wav),
        audio_sha256=rec.meta.get("audio_sha256"),
        written=rec.written,
        sealed=rec.sealed,
    )


def _saved(meta: RecordingMeta, files: records.SavedFiles | None) -> records.Saved:
    return records.Saved(
        files=files,
        wake_word=meta.wake_word,
        duration_s=round(meta.duration_s, 4),
        end_reason=meta.end_reason,
        source_offset_s=round(meta.source_offset_s, 4),
    )


class HandlerSet:
    """The daemon's handlers in their order, wired again whenever the pipeline changes, with
    the activations and the calibration that the configuration asks for."""

    def __init__(
        self,
        journal: Journal,
        observers: list[FrameObserver],
        dry_run: bool,
        counted: Callable[[], None],
        written: Callable[[], None],
    ) -> None:
        self.journal, self.observers, self.dry_run = journal, observers, dry_run
        self.counted, self.written = counted, written
        self.activations: ActivationSaver | None = None
        self.calibrate: Calibrate | None = None
        """`[wake] calibrate`: the counters and near misses, a handler."""
        self.handlers: list[Handler] = []

    def wire(
        self,
        pipeline: Pipeline,
        source: Source,
        thresholds: Mapping[str, float],
        started_at: datetime,
        handoff: Handoff | None,
    ) -> None:
        """The handlers, in their order, for the pipeline, activations and calibration now."""
        activations = [SaveActivations(self.activations, thresholds)] if self.activations else []
        self.saving = SaveRequests(
            pipeline,
            source,
            thresholds,
            started_at,
            self.journal,
            handoff,
            self.dry_run,
            counted=self.counted,
            written=self.written,
        )
        self.handlers = [
            LogEvents(),
            JournalEvents(self.journal),
            *([PlaybackEvents(self.journal)] if pipeline.echo else []),
            *activations,
            ObserveFrames(self.observers),
            ShowState(pipeline),
            self.saving,
            *([self.calibrate] if self.calibrate else []),
        ]

    def set_activations(self, pipeline: Pipeline, source: str, started_at: datetime) -> None:
        """Start (or stop) saving activations as the configuration says."""
        directory = pipeline.config.wake.save_activations
        if not directory or self.dry_run:
            self.activations = None
            return
        storage = Storage(pipeline.config.path(directory), pipeline.storage.sealer)  # sealed too
        storage.prepare()
        from recorder.activations import ActivationSaver

        self.activations = ActivationSaver(storage, source, started_at)

    def set_calibration(
        self, pipeline: Pipeline, thresholds: Mapping[str, float], state_dir: Path
    ) -> None:
        """Start, restart (new settings) or stop calibrating as the configuration says; the
        counts so far are written first and read back."""
        if self.calibrate is not None:
            self.calibrate.close()
            self.calibrate = None
        if pipeline.config.wake.calibrate:  # its modules only for a daemon that calibrates
            from recorder.calibrating import Calibrate

            self.calibrate = Calibrate.for_config(
                pipeline.config, pipeline.engine, thresholds, state_dir
            )

    def on_frame(self, frame: Frame, analysis: Analysis, state: State) -> None:
        for h in self.handlers:
            h.on_frame(frame, analysis, state)

    def on_events(self, events: list[Event]) -> str | None:
        return handle(self.handlers, events)

    def enforce_retention(self) -> None:
        self.saving.enforce_retention()

    def close(self) -> None:
        """At the end of the run: the activations written, the calibration's counts saved."""
        if self.activations:
            self.activations.flush()
        if self.calibrate:
            self.calibrate.close()
