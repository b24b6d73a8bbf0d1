"""Configuration: one frozen dataclass per TOML section, validated on load.

Relative paths in a config file are resolved against the file's own directory. Every error a
user can make names the file, the section and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.errors import RecorderError
from recorder.machine import State

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_THRESHOLD = 0.5
"""An openWakeWord model's detection threshold unless the configuration sets one."""


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


@dataclass(frozen=True)
class AudioConfig:
    source: str = "mic"
    """`mic`, `mic:NAME_OR_INDEX`, `file:PATH` (WAV) or `stdin` (raw s16le 16 kHz mono)."""
    realtime: bool = False
    """Pace a file source at 1x instead of as fast as the CPU allows."""
    device_rate: int | None = field(default=None, metadata=_range(1000, 384000))
    """Open the microphone at this rate (Hz); unset: 16000 if accepted, else its default."""
    device_channels: int | None = field(default=None, metadata=_range(1, 64))
    """Open the microphone with this many channels; unset: 1 if accepted, else its maximum."""
    channel: int | str = 0
    """The input channel to keep (0-based), or "mix" to average them all."""

    def __post_init__(self) -> None:
        c = self.channel
        if not (c == "mix" or isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 64):
            raise RecorderError(
                f'[audio] channel: must be a channel number from 0 to 63 or "mix", got {c!r}'
            )


@dataclass(frozen=True)
class ModelOverride:
    threshold: float | None = field(default=None, metadata=_range(0.0, 1.0, lo_open=True))
    patience: int | None = field(default=None, metadata=_range(1, 100))
    verifier: str | None = None
    """A second-stage verifier (.npz) asked when the score reaches the threshold."""


@dataclass(frozen=True)
class WakeConfig:
    models: tuple[str, ...] = ("hey_jarvis",)
    """Manifest names (`hey_jarvis`, `alexa`, ...) or paths to openWakeWord .onnx models."""
    threshold: float | None = field(default=None, metadata=_range(0.0, 1.0, lo_open=True))
    """Every model's detection threshold; unset: each model's own (0.5 for openWakeWord's,
    the model's probability_cutoff for microWakeWord's)."""
    patience: int = field(default=1, metadata=_range(1, 100))
    """Consecutive 80 ms frames at or above the threshold."""
    refractory_s: float = field(default=2.0, metadata=_range(0.0, 3600.0))
    gate: bool = True
    """Run the embedding model only around speech (same detections, a fraction of the CPU)."""
    calibrate: bool = False
    """Count, per model and candidate threshold, the activations while listening (counters in
    the state directory, no audio) for `recorder calibrate`."""
    save_activations: str = ""
    """Directory for ~2 s of audio around every detection (stores wake-word audio; off)."""
    models_dir: str = ""
    """Where the .onnx files are installed; empty: $RECORDER_MODELS_DIR, else
    ~/.local/share/recorder/models ($XDG_DATA_HOME), or a source checkout's models/."""
    per_model: dict[str, ModelOverride] = field(default_factory=dict)
    """[wake.per_model.NAME] threshold / patience for one model (or one `model:class`)."""

    def threshold_for(self, name: str, model_default: float = DEFAULT_THRESHOLD) -> float:
        """[wake.per_model.NAME] threshold, else [wake] threshold, else `model_default` (the
        engine's: see `pipeline.thresholds`)."""
        o = self._override(name)
        if o and o.threshold is not None:
            return o.threshold
        return self.threshold if self.threshold is not None else model_default

    def patience_for(self, name: str) -> int:
        o = self._override(name)
        return o.patience if o and o.patience is not None else self.patience

    def verifier_for(self, name: str) -> str | None:
        o = self._override(name)
        return o.verifier if o else None

    def _override(self, name: str) -> ModelOverride | None:
        return self.per_model.get(name) or self.per_model.get(name.split(":")[0])


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = field(default=3, metadata=_range(0, 3))
    """webrtcvad's mode: 0 (least) to 3 (most aggressive in rejecting non-speech); a request
    judged against the room (judge_room) hears with mode 1 and judges what it lets through."""
    silence_s: float = field(default=0.8, metadata=_range(0.08, 60.0))
    """A request ends after this much non-speech once speech has begun."""
    pause_s: float = field(default=1.6, metadata=_range(0.08, 60.0))
    """...or after this much, while less than 1 s of the command has been heard (a pause after
    a first word, or after a sound in the pause that followed the wake word)."""
    max_length_s: float = field(default=15.0, metadata=_range(0.5, 3600.0))
    no_speech_timeout_s: float = field(default=4.0, metadata=_range(0.08, 600.0))
    """Nothing is saved when no speech starts within this time after the wake word."""
    min_speech_s: float = field(default=0.24, metadata=_range(0.08, 5.0))
    """Speech this long after the detection starts a request (the wake word's tail is shorter)."""
    lookback_s: float = field(default=1.0, metadata=_range(0.0, 5.0))
    """At most this much audio from before the detecting frame's end is kept."""
    judge_room: bool = True
    """After a wake word, speech counts only where it stands out of the room heard before it
    and comes near the talker's level (recorder/endpoint.py); false: webrtcvad's decision."""
    talker_range_db: float = field(default=12.0, metadata=_range(1.0, 60.0))
    """A frame more than this far below the wake phrase's loudest is not the talker's speech."""
    room_margin_db: float = field(default=3.0, metadata=_range(0.0, 30.0))
    """The last frames must stand at most this far above the room's level (less in a steady
    room, and at most half the talker's lead over the room)."""


