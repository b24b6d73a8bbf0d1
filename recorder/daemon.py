"""Wiring: source -> engine + VAD -> machine -> events -> storage, indicator, log."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from recorder import __version__, models
from recorder.audio import SAMPLE_RATE, frames_to_s, s_to_frames
from recorder.config import Config
from recorder.engine import OpenWakeWordEngine, WakeEngine
from recorder.indicator import (
    CommandIndicator,
    Indicator,
    IndicatorError,
    Indicators,
    LogIndicator,
    StateFileIndicator,
)
from recorder.machine import (
    EndReason,
    Event,
    Machine,
    MachineSettings,
    SpeechStarted,
    State,
    StateChanged,
    UtteranceDiscarded,
    UtteranceReady,
    WakeDetected,
)
from recorder.sources import Source, open_source
from recorder.storage import Storage, StorageError
from recorder.vad import SpeechDetector, WebRtcVad

log = logging.getLogger("recorder")


def machine_settings(config: Config, names: Iterable[str]) -> MachineSettings:
    w, v = config.wake, config.vad
    names = list(names)
    return MachineSettings(
        thresholds={n: w.threshold_for(n) for n in names},
        patience_frames={n: w.patience_for(n) for n in names},
        refractory_frames=s_to_frames(w.refractory_s),
        lookback_frames=s_to_frames(v.lookback_s),
        min_speech_frames=max(1, s_to_frames(v.min_speech_s)),
        silence_frames=max(1, s_to_frames(v.silence_s)),
        no_speech_timeout_frames=max(1, s_to_frames(v.no_speech_timeout_s)),
        max_length_frames=max(1, s_to_frames(v.max_length_s)),
    )


def build_engine(config: Config) -> OpenWakeWordEngine:
    manifest = models.load_manifest(config.path(config.wake.models_dir)
                                    if config.wake.models_dir else None)
    features = list(manifest.features.values())
    models.verify_installed(manifest, features)
    specs = [models.resolve_wake_model(manifest, m) for m in config.wake.models]
    return OpenWakeWordEngine(manifest.path(manifest.features["melspectrogram"]),
                              manifest.path(manifest.features["embedding"]), specs)


def build_indicator(config: Config) -> Indicators:
    ind = config.indicator
    parts: list[Indicator] = [LogIndicator()]
    if ind.state_file:
        parts.append(StateFileIndicator(config.path(ind.state_file)))
    if ind.command:
        parts.append(CommandIndicator(ind.command, ind.timeout_s))
    return Indicators(parts)


class StopRequest:
    """Set by SIGTERM/SIGINT; the loop checks it between frames."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signum


@dataclass
class Daemon:
    config: Config
    source: Source
    engine: WakeEngine
    vad: SpeechDetector
    storage: Storage
    indicator: Indicator
    machine: Machine
    stop: StopRequest
    started_at: datetime = datetime.fromtimestamp(0, UTC)
    saved: int = 0

    def run(self) -> None:
        self.started_at = datetime.now(UTC)
        self.dispatch(self.machine.start())
        for frame in self.source.frames(self.stop):
            self.dispatch(self.machine.step(frame, self.engine.process(frame.samples),
                                            self.vad.is_speech(frame.samples)))
            if self.stop():
                break
        reason = EndReason.SHUTDOWN if self.stop() else EndReason.EOF
        self.dispatch(self.machine.finish(reason))

    def dispatch(self, events: list[Event]) -> None:
        for event in events:
            match event:
                case WakeDetected():
                    log.info("wake word %s detected (score %.3f) at %.2f s", event.wake_word,
                             event.score, frames_to_s(event.frame_index + 1))
                case StateChanged():
                    self._show(event)
                case SpeechStarted():
                    log.debug("speech started at %.2f s", frames_to_s(event.frame_index))
                case UtteranceDiscarded():
                    log.info("discarded the request after %s at %.2f s: %s",
                             event.wake.wake_word, frames_to_s(event.wake.frame_index + 1),
                             event.reason)
                case UtteranceReady():
                    self._save(event)

    def _show(self, event: StateChanged) -> None:
        try:
            self.indicator.show(event.state, event.previous)
        except IndicatorError as e:
            if event.state is State.RECORDING and self.config.indicator.required:
                log.error("indicator failed, discarding the request: %s", e)
                self.dispatch(self.machine.fail("indicator failed"))
            else:
                log.warning("indicator failed: %s", e)

    def _save(self, event: UtteranceReady) -> None:
        offset_s = frames_to_s(event.start_frame)
        started = self.started_at + timedelta(seconds=offset_s)
        duration_s = len(event.audio) / SAMPLE_RATE
        meta = {
            "wake_word": event.wake.wake_word,
            "score": round(event.wake.score, 4),
            "threshold": self.machine.settings.thresholds[event.wake.wake_word],
            "started_at": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration_s": round(duration_s, 4),
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "sample_format": "s16le",
            "samples": len(event.audio),
            "end_reason": event.end_reason.value,
            "source": self.source.description,
            "source_offset_s": round(offset_s, 4),
            "wake_offset_s": round(frames_to_s(event.wake.frame_index + 1), 4),
            "recorder_version": __version__,
        }
        base_id = started.strftime("%Y%m%dT%H%M%S.") + f"{started.microsecond // 1000:03d}Z"
        try:
            rec = self.storage.save(base_id, event.audio, meta)
        except StorageError as e:
            log.error("could not save the request, dropped it: %s", e)
            self.dispatch(self.machine.fail("storage failed"))
            return
        self.saved += 1
        log.info("saved %s (%.2f s, %s, from %.2f s)", rec.wav.name, duration_s,
                 event.end_reason.value, offset_s)


def run(config: Config) -> int:
    """Load everything (errors exit 2 before any audio), then run until EOF or a signal."""
    stop = StopRequest()
    stop.install()
    engine = build_engine(config)
    storage = Storage(config.path(config.storage.directory))
    storage.prepare()
    indicator = build_indicator(config)
    machine = Machine(machine_settings(config, engine.names))
    vad = WebRtcVad(config.vad.aggressiveness)
    source = open_source(config.audio.source, config.audio.realtime)
    log.info("listening on %s for %s (recordings in %s)", source.description,
             ", ".join(engine.names), storage.directory)
    daemon = Daemon(config, source, engine, vad, storage, indicator, machine, stop)
    try:
        daemon.run()
    finally:
        source.close()
    log.info("stopped: %d recording(s) saved", daemon.saved)
    return 0

