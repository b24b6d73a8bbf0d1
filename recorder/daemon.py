"""Wiring: source -> engine + VAD -> machine -> events -> storage, indicator, log.

The loop is plain and synchronous. Signal handlers only set flags and the control-socket
thread only queues mute requests; the loop acts on them between frames, hands each frame and
each of the machine's events to one ordered list of handlers (`recorder.handlers`), and
shutdown runs one path whatever the reason.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recorder import records, threads
from recorder.audio import Frame
from recorder.audit import AuditLog
from recorder.config import Config
from recorder.control import ControlServer, Peer
from recorder.dirs import default_runtime_dir
from recorder.errors import RecorderError
from recorder.handlers import FrameObserver, HandlerSet
from recorder.indicators import Devices
from recorder.indicators.command import check_command
from recorder.journal import Journal
from recorder.machine import EndReason, Event, Machine
from recorder.monitor_feed import MonitorFeed
from recorder.mute import MuteRequests, MuteSwitch
from recorder.notify import Notifier
from recorder.pipeline import (
    Pipeline,
    build_machine,
    build_pipeline,
    reloaded,
    settings_for,
)
from recorder.sources import DeviceLost, DeviceRestored, Source, open_source
from recorder.vitals import Vitals

if TYPE_CHECKING:  # a daemon without a hand-off starts without its module
    from recorder.handoff import Handoff

log = logging.getLogger("recorder")

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
class ControlCommands:
    """The control socket's commands, run on its thread: mute and unmute go to the loop
    through `MuteRequests`, and each reply carries the status."""

    muting: MuteRequests
    status: Callable[[], dict[str, Any]]
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, command: str, peer: Peer | None = None) -> dict[str, Any]:
        with self._lock:
            if command in ("mute", "unmute"):
                error = self.muting.ask(command == "mute", None if peer is None else peer.uid)
                if error is not None:
                    return {"ok": False, "error": error}
                return {"ok": True, **self.status()}
            if command == "status":
                return {"ok": True, **self.status()}
            return {"ok": False, "error": f"unknown command {command!r}"}


@dataclass
class Daemon:
    """The loop: frames from the source through the pipeline to the handlers, and between
    frames the thread watch, the signs of life, mute and a pending reload."""

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
    handoff: Handoff | None = None
    """The post-save command and the transcriber (a journal sink), when configured."""
    vitals: Vitals = field(default_factory=Vitals)
    fault: str | None = None
    """Set when a watched thread died; the loop then stops with the indicator at error."""
    server: ControlServer | None = None  # the control socket, when served

    def __post_init__(self) -> None:
        self.muting = MuteRequests(self.mute, self.machine.muted)
        self.handlers = HandlerSet(
            self.journal,
            self.observers,
            self.dry_run,
            counted=self.vitals.count_saved,
            written=lambda: self.notifier.send(f"STATUS={self.status_line()}"),
        )
        self._wire()
        self.control = ControlCommands(self.muting, self.status)
        """The control socket's commands (run on its thread)."""

    @property
    def saved(self) -> int:
        return self.vitals.saved

    def run(self) -> None:
        self.vitals.started_at = datetime.now(UTC)
        if self.source.closable and self.machine.muted:
            self.source.set_closed(True)  # started muted: released before the first state
        self.set_activations()
        if self.handlers.calibrate is None:
            self.set_calibration()
        self._wire()
        started = False
        for item in self.source.frames(self.flags.should_stop):
            if not started:  # announce the first state once the source has said how it is
                started = True
                self._start(lost=isinstance(item, DeviceLost))
            if isinstance(item, Frame):
                self.step(item)
                self.vitals.audio()
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
        self._stop()

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
        self.handlers.enforce_retention()
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")

    def _stop(self) -> None:
        self.notifier.send("STOPPING=1", "STATUS=stopping")
        reason = EndReason.SHUTDOWN if self.flags.should_stop() else EndReason.EOF
        if self.fault is None:  # after a fault the indicator stays at error
            self.dispatch(self.machine.finish(reason))
        if self.handoff:  # what it still does is published before `stopped`
            self.handoff.close(wait_s=HANDOFF_STOP_S if self.flags.should_stop() else None)
        self.journal.publish(
            records.Stopped(reason="fault" if self.fault else reason.value, saved=self.saved)
        )
        self.handlers.close()

    def step(self, frame: Frame) -> None:
        analysis = self.p.step(self.machine, frame)
        if analysis is None:
            return  # muted audio is dropped without being analysed
        self.handlers.on_frame(analysis.frame or frame, analysis, self.machine.state)
        self.dispatch(analysis.events)

    def dispatch(self, events: list[Event]) -> None:
        """Hand events to the handlers, in order. A handler returns its failure; it is
        reported to the machine once the batch is done, so the states shown stay in order."""
        failure = self.handlers.on_events(events)
        if failure:
            self.dispatch(self.machine.fail(failure))

    def _wire(self) -> None:
        thresholds = self.machine.settings.thresholds
        self.handlers.wire(self.p, self.source, thresholds, self.vitals.started_at, self.handoff)

    def set_activations(self) -> None:
        self.handlers.set_activations(self.p, self.source.description, self.vitals.started_at)

    def set_calibration(self) -> None:
        thresholds = self.machine.settings.thresholds
        self.handlers.set_calibration(self.p, thresholds, self.mute.state_dir)

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
        self.vitals.heartbeat(self.p)
        self.vitals.watchdog(self.notifier)
        self._apply_mute()
        if self.flags.reload and not self.machine.recording:
            self.flags.reload = False
            self.reload()

    def _apply_mute(self) -> None:
        """Bring the machine (and a closable source) to the mute state MuteControl decides."""
        step = self.muting.next_step(
            muted=self.machine.muted, closable=self.source.closable, closed=self.source.closed
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
        self.journal.publish(
            record(uid=change.uid, switch=change.by_switch, button=change.by_button)
        )
        self.notifier.send(f"STATUS={self.status_line()}")

    def reload(self) -> None:
        if self.reload_config is None:
            return
        pipeline = reloaded(self.reload_config, self.p, self.dry_run, self.devices)
        if pipeline is None:
            return
        previous, self.p = self.p, pipeline
        if previous.chime is not None:
            previous.chime.close(wait_s=None)  # what it still plays finishes in the background
        self.machine.reconfigure(settings_for(pipeline.config, pipeline.engine))
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
        self.handlers.enforce_retention()

    def status(self) -> dict[str, Any]:
        muted, state = self.muting.shown_muted(), self.machine.state
        return self.vitals.status(state, muted, self.p, self.source, self.fault, self.handoff)

    def status_line(self) -> str:
        return self.vitals.status_line(self.machine.state, self.p, self.source)


@dataclass(frozen=True)
class Service:
    """What `recorder run` adds to a daemon: the state directory (the audit log), the control
    socket's directory (None: the default one, served for a live source only), and whether a
    file source obeys the mute switch."""

    state_dir: Path
    runtime_dir: Path | None = None
    obey_mute: bool = False


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
    service: Service | None = None,
) -> Daemon:
    """The whole daemon for one source, for every command that runs one: the pipeline (unless
    given), a machine muted as the switch says (for a live source, or any when the service obeys
    the switch), the daemon that runs them and, for a service, what it has besides (`_attach`).
    """
    devices = devices or Devices()
    pipeline = pipeline or build_pipeline(config, dry_run=dry_run, devices=devices)
    obey_mute = service is not None and service.obey_mute
    muted = (source.live or obey_mute) and mute.is_muted()
    daemon = Daemon(
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
    if service is not None:
        _attach(daemon, config, service)
    return daemon


def _attach(daemon: Daemon, config: Config, service: Service) -> None:
    """What a daemon run as a service has besides its pipeline: the mute switch and button, the
    calibration, the audit log, the control socket (when served) and the hand-off."""
    daemon.muting.attach(config.indicator.mute_switch, config.indicator.mute_button)
    daemon.set_calibration()  # a bad counters file stops the start here, before any audio
    audit = AuditLog(service.state_dir)
    audit.prepare()  # a state directory others can write to, or none can, stops the start
    daemon.journal.subscribe(audit.sink, gate=True)  # no request is kept without its line
    runtime_dir = service.runtime_dir
    if runtime_dir is None and daemon.source.live:
        runtime_dir = default_runtime_dir()
    if runtime_dir:  # `monitor` subscribers get the frames from the feed, a frame observer
        feed = MonitorFeed(lambda: daemon.machine.settings.thresholds)
        daemon.server = ControlServer(
            runtime_dir, daemon.control, daemon.journal, config.control.group, feed
        )
        daemon.observers.append(feed)
    if not daemon.dry_run and (config.handoff.command or config.handoff.wyoming):
        from recorder.handoff import Handoff

        daemon.handoff = Handoff(config, daemon.journal, daemon.p.storage)
        daemon.journal.subscribe(daemon.handoff.sink)


def _check_at_start(config: Config) -> None:
    """The hand-off's and the indicator's commands, the Wyoming package, the control group: the
    hand-off's module is imported only when one of what it checks is configured."""
    if config.handoff.command or config.handoff.wyoming or config.control.group:
        from recorder.handoff import check_at_start

        check_at_start(config)
    if config.indicator.command:
        check_command(config.indicator.command)


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
    _check_at_start(config)
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
        service=Service(
            state_dir, runtime_dir, obey_mute=runtime_dir is not None or explicit_state_dir
        ),
    )
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
        _release(daemon)
    log.info(
        "stopped: %d recording(s) %s",
        daemon.saved,
        "would have been saved (dry run)" if dry_run else "saved",
    )
    return EXIT_THREAD_DIED if daemon.fault else 0


def _release(daemon: Daemon) -> None:
    """After the loop, whatever ended it: the socket, the source, the chime, the devices."""
    if daemon.server:
        daemon.server.close()
    daemon.source.close()
    if daemon.p.chime is not None:
        daemon.p.chime.close()
    daemon.devices.close_all()
    daemon.muting.close()