@dataclass(frozen=True)
class StorageConfig:
    directory: str = "~/.local/share/recorder/recordings"
    max_age: str = ""
    """Delete recordings older than this (e.g. "30d", "12h"; empty: keep them)."""
    max_count: int = field(default=0, metadata=_range(0, 10**9))
    """Keep at most this many recordings (0: no limit)."""
    max_total_mb: float = field(default=0.0, metadata=_range(0.0, 10.0**9))
    """Keep at most this many megabytes of recordings (0: no limit)."""
    encrypt_to: str | tuple[str, ...] = ""
    """Seal every recording to these age recipients ("age1...") or recipients files (a
    string or a list; needs `recorder[crypto]`); empty: plaintext WAV + JSON."""

    @property
    def max_age_s(self) -> float:
        return parse_duration(self.max_age, "[storage] max_age") if self.max_age else 0.0


@dataclass(frozen=True)
class IndicatorConfig:
    command: str = ""
    """Run on every state change with the new state as its last argument."""
    state_file: str = ""
    """A file rewritten atomically with the current state."""
    required: bool = True
    """Fail closed: discard a request whose `recording` state could not be shown."""
    timeout_s: float = field(default=2.0, metadata=_range(0.01, 60.0))
    gpio_led: int | None = field(default=None, metadata=_range(0, 27))
    """An LED on this GPIO pin (BCM number; needs `recorder[pi]`)."""
    mute_switch: int | None = field(default=None, metadata=_range(0, 27))
    """A switch on this GPIO pin (BCM number, to ground; needs `recorder[pi]`) that mutes
    while it is closed, whatever the control socket says."""
    gpio_recording: str = "on"
    """The LED's pattern per state: on, off, blink or pulse (pulse needs a PWM pin)."""
    gpio_listening: str = "dim"
    gpio_muted: str = "pulse"
    gpio_error: str = "blink"
    apa102: dict = field(default_factory=dict)
    """APA102 LEDs on SPI: { leds = 3, brightness = 0.5, bus = 0, device = 1, power_pin = 5,
    colors = { recording = "#0000ff", ... } } (needs `recorder[pi]`); empty: none."""
    awake_sound: str = ""
    """A WAV played when a recording starts (the microphone keeps recording)."""
    done_sound: str = ""
    """A WAV played when a recording ends."""
    chime_device: str = ""
    """Output device for the chimes, by name or index; empty: the default output."""

    def __post_init__(self) -> None:
        check_indicator(self)

    def led_patterns(self) -> dict[State, str]:
        """`gpio_led`'s pattern per state."""
        return gpio_patterns(self)

    def apa102_settings(self) -> Apa102Settings | None:
        return parse_apa102(self.apa102) if self.apa102 else None


KEEP_AUDIO = ("always", "until_transcribed")


