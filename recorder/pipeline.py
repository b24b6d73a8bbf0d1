"""The one pipeline: source -> engine + VAD -> machine -> events -> storage, indicator, chime.

Everything that runs the recorder's ears builds them here and steps them with `step`: the
daemon (`run`, `monitor`, `--dry-run`), and `score` / `tune`, so the tools cannot drift from
what the daemon detects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recorder import digest, models
from recorder.audio import Frame, s_to_frames
from recorder.config import DEFAULT_THRESHOLD, Config
from recorder.dirs import default_cache_dir
from recorder.echo import EchoStage, canceller
from recorder.endpoint import JUDGED_AGGRESSIVENESS, Endpointer
from recorder.engines import OpenWakeWordEngine, WakeEngine, graph_cache
from recorder.engines.composite import CompositeEngine
from recorder.errors import RecorderError
from recorder.indicators import Devices, Indicator, build_indicators
from recorder.machine import Event, Machine, MachineSettings, State, WakeDetected
from recorder.residual import ResidualEcho
from recorder.seal import sealer_for
from recorder.storage import Storage
from recorder.vad import WebRtcVad, gate_vad
from recorder.verifier import WINDOW, Verifier
from recorder.verifier import apply as apply_verifiers
from recorder.verifier import load as load_verifier

if TYPE_CHECKING:
    from recorder.indicators.chime import ChimePlayer

log = logging.getLogger("recorder")


def thresholds(config: Config, engine: WakeEngine) -> dict[str, float]:
    """Every score name's threshold: per-model setting, [wake] threshold, the model's own."""
    return _thresholds(config, engine.names, engine.default_thresholds)


def _thresholds(config: Config, names: Iterable[str], own: Mapping[str, float]) -> dict[str, float]:
    return {n: config.wake.threshold_for(n, own.get(n, DEFAULT_THRESHOLD)) for n in names}


def machine_settings(
    config: Config, names: Iterable[str], model_defaults: Mapping[str, float] | None = None
) -> MachineSettings:
    w, v = config.wake, config.vad
    names = list(names)
    return MachineSettings(
        thresholds=_thresholds(config, names, model_defaults or {}),
        patience_frames={n: w.patience_for(n) for n in names},
        refractory_frames=s_to_frames(w.refractory_s),
        lookback_frames=s_to_frames(v.lookback_s),
        min_speech_frames=max(1, s_to_frames(v.min_speech_s)),
        silence_frames=max(1, s_to_frames(v.silence_s)),
        pause_frames=max(1, s_to_frames(v.pause_s)),
        no_speech_timeout_frames=max(1, s_to_frames(v.no_speech_timeout_s)),
        max_length_frames=max(1, s_to_frames(v.max_length_s)),
    )


@dataclass(frozen=True)
class ResolvedModels:
    manifest: models.Manifest
    oww: list[models.WakeModelSpec]
    micro: list[models.MicroModelSpec]


def resolve_models(config: Config) -> ResolvedModels:
    """The wake-word models of `[wake]`, of either kind, every file's hash verified."""
    manifest = models.load_manifest(
        config.path(config.wake.models_dir) if config.wake.models_dir else None
    )
    if not all(models.is_micro(manifest, m) for m in config.wake.models):
        # the shared feature models first: without them no openWakeWord model runs
        models.verify_installed(manifest, list(manifest.features.values()))
    oww, micro = [], []
    for m in config.wake.models:
        if models.is_micro(manifest, m):
            micro.append(models.resolve_micro_model(manifest, m))
        else:
            oww.append(models.resolve_wake_model(manifest, m))
    return ResolvedModels(manifest, oww, micro)


def build_engine(config: Config) -> WakeEngine:
    """The wake-word models of `[wake]`, verified: openWakeWord's on one feature pipeline,
    microWakeWord's on another, both on the same audio when both kinds are asked for. The
    cache directory keeps the built graph, and the hashes of the model files verified (an
    unchanged file is not read again at the next start)."""
    cache = graph_cache.usable(default_cache_dir())
    digest.keep_in(cache)
    resolved = resolve_models(config)
    manifest = resolved.manifest
    engines: list[WakeEngine] = []
    if resolved.oww:
        engines.append(
            OpenWakeWordEngine(
                manifest.path(manifest.features["melspectrogram"]),
                manifest.path(manifest.features["embedding"]),
                resolved.oww,
                new_gate=gate_vad if config.wake.gate else None,
                cache=cache,
            )
        )
    if resolved.micro:
        from recorder.engines.micro import MicroEngine  # only a micro model needs its runtime

        engines.append(MicroEngine(resolved.micro))
    return engines[0] if len(engines) == 1 else CompositeEngine(engines)


def build_vad(config: Config) -> Endpointer:
    v = config.vad
    return Endpointer(
        WebRtcVad(v.aggressiveness),
        WebRtcVad(JUDGED_AGGRESSIVENESS),
        talker_range_db=v.talker_range_db if v.judge_room else None,
        margin_db=v.room_margin_db,
        residual=ResidualEcho() if config.audio.reference_channel is not None else None,
    )


def settings_for(config: Config, engine: WakeEngine) -> MachineSettings:
    """The machine's settings for a configuration and the engine that runs its models."""
    return machine_settings(config, engine.names, engine.default_thresholds)


def build_machine(config: Config, engine: WakeEngine, muted: bool = False) -> Machine:
    return Machine(settings_for(config, engine), muted=muted)


