"""Wiring: source -> engine + VAD -> machine -> events -> storage, indicator, log.

The loop is plain and synchronous. Signal handlers and the control-socket thread only set
flags; the loop acts on them between frames, and shutdown runs one path whatever the reason.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recorder import __version__, chime, models, pi
from recorder.activations import ActivationSaver
from recorder.audio import SAMPLE_RATE, Frame, frames_to_s, s_to_frames
from recorder.chime import ChimePlayer
from recorder.config import Config
from recorder.control import ControlServer, default_runtime_dir
from recorder.engine import OpenWakeWordEngine, WakeEngine
from recorder.errors import RecorderError
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
from recorder.mute import MuteSwitch
from recorder.notify import Notifier
from recorder.sources import DeviceLost, DeviceRestored, Source, open_source
from recorder.storage import Storage, StorageError
from recorder.vad import SpeechDetector, WebRtcVad, gate_vad

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
                              manifest.path(manifest.features["embedding"]), specs,
                              gate=gate_vad() if config.wake.gate else None)


def build_indicator(config: Config) -> Indicators:
    ind = config.indicator
    # The Pi's lights first, so they show at once; built (or released) whatever is configured.
    parts: list[Indicator] = [LogIndicator(), *pi.build_indicators(ind)]
    if ind.state_file:
        parts.append(StateFileIndicator(config.path(ind.state_file)))
    if ind.command:
        parts.append(CommandIndicator(ind.command, ind.timeout_s))
    return Indicators(parts)


def build_storage(config: Config) -> Storage:
    storage = Storage(config.path(config.storage.directory))
    storage.prepare()
    return storage


class Flags:
    """Set from signal handlers and the control thread; read by the loop between frames."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None
        self.reload = False
        self.muted: bool | None = None  # a requested mute state not yet applied

    def should_stop(self) -> bool:
        return self.stop_signal is not None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, self._reload)

    def _stop(self, signum: int, _frame: object) -> None:
        self.stop_signal = signum

    def _reload(self, _signum: int, _frame: object) -> None:
        self.reload = True


@dataclass
class Pipeline:
    """Everything a configuration decides; swapped whole on a reload."""

    config: Config
    engine: WakeEngine
    vad: SpeechDetector
    storage: Storage
    indicator: Indicator
    chime: ChimePlayer | None = None


def build_pipeline(config: Config, engine: WakeEngine | None = None,
                   dry_run: bool = False) -> Pipeline:
    storage = (Storage(config.path(config.storage.directory)) if dry_run
               else build_storage(config))
    engine = engine or build_engine(config)
    player = chime.build(config)
    # The indicator last: it takes over the LEDs of the configuration it replaces.
    return Pipeline(config, engine, WebRtcVad(config.vad.aggressiveness), storage,
                    build_indicator(config), player)


FrameObserver = Callable[[Frame, dict[str, float], bool, State], None]
"""Sees every analysed frame with its scores, VAD decision and the state after it."""