@dataclass(frozen=True)
class HandoffConfig:
    command: str = ""
    """Run as `COMMAND SIDECAR_PATH` after each request is saved (no shell; the sidecar JSON
    on stdin, RECORDER_ID, RECORDER_AUDIO, RECORDER_WAKE_WORD in the environment)."""
    timeout_s: float = field(default=30.0, metadata=_range(0.1, 3600.0))
    """The command is killed (with its process group) after this long."""
    queue: int = field(default=16, metadata=_range(1, 10000))
    """Saved requests waiting for the command or the transcription; beyond it one is skipped."""
    wyoming: str = ""
    """A Wyoming speech-to-text server, `unix:///PATH` only (needs `recorder[wyoming]`)."""
    wyoming_timeout_s: float = field(default=60.0, metadata=_range(0.1, 3600.0))
    """A transcription that has not answered by then is given up (`transcript_error`)."""
    language: str = ""
    """Asked of the speech-to-text server (e.g. "en"); empty: the server's default."""
    keep_audio: str = "always"
    """`always`, or `until_transcribed`: delete the audio once the transcript is saved."""

    def __post_init__(self) -> None:
        check_handoff(self)


@dataclass(frozen=True)
class ControlConfig:
    group: str = ""
    """Members of this group may use `status` and `events` (the control socket is then 0660
    and owned by it); empty: only the daemon's user and root."""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    indicator: IndicatorConfig = field(default_factory=IndicatorConfig)
    log: LogConfig = field(default_factory=LogConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative paths in the file are resolved against."""

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


# --- the Raspberry Pi lights' keys (`gpio_*`, `apa102`) -----------------------------------
LED_PATTERNS = ("on", "off", "blink", "pulse", "dim")
LED_STATES = (State.RECORDING, State.LISTENING, State.MUTED, State.ERROR)
"""The states with a configurable light (`gpio_<state>`, apa102 colours); `off` is always off."""
APA102_KEYS = ("leds", "brightness", "bus", "device", "power_pin", "colors")
DEFAULT_COLORS = {
    State.RECORDING: "#0000ff",  # blue, like the Echo's ring
    State.LISTENING: "#001000",  # a dim green: alive and listening (a dead daemon is dark)
    State.MUTED: "#ff0000",
    State.ERROR: "#ff6000",  # orange, steady
}
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Apa102Settings:
    leds: int
    brightness: float = 0.5
    bus: int = 0
    device: int = 1
    power_pin: int | None = None
    colors: Mapping[State, tuple[int, int, int]] | None = None

    def color(self, state: State) -> tuple[int, int, int]:
        return (self.colors or {}).get(state, (0, 0, 0))


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RecorderError(f"{where}: must be an integer from {lo} to {hi}, got {value!r}")
    return value


def parse_color(where: str, value: Any) -> tuple[int, int, int]:
    if not isinstance(value, str) or not _COLOR.fullmatch(value):
        raise RecorderError(f'{where}: must be a colour like "#0000ff", got {value!r}')
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def parse_apa102(table: Mapping[str, Any], where: str = "[indicator] apa102") -> Apa102Settings:
    """`{ leds = 3, brightness = 0.5, bus = 0, device = 1, power_pin = 5, colors = {...} }`."""
    unknown = [k for k in table if k not in APA102_KEYS]
    if unknown:
        raise RecorderError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(APA102_KEYS)})"
        )
    if "leds" not in table:
        raise RecorderError(
            f"{where}: needs leds, the number of LEDs (3 on the ReSpeaker "
            "2-mic HAT, 12 on the 4-mic array)"
        )
    brightness = table.get("brightness", 0.5)
    if (
        isinstance(brightness, bool)
        or not isinstance(brightness, int | float)
        or not 0.0 <= brightness <= 1.0
    ):
        raise RecorderError(f"{where} brightness: must be a number from 0 to 1, got {brightness!r}")
    power_pin = table.get("power_pin")
    colors_table = table.get("colors", {})
    if not isinstance(colors_table, dict):
        raise RecorderError(
            f'{where} colors: must be a table like {{ recording = "#0000ff", muted = "#ff0000" }}'
        )
    names = [s.value for s in LED_STATES]
    colors = {s: parse_color(f"{where} colors.{s.value}", c) for s, c in DEFAULT_COLORS.items()}
    for name, value in colors_table.items():
        if name not in names:
            raise RecorderError(
                f"{where} colors: unknown state {name!r} (known: {', '.join(names)})"
            )
        colors[State(name)] = parse_color(f"{where} colors.{name}", value)
    return Apa102Settings(
        leds=_int(f"{where} leds", table["leds"], 1, 1024),
        brightness=float(brightness),
        bus=_int(f"{where} bus", table.get("bus", 0), 0, 9),
        device=_int(f"{where} device", table.get("device", 1), 0, 9),
        power_pin=None if power_pin is None else _int(f"{where} power_pin", power_pin, 0, 27),
        colors=colors,
    )


def gpio_patterns(ind: IndicatorConfig) -> dict[State, str]:
    """The LED's pattern per state, from the `gpio_<state>` keys (checked)."""
    patterns = {State.OFF: "off"}
    for state in LED_STATES:
        key = f"gpio_{state.value}"
        value = getattr(ind, key)
        if value not in LED_PATTERNS:
            raise RecorderError(
                f"[indicator] {key}: must be one of {', '.join(LED_PATTERNS)}, got {value!r}"
            )
        patterns[state] = value
    return patterns


def check_indicator(ind: IndicatorConfig) -> None:
    """Every Pi light key is checked on creation, configured or not."""
    gpio_patterns(ind)
    if ind.apa102:
        settings = parse_apa102(ind.apa102)
        if ind.gpio_led is not None and settings.power_pin == ind.gpio_led:
            raise RecorderError(
                f"[indicator] apa102 power_pin: GPIO {ind.gpio_led} is already gpio_led's pin"
            )


MAX_DURATION_S = 100 * 365 * 86400.0
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def check_handoff(h: HandoffConfig) -> None:
    """The hand-off's values that need no file system: its command's syntax, the Wyoming
    URI's scheme (the daemon speaks only AF_UNIX), the audio policy."""
    if h.command:
        try:
            argv = shlex.split(h.command)
        except ValueError as e:
            raise RecorderError(f"[handoff] command: cannot parse {h.command!r} ({e})") from None
        if not argv:
            raise RecorderError("[handoff] command: empty command")
    if h.wyoming:
        scheme, sep, rest = h.wyoming.partition("://")
        if not sep:
            raise RecorderError(
                f"[handoff] wyoming: {h.wyoming!r} is not a URI; use unix:///PATH/TO/stt.sock"
            )
        if scheme in ("tcp", "http", "https", "ws", "wss"):
            raise RecorderError(
                f"[handoff] wyoming: {h.wyoming!r}: the daemon opens no network socket; serve "
                "the speech-to-text on a Unix socket (unix:///PATH), or bridge to another host "
                "from a separate unit (docs/handoff.md)"
            )
        if scheme != "unix":
            raise RecorderError(
                f"[handoff] wyoming: unknown scheme {scheme + '://'!r} in {h.wyoming!r}; "
                "only unix:///PATH is accepted"
            )
        if not rest.startswith("/"):
            raise RecorderError(
                f"[handoff] wyoming: {h.wyoming!r}: the socket's path must be absolute "
                "(unix:///PATH)"
            )
    if h.keep_audio not in KEEP_AUDIO:
        raise RecorderError(
            f"[handoff] keep_audio: must be one of {', '.join(KEEP_AUDIO)}, got {h.keep_audio!r}"
        )
    if h.keep_audio == "until_transcribed" and not h.wyoming:
        raise RecorderError(
            '[handoff] keep_audio: "until_transcribed" needs [handoff] wyoming (a transcriber)'
        )


def parse_duration(text: str, what: str) -> float:
    """ "90s", "15m", "12h", "30d", "2w" (or a bare number of seconds) in seconds."""
    t = text.strip().lower()
    unit = _UNITS_S.get(t[-1:])
    number = t[:-1] if unit else t
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        value = -1.0
    if not t or not 0 <= value <= MAX_DURATION_S:
        raise RecorderError(f"{what}: {text!r} is not a duration like 90s, 15m, 12h, 30d or 2w")
    return value


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, quoted otherwise (so it stays on one line)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _type_name(tp: Any) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}.get(
        tp, str(tp)
    )


