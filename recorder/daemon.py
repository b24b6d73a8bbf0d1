"""Wiring: source -> engine + VAD -> machine -> events -> storage, indicator, log.

The loop is plain and synchronous. Signal handlers only set flags and the control-socket
thread only queues mute requests; the loop acts on them between frames, hands each frame and
each of the machine's events to one ordered list of handlers (`recorder.handlers`), and
shutdown runs one path whatever the reason.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recorder import records, threads
from recorder.activations import ActivationSaver
from recorder.audio import Frame, frames_to_s
from recorder.audit import AuditLog
from recorder.config import Config
from recorder.control import ControlServer, Peer, default_runtime_dir
from recorder.errors import RecorderError
from recorder.handlers import (
    Calibrate,
    FrameObserver,
    Handler,
    JournalEvents,
    LogEvents,
    ObserveFrames,
    SaveActivations,
    SaveRequests,
    ShowState,
    handle,
)
from recorder.handoff import Handoff, check_at_start
from recorder.indicators import Devices
from recorder.journal import Journal
from recorder.machine import EndReason, Event, Machine, State
from recorder.mute import MuteButton, MuteControl, MuteSwitch
from recorder.notify import Notifier
from recorder.pipeline import (
    Pipeline,
    build_machine,
    build_pipeline,
    machine_settings,
    step,
)
from recorder.recording import utc_iso
from recorder.sources import DeviceLost, DeviceRestored, Source, open_source
from recorder.storage import Storage

log = logging.getLogger("recorder")

HEARTBEAT_S = 10.0
EXIT_THREAD_DIED = 1
"""A thread the daemon depends on died: exit so that the service manager restarts it."""
HANDOFF_STOP_S = 3.0
"""On a stop signal, the hand-off's queue gets this long (the service's TimeoutStopSec is 5 s);
at the end of a file source it gets what its timeouts allow."""


class Flags:
    """Set from signal handlers; read by the loop between frames."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None
        self.reload = False

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
class Daemon:
    p: Pipeline
    source: Source
    machine: Machine
    flags: Flags
    mute: MuteSwitch
    devices: Devices = field(default_factory=Devices)
    notifier: Notifier = field(default_factory=Notifier)
    reload_config: Callable[[], Config] | None = None
    dry_run: bool = False
    observers: list[FrameObserver] = field(default_factory=list)
    journal: Journal = field(default_factory=Journal)
    """What the daemon did, for the event stream, the audit log and the hand-off."""
    activations: ActivationSaver | None = None
    handoff: Handoff | None = None
    """The post-save command and the transcriber (a journal sink), when configured."""
    calibrate: Calibrate | None = None
    """`[wake] calibrate`: the counters and near misses, a handler."""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    saved: int = 0
    frames_seen: int = 0
    last_audio_at: float | None = None
    """Wall-clock time of the last frame from the source (None: none yet)."""
    _last_heartbeat: float = 0.0
    fault: str | None = None
    """Set when a watched thread died; the loop then stops with the indicator at error."""
    _last_watchdog: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    mute_button: MuteButton | None = None
    """A physical switch that forces mute while it is on."""
    mute_requests: queue.SimpleQueue[tuple[bool, int | None]] = field(
        default_factory=queue.SimpleQueue
    )
    """(muted, uid) from the control thread, taken by the loop between frames."""

    def __post_init__(self) -> None:
        self.mutes = MuteControl(self.machine.muted)
        self.handlers: list[Handler] = []
        self._wire()

    def run(self) -> None:
        self.started_at = datetime.now(UTC)
        if self.source.closable and self.machine.muted:
            self.source.set_closed(True)  # started muted: released before the first state
        self.set_activations()
        if self.calibrate is None:
            self.set_calibration()
        self._wire()
        started = False
        for item in self.source.frames(self.flags.should_stop):
            if not started:  # announce the first state once the source has said how it is
                started = True
                self._start(lost=isinstance(item, DeviceLost))
            if isinstance(item, Frame):
                self.step(item)
                self.frames_seen += 1
                self.last_audio_at = time.time()
            elif isinstance(item, DeviceLost):
                self.journal.publish(records.DeviceLost(reason=item.reason))
                self.dispatch(self.machine.device_lost())
                self.notifier.send(f"STATUS=audio source lost ({item.reason}); retrying")
            elif isinstance(item, DeviceRestored):
                self.p.engine.reset()  # the audio before the gap is not context for what follows
                self.journal.publish(records.DeviceRestored())
                self.dispatch(self.machine.device_restored())
                self.notifier.send(f"STATUS={self.status_line()}")
            self.tick()
            if self.flags.should_stop() or self.fault:
                break
        if not started:
            self._start(lost=False)
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        reason = EndReason.SHUTDOWN if self.flags.should_stop() else EndReason.EOF
        if self.fault is None:  # after a fault the indicator stays at error
            self.dispatch(self.machine.finish(reason))
        if self.handoff:  # what it still does is published before `stopped`
            self.handoff.close(wait_s=HANDOFF_STOP_S if self.flags.should_stop() else None)
        self.journal.publish(
            records.Stopped(reason="fault" if self.fault else reason.value, saved=self.saved)
        )
        if self.activations:
            self.activations.flush()
        if self.calibrate:
            self.calibrate.close()

    def _start(self, lost: bool) -> None:
        if lost:
            self.machine.device_lost()  # before start(): the first state shown is then error
        self.journal.publish(
            records.Started(
                source=self.source.description,
                models=tuple(self.p.engine.names),
                pid=os.getpid(),
                muted=self.machine.muted,
            )
        )
        self.dispatch(self.machine.start())
        self.enforce_retention()
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")

    def step(self, frame: Frame) -> None:
        analysis = step(self.machine, self.p.engine, self.p.vad, frame, self.p.verifiers)
        if analysis is None:
            return  # muted audio is dropped without being analysed
        for h in self.handlers:
            h.on_frame(frame, analysis, self.machine.state)
        self.dispatch(analysis.events)

    def _wire(self) -> None:
        """The handlers, in their order, for the pipeline, activations and calibration now."""
        thresholds = self.machine.settings.thresholds
        activations = [SaveActivations(self.activations, thresholds)] if self.activations else []
        self.saving = SaveRequests(
            self.p,
            self.source,
            thresholds,
            self.started_at,
            self.journal,
            self.handoff,
            self.dry_run,
            counted=self._count_saved,
            written=self._after_write,
        )
        self.handlers = [
            LogEvents(),
            JournalEvents(self.journal),
            *activations,
            ObserveFrames(self.observers),
            ShowState(self.p),
            self.saving,
            *([self.calibrate] if self.calibrate else []),
        ]

    def _count_saved(self) -> None:
        self.saved += 1

    def _after_write(self) -> None:
        self.notifier.send(f"STATUS={self.status_line()}")

    def set_activations(self) -> None:
        """Start (or stop) saving activations as the configuration says."""
        directory = self.p.config.wake.save_activations
        if not directory or self.dry_run:
            self.activations = None
            return
        storage = Storage(self.p.config.path(directory), self.p.storage.sealer)  # sealed too
        storage.prepare()
        self.activations = ActivationSaver(storage, self.source.description, self.started_at)

    def set_calibration(self) -> None:
        """Start, restart (new settings) or stop calibrating as the configuration says; the
        counts so far are written first and read back."""
        if self.calibrate is not None:
            self.calibrate.close()
            self.calibrate = None
        self.calibrate = Calibrate.for_config(
            self.p.config, self.p.engine, self.machine.settings.thresholds, self.mute.state_dir
        )

    def tick(self) -> None:
        """Between frames: dead threads, heartbeat, watchdog, mute requests, a pending reload."""
        failure = threads.WATCH.failure()
        if failure is not None and self.fault is None:
            self.fault = str(failure)
            log.error(
                "%s; stopping (exit status %d) so that the daemon is restarted",
                failure,
                EXIT_THREAD_DIED,
            )
            self.notifier.send(f"STATUS=failed: {failure}")
            self.dispatch(self.machine.fail(self.fault))  # drops a request, shows error
            return
        self._heartbeat()
        if self.notifier.watchdog_interval_s is not None:
            now = time.monotonic()
            if now - self._last_watchdog >= self.notifier.watchdog_interval_s:
                self.notifier.send("WATCHDOG=1")
                self._last_watchdog = now
        self._apply_mute()
        if self.flags.reload and not self.machine.recording:
            self.flags.reload = False
            self.reload()

    def _switch_on(self) -> bool:
        return self.mute_button is not None and self.mute_button.is_on()

    def _apply_mute(self) -> None:
        """Bring the machine (and a closable source) to the mute state MuteControl decides."""
        while not self.mute_requests.empty():
            self.mutes.request(*self.mute_requests.get_nowait())
        step = self.mutes.step(
            muted=self.machine.muted,
            forced=self._switch_on(),
            closable=self.source.closable,
            closed=self.source.closed,
        )
        if step is None:
            return
        if step.close_device is not None:
            self.source.set_closed(step.close_device)
        change = step.change
        if change is None:
            return  # shown as muted once the device is released
        self.p.engine.reset()
        self.dispatch(self.machine.set_muted(change.muted))
        record = records.Muted if change.muted else records.Unmuted
        self.journal.publish(record(uid=change.uid, switch=change.by_switch))
        self.notifier.send(f"STATUS={self.status_line()}")

    def reload(self) -> None:
        if self.reload_config is None:
            return
        try:
            config = self.reload_config()
            w, was = config.wake, self.p.config.wake
            same_engine = (w.models, w.models_dir, w.gate) == (was.models, was.models_dir, was.gate)
            pipeline = build_pipeline(
                config, self.p.engine if same_engine else None, self.dry_run, self.devices
            )
        except RecorderError as e:
            log.error("reload refused, keeping the running configuration: %s", e)
            return
        if config.audio != self.p.config.audio:
            log.warning("a changed [audio] section takes effect at the next start")
        if (config.handoff, config.control) != (self.p.config.handoff, self.p.config.control):
            log.warning("a changed [handoff] or [control] section takes effect at the next start")
        previous, self.p = self.p, pipeline
        if previous.chime is not None:
            previous.chime.close(wait_s=None)  # what it still plays finishes in the background
        self.machine.reconfigure(
            machine_settings(config, pipeline.engine.names, pipeline.engine.default_thresholds)
        )
        try:
            self.set_activations()
        except RecorderError as e:
            log.error("activations: %s", e)
        try:
            self.set_calibration()
        except RecorderError as e:
            log.error("calibration: %s", e)
        self._wire()
        log.info("configuration reloaded")
        self.journal.publish(records.Reloaded())
        self.enforce_retention()

    def dispatch(self, events: list[Event]) -> None:
        """Hand events to the handlers, in order. A handler returns its failure; it is
        reported to the machine once the batch is done, so the states shown stay in order."""
        failure = handle(self.handlers, events)
        if failure:
            self.dispatch(self.machine.fail(failure))

    def enforce_retention(self) -> None:
        self.saving.enforce_retention()

    # --- the control socket (runs on its thread) -----------------------------------------
    def control(self, command: str, peer: Peer | None = None) -> dict[str, Any]:
        with self._lock:
            if command in ("mute", "unmute"):
                muted = command == "mute"
                refusal = MuteControl.refusal(muted, forced=self._switch_on())
                if refusal is not None:
                    return {"ok": False, "error": refusal}
                try:
                    self.mute.set(muted)
                except RecorderError as e:
                    return {"ok": False, "error": str(e)}
                self.mute_requests.put((muted, None if peer is None else peer.uid))
                return {"ok": True, **self.status()}
            if command == "status":
                return {"ok": True, **self.status()}
            return {"ok": False, "error": f"unknown command {command!r}"}

    def _heartbeat(self) -> None:
        """While audio arrives, the state file's modification time is refreshed every
        HEARTBEAT_S: a state file older than that means no audio (or no daemon)."""
        state_file = self.p.config.indicator.state_file
        if (
            not state_file
            or self.last_audio_at is None
            or self.last_audio_at - self._last_heartbeat < HEARTBEAT_S
        ):
            return
        self._last_heartbeat = self.last_audio_at
        with contextlib.suppress(OSError):  # a state file that fails shows at the next change
            os.utime(self.p.config.path(state_file))

    def status(self) -> dict[str, Any]:
        muted = MuteControl.shown_muted(self.mute.is_muted(), forced=self._switch_on())
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
            "last_audio_at": (
                None
                if self.last_audio_at is None
                else utc_iso(datetime.fromtimestamp(self.last_audio_at, UTC))
            ),
            "last_audio_s_ago": (
                None if self.last_audio_at is None else round(time.time() - self.last_audio_at, 1)
            ),
            **({"fault": self.fault} if self.fault else {}),
            **({"handoff": self.handoff.status()} if self.handoff else {}),
        }

    def status_line(self) -> str:
        state = self.machine.state.value
        return (
            f"{state} on {self.source.description} for {', '.join(self.p.engine.names)}; "
            f"{self.saved} saved"
        )