@dataclass(frozen=True)
class Analysis:
    """One analysed frame: every model's score, the VAD's decision and the machine's events."""

    scores: Mapping[str, float]
    speech: bool
    events: list[Event]
    frame: Frame | None = None
    """The frame as the ears heard it: with a playback reference, the echo-cancelled one."""


def step(
    machine: Machine,
    engine: WakeEngine,
    vad: Endpointer,
    frame: Frame,
    verifiers: Mapping[str, Verifier] | None = None,
    echo: EchoStage | None = None,
) -> Analysis | None:
    """The per-frame step. None while muted or stopped: that audio is dropped unanalysed.
    A frame with a playback reference goes through `echo` first (without one, the reference
    is dropped: see `reloaded`)."""
    if machine.state in (State.MUTED, State.OFF):
        return None
    played = reference = None
    if frame.reference is not None:
        reference = frame.reference if echo else None
        frame, played = echo.process(frame) if echo else (Frame(frame.index, frame.samples), None)
    scores = engine.process(frame.samples)
    recent = engine.embeddings
    if verifiers and recent is not None:
        scores = apply_verifiers(
            scores, lambda: recent(WINDOW), verifiers, machine.settings.thresholds
        )
    speech = vad.is_speech(frame.samples, reference)
    events = machine.step(frame, scores, speech, played)
    for event in events:
        if isinstance(event, WakeDetected):
            start = frame.index if event.start_frame is None else event.start_frame
            vad.wake(frame.index + 1 - start)
    if not machine.recording:
        vad.release()
    return Analysis(scores, speech, events, frame)


@dataclass
class Pipeline:
    """Everything a configuration decides; swapped whole on a reload."""

    config: Config
    engine: WakeEngine
    vad: Endpointer
    storage: Storage
    indicator: Indicator
    chime: ChimePlayer | None = None
    verifiers: dict[str, Verifier] = field(default_factory=dict)
    echo: EchoStage | None = None
    """`[audio] reference_channel`: the echo canceller and the playback's wake-word scores."""

    def step(self, machine: Machine, frame: Frame) -> Analysis | None:
        """`step` with this pipeline's engine, VAD, verifiers and echo stage."""
        return step(machine, self.engine, self.vad, frame, self.verifiers, self.echo)


def build_chime(config: Config) -> ChimePlayer | None:
    """The chime player, when a sound is configured (its module is imported only then)."""
    if not (config.indicator.awake_sound or config.indicator.done_sound):
        return None
    from recorder.indicators import chime

    return chime.build(config)


def build_verifiers(config: Config, engine: WakeEngine) -> dict[str, Verifier]:
    """`[wake.per_model.NAME] verifier` files, each checked to be trained for its model.
    A verifier reads openWakeWord's embeddings, so only openWakeWord models take one."""
    out = {}
    for name in engine.names:
        value = config.wake.verifier_for(name)
        if value:
            if not engine.takes_verifier(name):
                raise RecorderError(
                    f"[wake.per_model.{name}] verifier: only openWakeWord models take a verifier"
                )
            v = load_verifier(config.path(value))
            if v.model != name:
                raise RecorderError(
                    f"[wake.per_model.{name}] verifier {value}: trained for "
                    f"{v.model!r}, not {name!r}"
                )
            out[name] = v
    return out


def build_pipeline(
    config: Config,
    engine: WakeEngine | None = None,
    dry_run: bool = False,
    devices: Devices | None = None,
) -> Pipeline:
    """`engine`: reuse a loaded one (a reload with the same models). `devices`: the Pi lights
    owned so far (a reload takes them over); a dry run creates no recordings directory."""
    a = config.audio  # a canceller that cannot load is refused before any directory is made
    echo = canceller(a.echo_canceller) if a.reference_channel is not None else None
    storage = Storage(
        config.path(config.storage.directory),
        sealer_for(config.storage.encrypt_to, config.base_dir),
    )
    if not dry_run:
        storage.prepare()
    player = build_chime(config)
    engine = engine or build_engine(config)
    verifiers = build_verifiers(config, engine)
    # The indicator last: it takes over the lights of the configuration it replaces.
    return Pipeline(
        config,
        engine,
        build_vad(config),
        storage,
        build_indicators(config, devices or Devices()),
        player,
        verifiers,
        EchoStage(echo, build_engine(config)) if echo is not None else None,
    )


def reloaded(
    load: Callable[[], Config], running: Pipeline, dry_run: bool, devices: Devices
) -> Pipeline | None:
    """The pipeline of the configuration `load` reads now, with the running engine kept when
    the models are the same; None (logged) when that configuration is refused."""
    try:
        config = load()
        w, was = config.wake, running.config.wake
        same_engine = (w.models, w.models_dir, w.gate) == (was.models, was.models_dir, was.gate)
        pipeline = build_pipeline(config, running.engine if same_engine else None, dry_run, devices)
        # the echo stage is bound to the source, which [audio] opened at the start
        pipeline.echo = running.echo and running.echo.with_engine(
            running.echo.reference_engine if same_engine else build_engine(config)
        )
    except RecorderError as e:
        log.error("reload refused, keeping the running configuration: %s", e)
        return None
    if config.audio != running.config.audio:
        log.warning("a changed [audio] section takes effect at the next start")
    if (config.handoff, config.control) != (running.config.handoff, running.config.control):
        log.warning("a changed [handoff] or [control] section takes effect at the next start")
    return pipeline