def _convert(where: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):  # X | None, or X | Y: the first that fits
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        for a in inner[:-1]:
            try:
                return _convert(where, a, value)
            except RecorderError:
                pass
        return _convert(where, inner[-1], value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RecorderError(f"{where}: must be a list of strings")
        return tuple(value)
    if origin is dict:
        val_type = typing.get_args(tp)[1]
        if not isinstance(value, dict):
            raise RecorderError(f"{where}: must be a table")
        return {k: _section(f"{where}.{toml_key(k)}", val_type, v) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**53:
            raise RecorderError(f"{where}: {value} is out of range")
        return float(value)
    if isinstance(value, str) and "\0" in value:
        raise RecorderError(f"{where}: must not contain a NUL character")
    if (
        tp is bool
        and not isinstance(value, bool)
        or tp is not bool
        and isinstance(value, bool)
        or not isinstance(value, tp)
    ):
        raise RecorderError(f"{where}: must be {_type_name(tp)}, got {value!r}")
    return value


def _check_range(where: str, f: dataclasses.Field, value: Any) -> None:
    if value is None or "lo" not in f.metadata:
        return
    lo, hi, lo_open = f.metadata["lo"], f.metadata["hi"], f.metadata["lo_open"]
    if (
        value != value
        or (lo is not None and (value <= lo if lo_open else value < lo))
        or (hi is not None and value > hi)
    ):
        low = f"above {lo}" if lo_open else f"at least {lo}"
        raise RecorderError(f"{where}: must be {low} and at most {hi}, got {value!r}")


def _section(where: str, cls: type, table: Any) -> Any:
    if not isinstance(table, dict):
        raise RecorderError(f"{where}: must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in table.items():
        f = fields.get(key)
        if f is None or key == "base_dir":
            known = ", ".join(k for k in fields if k != "base_dir")
            raise RecorderError(f"{where}: unknown key {key!r} (known: {known})")
        converted = _convert(f"{where} {key}", hints[key], value)
        _check_range(f"{where} {key}", f, converted)
        values[key] = converted
    try:
        return cls(**values)
    except RecorderError as e:  # checks across keys inside a section: name the file too
        file = where.split(": [")[0]
        raise RecorderError(str(e) if str(e).startswith(file) else f"{file}: {e}") from None


def validate(config: Config, where: str = "config") -> Config:
    """Checks across keys and values that a command-line flag may also have set."""
    for f in dataclasses.fields(Config):
        if f.name == "base_dir":
            continue
        section = getattr(config, f.name)
        for sf in dataclasses.fields(section):
            _check_range(f"{where}: [{f.name}] {sf.name}", sf, getattr(section, sf.name))
    if not config.wake.models:
        raise RecorderError(f"{where}: [wake] models: at least one model is needed")
    if config.log.level not in LOG_LEVELS:
        raise RecorderError(f"{where}: [log] level: must be one of {', '.join(LOG_LEVELS)}")
    if config.storage.max_age:
        parse_duration(config.storage.max_age, f"{where}: [storage] max_age")
    if config.vad.max_length_s < config.vad.min_speech_s:
        raise RecorderError(f"{where}: [vad] max_length_s: must be at least min_speech_s")
    return config


def with_overrides(
    config: Config,
    *,
    recordings: Path | None = None,
    source: str | None = None,
    realtime: bool = False,
    models: Sequence[str] | None = None,
    threshold: float | None = None,
    patience: int | None = None,
    indicator_command: str | None = None,
    log_level: str | None = None,
    calibrate: bool = False,
    models_dir: Path | None = None,
) -> Config:
    """The configuration with command-line flags applied (None or False: unchanged), checked.

    `threshold` and `patience` set every model's, per-model overrides included.
    """
    audio, wake, storage, ind, lg = (
        config.audio,
        config.wake,
        config.storage,
        config.indicator,
        config.log,
    )
    if recordings is not None:
        storage = dataclasses.replace(storage, directory=str(recordings.expanduser().resolve()))
    if source is not None:
        if source.startswith("file:"):
            source = "file:" + str(Path(source[5:]).expanduser())
        audio = dataclasses.replace(audio, source=source)
    if realtime:
        audio = dataclasses.replace(audio, realtime=True)
    if models:
        wake = dataclasses.replace(wake, models=tuple(models))
    if threshold is not None:
        wake = dataclasses.replace(
            wake,
            threshold=threshold,
            per_model={
                k: dataclasses.replace(v, threshold=None) for k, v in wake.per_model.items()
            },
        )
    if patience is not None:
        wake = dataclasses.replace(
            wake,
            patience=patience,
            per_model={k: dataclasses.replace(v, patience=None) for k, v in wake.per_model.items()},
        )
    if calibrate:
        wake = dataclasses.replace(wake, calibrate=True)
    if models_dir is not None:
        wake = dataclasses.replace(wake, models_dir=str(models_dir.expanduser().resolve()))
    if indicator_command is not None:
        ind = dataclasses.replace(ind, command=indicator_command)
    if log_level:
        lg = dataclasses.replace(lg, level=log_level)
    return validate(
        dataclasses.replace(config, audio=audio, wake=wake, storage=storage, indicator=ind, log=lg),
        "command line",
    )


SYSTEM_CONFIG = Path("/etc/recorder/recorder.toml")
CONFIG_HELP = (
    "TOML config file (default: $RECORDER_CONFIG, else "
    "~/.config/recorder/recorder.toml, else /etc/recorder/recorder.toml, else the "
    "built-in defaults; `recorder config path` tells which)"
)
"""The system service's configuration, found by every command when no other is."""


def search_path(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where a configuration is looked for, in order, when no --config is given:
    $RECORDER_CONFIG, $XDG_CONFIG_HOME/recorder/recorder.toml (~/.config/...), then the system's
    (/etc/recorder/recorder.toml; $RECORDER_SYSTEM_CONFIG names another, e.g. in a staged root)."""
    env = os.environ if environ is None else environ
    paths = [Path(env["RECORDER_CONFIG"]).expanduser()] if env.get("RECORDER_CONFIG") else []
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    paths.append(config_home / "recorder" / "recorder.toml")
    paths.append(Path(env.get("RECORDER_SYSTEM_CONFIG") or SYSTEM_CONFIG))
    return paths


def locate(explicit: Path | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The configuration file in force: `explicit` (--config), else $RECORDER_CONFIG (which must
    exist), else the first of the search path that exists; None: the built-in defaults."""
    if explicit is not None:
        return explicit
    env = os.environ if environ is None else environ
    paths = search_path(env)
    if env.get("RECORDER_CONFIG"):
        return paths[0]
    return next((p for p in paths if p.is_file()), None)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def to_toml(config: Config) -> str:
    """The configuration as a TOML file that loads back to the same values (paths resolved)."""
    lines: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name == "base_dir":
            continue
        section = getattr(config, f.name)
        lines.append(f"[{f.name}]")
        tables = []
        for sf in dataclasses.fields(section):
            value = getattr(section, sf.name)
            if sf.name == "per_model":
                tables = [(name, o) for name, o in value.items()]
            elif value is None:
                lines.append(f"# {sf.name}: not set")
            else:
                if (
                    sf.name
                    in (
                        "directory",
                        "state_file",
                        "save_activations",
                        "models_dir",
                        "awake_sound",
                        "done_sound",
                    )
                    and value
                ):
                    value = os.path.normpath(config.path(value))
                lines.append(f"{sf.name} = {_toml_value(value)}")
        for name, override in tables:
            lines.append(f"\n[{f.name}.per_model.{_toml_value(name)}]")
            for of in dataclasses.fields(override):
                if getattr(override, of.name) is not None:
                    lines.append(f"{of.name} = {_toml_value(getattr(override, of.name))}")
        lines.append("")
    return "\n".join(lines)


def load(path: Path | None) -> Config:
    """Load and validate a TOML config file; None gives the defaults."""
    if path is None:
        return validate(Config())
    name = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RecorderError(f"{name}: no such config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecorderError(f"{name}: cannot read config ({e.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise RecorderError(f"{name}: invalid TOML ({e})") from None
    except RecursionError:
        raise RecorderError(f"{name}: invalid TOML (nested too deeply)") from None
    sections = {}
    for key, table in data.items():
        f = next((f for f in dataclasses.fields(Config) if f.name == key != "base_dir"), None)
        if f is None:
            raise RecorderError(f"{name}: unknown section [{toml_key(key)}]")
        sections[key] = _section(f"{name}: [{key}]", typing.get_type_hints(Config)[key], table)
    return validate(Config(**sections, base_dir=path.resolve().parent), name)