def build_daemon(
    config: Config,
    source: Source,
    mute: MuteSwitch,
    *,
    pipeline: Pipeline | None = None,
    flags: Flags | None = None,
    dry_run: bool = False,
    reload_config: Callable[[], Config] | None = None,
    observers: list[FrameObserver] | None = None,
    devices: Devices | None = None,
    obey_mute: bool = False,
) -> Daemon:
    """The whole wiring for one source: the pipeline (unless given), a machine muted as the
    switch says (for a live source, or any when `obey_mute`), and the daemon that runs them."""
    devices = devices or Devices()
    pipeline = pipeline or build_pipeline(config, dry_run=dry_run, devices=devices)
    muted = (source.live or obey_mute) and mute.is_muted()
    return Daemon(
        pipeline,
        source,
        build_machine(config, pipeline.engine, muted),
        flags or Flags(),
        mute,
        devices=devices,
        reload_config=reload_config,
        dry_run=dry_run,
        observers=list(observers or []),
    )


def run(
    config: Config,
    runtime_dir: Path | None,
    state_dir: Path,
    wait_for_device: bool = False,
    reload_config: Callable[[], Config] | None = None,
    dry_run: bool = False,
    observers: list[FrameObserver] | None = None,
    explicit_state_dir: bool = False,
) -> int:
    """Load everything (errors exit 2 before any audio), then run until EOF or a signal.

    A live source (microphone, stdin) obeys the mute switch and serves the control socket in
    `runtime_dir`; a file source does so only when `runtime_dir` is given, and obeys the
    switch when `runtime_dir` or an explicit state directory is given.
    """
    threads.WATCH.clear()
    check_at_start(config)
    flags = Flags()
    flags.install()
    devices = Devices()
    pipeline = build_pipeline(config, dry_run=dry_run, devices=devices)
    source = open_source(config.audio.source, config.audio.realtime, wait_for_device, config.audio)
    mute = MuteSwitch(state_dir)
    if source.live:
        mute.prepare()
    daemon = build_daemon(
        config,
        source,
        mute,
        pipeline=pipeline,
        flags=flags,
        dry_run=dry_run,
        reload_config=reload_config,
        observers=observers,
        devices=devices,
        obey_mute=runtime_dir is not None or explicit_state_dir,
    )
    server = _attach(daemon, config, runtime_dir, state_dir)
    log.info(
        "listening on %s for %s (recordings in %s)%s",
        source.description,
        ", ".join(pipeline.engine.names),
        pipeline.storage.directory,
        " (muted)" if daemon.machine.muted else "",
    )
    try:
        daemon.run()
    finally:
        _release(daemon, server)
    log.info(
        "stopped: %d recording(s) %s",
        daemon.saved,
        "would have been saved (dry run)" if dry_run else "saved",
    )
    return EXIT_THREAD_DIED if daemon.fault else 0


