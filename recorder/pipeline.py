"""The one pipeline: source -> engine + VAD -> machine -> events -> storage, indicator, chime.

Everything that runs the recorder's ears builds them here and steps them with `step`: the
daemon (`run`, `monitor`, `--dry-run`), and `score` / `tune`, so the tools cannot drift from
what the daemon detects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from recorder import models
from recorder.audio import Frame, s_to_frames
from recorder.config import Config
from recorder.engines import CompositeEngine, OpenWakeWordEngine, WakeEngine
from recorder.errors import RecorderError
from recorder.indicators import Devices, Indicator, build_indicators
from recorder.indicators.chime import ChimePlayer
from recorder.indicators.chime import build as build_chime
from recorder.machine import Event, Machine, MachineSettings, State
from recorder.seal import sealer_for
from recorder.storage import Storage
from recorder.vad import SpeechDetector, WebRtcVad, gate_vad
from recorder.verifier import WINDOW, Verifier
from recorder.verifier import apply as apply_verifiers
from recorder.verifier import load as load_verifier


def thresholds(
    config: Config, names: Iterable[str], defaults: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Each model's threshold: `[wake.per_model.NAME] threshold`, else the model's own default
    (`defaults`: a microWakeWord model's cutoff), else `[wake] threshold`."""
    w, defaults = config.wake, defaults or {}
    out = {}
    for n in names:
        o = w.per_model.get(n) or w.per_model.get(n.split(":")[0])
        own = o is not None and o.threshold is not None
        out[n] = w.threshold_for(n) if own or n not in defaults else defaults[n]
    return out


def engine_thresholds(config: Config, engine: WakeEngine) -> dict[str, float]:
    """`thresholds` for the models of `engine`, with the defaults it has."""
    return thresholds(config, engine.names, getattr(engine, "default_thresholds", None))


def machine_settings(
    config: Config, names: Iterable[str], defaults: Mapping[str, float] | None = None
) -> MachineSettings:
    """`defaults`: the thresholds of models that have their own (see `thresholds`)."""
    w, v = config.wake, config.vad
    names = list(names)
    return MachineSettings(
        thresholds=thresholds(config, names, defaults),
        patience_frames={n: w.patience_for(n) for n in names},
        refractory_frames=s_to_frames(w.refractory_s),
        lookback_frames=s_to_frames(v.lookback_s),
        min_speech_frames=max(1, s_to_frames(v.min_speech_s)),
        silence_frames=max(1, s_to_frames(v.silence_s)),
        no_speech_timeout_frames=max(1, s_to_frames(v.no_speech_timeout_s)),
        max_length_frames=max(1, s_to_frames(v.max_length_s)),
    )


def resolve_models(
    config: Config,
) -> tuple[models.Manifest, list[models.WakeModelSpec | models.MicroModelSpec]]:
    """The manifest and the wake-word models of `[wake]`, every file's hash verified (the
    feature models' only when an openWakeWord model is asked for)."""
    manifest = models.load_manifest(
        config.path(config.wake.models_dir) if config.wake.models_dir else None
    )
    specs = [models.resolve_wake_model(manifest, m) for m in config.wake.models]
    if any(isinstance(s, models.WakeModelSpec) for s in specs):
        models.verify_installed(manifest, list(manifest.features.values()))
    return manifest, specs


def build_engine(config: Config) -> WakeEngine:
    """The wake-word models of `[wake]`, verified: the openWakeWord models on one feature
    pipeline, the microWakeWord models on one frontend; both kinds: a composite of the two."""
    manifest, specs = resolve_models(config)
    oww_specs = [s for s in specs if isinstance(s, models.WakeModelSpec)]
    micro_specs = [s for s in specs if isinstance(s, models.MicroModelSpec)]
    engines: list[WakeEngine] = []
    if oww_specs:
        engines.append(
            OpenWakeWordEngine(
                manifest.path(manifest.features["melspectrogram"]),
                manifest.path(manifest.features["embedding"]),
                oww_specs,
                gate=gate_vad() if config.wake.gate else None,
            )
        )
    if micro_specs:
        from recorder.engines.micro import MicroWakeWordEngine

        engines.append(MicroWakeWordEngine(micro_specs))
    return engines[0] if len(engines) == 1 else CompositeEngine(engines)


def build_vad(config: Config) -> WebRtcVad:
    return WebRtcVad(config.vad.aggressiveness)


def build_machine(config: Config, engine: WakeEngine, muted: bool = False) -> Machine:
    settings = machine_settings(config, engine.names, getattr(engine, "default_thresholds", None))
    return Machine(settings, muted=muted)


@dataclass(frozen=True)
class Analysis:
    """One analysed frame: every model's score, the VAD's decision and the machine's events."""

    scores: Mapping[str, float]
    speech: bool
    events: list[Event]


def step(
    machine: Machine,
    engine: WakeEngine,
    vad: SpeechDetector,
    frame: Frame,
    verifiers: Mapping[str, Verifier] | None = None,
) -> Analysis | None:
    """The per-frame step. None while muted or stopped: that audio is dropped unanalysed."""
    if machine.state in (State.MUTED, State.OFF):
        return None
    scores = engine.process(frame.samples)
    recent = getattr(engine, "recent_embeddings", None)
    if verifiers and recent is not None:
        scores = apply_verifiers(
            scores, lambda: recent(WINDOW), verifiers, machine.settings.thresholds
        )
    speech = vad.is_speech(frame.samples)
    return Analysis(scores, speech, machine.step(frame, scores, speech))


@dataclass
class Pipeline:
    """Everything a configuration decides; swapped whole on a reload."""

    config: Config
    engine: WakeEngine
    vad: SpeechDetector
    storage: Storage
    indicator: Indicator
    chime: ChimePlayer | None = None
    verifiers: dict[str, Verifier] = field(default_factory=dict)


def build_verifiers(config: Config, names: Iterable[str]) -> dict[str, Verifier]:
    """`[wake.per_model.NAME] verifier` files, each checked to be trained for its model."""
    out = {}
    for name in names:
        value = config.wake.verifier_for(name)
        if value:
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
    storage = Storage(
        config.path(config.storage.directory),
        sealer_for(config.storage.encrypt_to, config.base_dir),
    )
    if not dry_run:
        storage.prepare()
    player = build_chime(config)
    engine = engine or build_engine(config)
    verifiers = build_verifiers(config, engine.names)
    if verifiers and not hasattr(engine, "recent_embeddings"):
        raise RecorderError(
            f"[wake.per_model.{next(iter(verifiers))}] verifier: a verifier reads openWakeWord's "
            "embeddings; add an openWakeWord model to [wake] models or remove the verifier"
        )
    # The indicator last: it takes over the lights of the configuration it replaces.
    return Pipeline(
        config,
        engine,
        build_vad(config),
        storage,
        build_indicators(config, devices or Devices()),
        player,
        verifiers,
    )