@dataclass
class Daemon:
    p: Pipeline
    source: Source
    machine: Machine
    flags: Flags
    mute: MuteSwitch
    notifier: Notifier = field(default_factory=Notifier)
    reload_config: Callable[[], Config] | None = None
    dry_run: bool = False
    observers: list[FrameObserver] = field(default_factory=list)
    activations: ActivationSaver | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    saved: int = 0
    frames_seen: int = 0
    _failure: str | None = None
    _last_watchdog: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        self.started_at = datetime.now(UTC)
        self.set_activations()
        started = False
        for item in self.source.frames(self.flags.should_stop):
            if not started:  # announce the first state once the source has said how it is
                started = True
                self._start(lost=isinstance(item, DeviceLost))
            if isinstance(item, Frame):
                self.step(item)
                self.frames_seen += 1
            elif isinstance(item, DeviceLost):
                self.dispatch(self.machine.device_lost())
                self.notifier.send(f"STATUS=audio source lost ({item.reason}); retrying")
            elif isinstance(item, DeviceRestored):
                self.p.engine.reset()  # the audio before the gap is not context for what follows
                self.dispatch(self.machine.device_restored())
                self.notifier.send(f"STATUS={self.status_line()}")
            self.tick()
            if self.flags.should_stop():
                break
        if not started:
            self._start(lost=False)
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        reason = EndReason.SHUTDOWN if self.flags.should_stop() else EndReason.EOF
        self.dispatch(self.machine.finish(reason))
        if self.activations:
            self.activations.flush()

    def _start(self, lost: bool) -> None:
        if lost:
            self.machine.device_lost()  # before start(): the first state shown is then error
        self.dispatch(self.machine.start())
        self.enforce_retention()
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")

    def step(self, frame: Frame) -> None:
        if self.machine.state in (State.MUTED, State.OFF):
            return  # muted audio is dropped without being analysed
        scores = self.p.engine.process(frame.samples)
        speech = self.p.vad.is_speech(frame.samples)
        events = self.machine.step(frame, scores, speech)
        if self.activations:
            self.activations.push(frame)
        for observe in self.observers:
            observe(frame, scores, speech, self.machine.state)
        self.dispatch(events)

    def set_activations(self) -> None:
        """Start (or stop) saving activations as the configuration says."""
        directory = self.p.config.wake.save_activations
        if not directory or self.dry_run:
            self.activations = None
            return
        storage = Storage(self.p.config.path(directory))
        storage.prepare()
        self.activations = ActivationSaver(storage, self.source.description, self.started_at)

    def tick(self) -> None:
        """Between frames: watchdog, mute requests, a pending reload."""
        if self.notifier.watchdog_interval_s is not None:
            now = time.monotonic()
            if now - self._last_watchdog >= self.notifier.watchdog_interval_s:
                self.notifier.send("WATCHDOG=1")
                self._last_watchdog = now
        muted = self.flags.muted
        if muted is not None and muted != self.machine.muted:
            self.flags.muted = None
            self.p.engine.reset()
            self.dispatch(self.machine.set_muted(muted))
            self.notifier.send(f"STATUS={self.status_line()}")
        if self.flags.reload and not self.machine.recording:
            self.flags.reload = False
            self.reload()

    def reload(self) -> None:
        if self.reload_config is None:
            return
        try:
            config = self.reload_config()
            w, old = config.wake, self.p.config.wake
            same_engine = (w.models, w.models_dir, w.gate) == (old.models, old.models_dir,
                                                                old.gate)
            pipeline = build_pipeline(config, self.p.engine if same_engine else None,
                                      self.dry_run)
        except RecorderError as e:
            log.error("reload refused, keeping the running configuration: %s", e)
            return
        if config.audio != self.p.config.audio:
            log.warning("a changed [audio] section takes effect at the next start")
        old, self.p = self.p, pipeline
        if old.chime is not None:
            old.chime.close(wait_s=None)  # what it still plays finishes in the background
        self.machine.reconfigure(machine_settings(config, pipeline.engine.names))
        try:
            self.set_activations()
        except RecorderError as e:
            log.error("activations: %s", e)
        log.info("configuration reloaded")
        self.enforce_retention()

    def dispatch(self, events: list[Event]) -> None:
        """Hand events to the log, indicator and storage, in order. A handler's failure is
        reported to the machine once the batch is done, so the states shown stay in order."""
        for event in events:
            match event:
                case WakeDetected():
                    log.info("wake word %s detected (score %.3f) at %.2f s", event.wake_word,
                             event.score, frames_to_s(event.frame_index + 1))
                    if self.activations:
                        self.activations.on_wake(
                            event, self.machine.settings.thresholds[event.wake_word])
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
        failure, self._failure = self._failure, None
        if failure:
            self.dispatch(self.machine.fail(failure))

    def _show(self, event: StateChanged) -> None:
        discarded = False
        try:
            self.p.indicator.show(event.state, event.previous)
        except IndicatorError as e:
            if event.state is State.RECORDING and self.p.config.indicator.required:
                log.error("indicator failed, discarding the request: %s", e)
                self._failure = "indicator failed"
                discarded = True
            else:
                log.warning("indicator failed: %s", e)
        if self.p.chime is not None:  # after the light; never blocks
            self.p.chime.on_state(event, discarded)

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
        if self.p.chime is not None:  # where the awake chime started, for consumers to skip
            meta.update(self.p.chime.awake_meta(event.wake.frame_index))
        meta.update(getattr(self.source, "info", {}))  # a microphone's device_rate, channels
        if self.dry_run:
            log.info("dry run: would save %.2f s from %.2f s to %.2f s (%s, wake word %s at "
                     "%.2f s)", duration_s, offset_s, offset_s + duration_s,
                     event.end_reason.value, event.wake.wake_word, meta["wake_offset_s"])
            self.saved += 1
            return
        base_id = started.strftime("%Y%m%dT%H%M%S.") + f"{started.microsecond // 1000:03d}Z"
        try:
            rec = self.p.storage.save(base_id, event.audio, meta)
        except StorageError as e:
            log.error("could not save the request, dropped it: %s", e)
            self._failure = "storage failed"
            return
        self.saved += 1
        log.info("saved %s (%.2f s, %s, from %.2f s)", rec.wav.name, duration_s,
                 event.end_reason.value, offset_s)
        self.notifier.send(f"STATUS={self.status_line()}")
        self.enforce_retention()

    def enforce_retention(self) -> None:
        s = self.p.config.storage
        if self.dry_run or not (s.max_age or s.max_count or s.max_total_mb):
            return
        try:
            gone = self.p.storage.enforce(s.max_age_s, s.max_count,
                                          int(s.max_total_mb * 1e6), datetime.now(UTC))
        except OSError as e:
            log.error("retention: %s", e)
            return
        if gone:
            log.info("retention deleted %d recording(s): %s", len(gone),
                     ", ".join(r.id for r in gone))

    # --- the control socket (runs on its thread) -----------------------------------------
    def control(self, command: str) -> dict[str, Any]:
        with self._lock:
            if command in ("mute", "unmute"):
                try:
                    self.mute.set(command == "mute")
                except RecorderError as e:
                    return {"ok": False, "error": str(e)}
                self.flags.muted = command == "mute"
                return {"ok": True, **self.status()}
            if command == "status":
                return {"ok": True, **self.status()}
            return {"ok": False, "error": f"unknown command {command!r}"}

    def status(self) -> dict[str, Any]:
        muted = self.mute.is_muted()
        state = self.machine.state
        return {
            "state": State.MUTED.value if muted and state is State.LISTENING else state.value,
            "muted": muted,
            "recordings": len(self.p.storage.list()),
            "saved_since_start": self.saved,
            "uptime_s": round((datetime.now(UTC) - self.started_at).total_seconds(), 1),
            "audio_s": round(frames_to_s(self.frames_seen), 2),
            "source": self.source.description,
            "models": list(self.p.engine.names),
            "recordings_dir": str(self.p.storage.directory),
            "pid": os.getpid(),
        }

    def status_line(self) -> str:
        state = self.machine.state.value
        return (f"{state} on {self.source.description} for {', '.join(self.p.engine.names)}; "
                f"{self.saved} saved")