def _attach(
    daemon: Daemon, config: Config, runtime_dir: Path | None, state_dir: Path
) -> ControlServer | None:
    """What a running daemon has besides its pipeline: the mute switch, the calibration, the
    audit log, the control socket (returned, when served) and the hand-off."""
    if config.indicator.mute_switch is not None:
        daemon.mute_button = MuteButton(config.indicator.mute_switch)
    daemon.set_calibration()  # a bad counters file stops the start here, before any audio
    daemon.journal.subscribe(AuditLog(state_dir).sink)
    if runtime_dir is None and daemon.source.live:
        runtime_dir = default_runtime_dir()
    server = (
        ControlServer(
            runtime_dir, daemon.control, journal=daemon.journal, group=config.control.group
        )
        if runtime_dir
        else None
    )
    if not daemon.dry_run and (config.handoff.command or config.handoff.wyoming):
        daemon.handoff = Handoff(config, daemon.journal, daemon.p.storage)
        daemon.journal.subscribe(daemon.handoff.sink)
    return server


def _release(daemon: Daemon, server: ControlServer | None) -> None:
    """After the loop, whatever ended it: the socket, the source, the chime, the devices."""
    if server:
        server.close()
    daemon.source.close()
    if daemon.p.chime is not None:
        daemon.p.chime.close()
    daemon.devices.close_all()
    if daemon.mute_button is not None:
        daemon.mute_button.close()