def run(config: Config, runtime_dir: Path | None, state_dir: Path,
        wait_for_device: bool = False,
        reload_config: Callable[[], Config] | None = None, dry_run: bool = False) -> int:
    """Load everything (errors exit 2 before any audio), then run until EOF or a signal.

    A live source (microphone, stdin) obeys the mute switch and serves the control socket in
    `runtime_dir`; a file source does so only when `runtime_dir` is given.
    """
    flags = Flags()
    flags.install()
    pipeline = build_pipeline(config, dry_run=dry_run)
    source = open_source(config.audio.source, config.audio.realtime, wait_for_device, config.audio)
    mute = MuteSwitch(state_dir)
    if source.live:
        mute.prepare()
    muted = source.live and mute.is_muted()
    machine = Machine(machine_settings(config, pipeline.engine.names), muted=muted)
    daemon = Daemon(pipeline, source, machine, flags, mute, reload_config=reload_config,
                    dry_run=dry_run)
    if runtime_dir is None and source.live:
        runtime_dir = default_runtime_dir()
    server = ControlServer(runtime_dir, daemon.control) if runtime_dir else None
    log.info("listening on %s for %s (recordings in %s)%s", source.description,
             ", ".join(pipeline.engine.names), pipeline.storage.directory,
             " (muted)" if muted else "")
    try:
        daemon.run()
    finally:
        if server:
            server.close()
        source.close()
        if daemon.p.chime is not None:
            daemon.p.chime.close()
    log.info("stopped: %d recording(s) %s", daemon.saved,
             "would have been saved (dry run)" if dry_run else "saved")
    return 0
