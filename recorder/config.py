"""Configuration: one frozen dataclass per TOML section, validated on load.

Relative paths in a config file are resolved against the file's own directory. Every error a
user can make names the file, the section and the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.errors import RecorderError

LOG_LEVELS = ("debug", "info", "warning", "error")


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
            raise RecorderError(f'[audio] channel: must be a channel number from 0 to 63 or '
                                f'"mix", got {c!r}')


@dataclass(frozen=True)
class ModelOverride:
    threshold: float | None = field(default=None, metadata=_range(0.0, 1.0, lo_open=True))
    patience: int | None = field(default=None, metadata=_range(1, 100))


@dataclass(frozen=True)
class WakeConfig:
    models: tuple[str, ...] = ("hey_jarvis",)
    """Manifest names (`hey_jarvis`, `alexa`, ...) or paths to openWakeWord .onnx models."""
    threshold: float = field(default=0.5, metadata=_range(0.0, 1.0, lo_open=True))
    patience: int = field(default=1, metadata=_range(1, 100))
    """Consecutive 80 ms frames at or above the threshold."""
    refractory_s: float = field(default=2.0, metadata=_range(0.0, 3600.0))
    gate: bool = True
    """Run the embedding model only around speech (same detections, a fraction of the CPU)."""
    save_activations: str = ""
    """Directory for ~2 s of audio around every detection (stores wake-word audio; off)."""
    models_dir: str = ""
    """Where the .onnx files are installed; empty: $RECORDER_MODELS_DIR, else
    ~/.local/share/recorder/models ($XDG_DATA_HOME), or a source checkout's models/."""
    per_model: dict[str, ModelOverride] = field(default_factory=dict)
    """[wake.per_model.NAME] threshold / patience for one model (or one `model:class`)."""

    def threshold_for(self, name: str) -> float:
        o = self._override(name)
        return o.threshold if o and o.threshold is not None else self.threshold

    def patience_for(self, name: str) -> int:
        o = self._override(name)
        return o.patience if o and o.patience is not None else self.patience

    def _override(self, name: str) -> ModelOverride | None:
        return self.per_model.get(name) or self.per_model.get(name.split(":")[0])


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = field(default=3, metadata=_range(0, 3))
    """webrtcvad's mode: 0 (least) to 3 (most aggressive in rejecting non-speech)."""
    silence_s: float = field(default=0.8, metadata=_range(0.08, 60.0))
    """A request ends after this much non-speech once speech has begun."""
    max_length_s: float = field(default=15.0, metadata=_range(0.5, 3600.0))
    no_speech_timeout_s: float = field(default=4.0, metadata=_range(0.08, 600.0))
    """Nothing is saved when no speech starts within this time after the wake word."""
    min_speech_s: float = field(default=0.24, metadata=_range(0.08, 5.0))
    """Speech this long after the detection starts a request (the wake word's tail is shorter)."""
    lookback_s: float = field(default=1.0, metadata=_range(0.0, 5.0))
    """At most this much audio from before the detecting frame's end is kept."""


@dataclass(frozen=True)
class StorageConfig:
    directory: str = "~/.local/share/recorder/recordings"
    max_age: str = ""
    """Delete recordings older than this (e.g. "30d", "12h"; empty: keep them)."""
    max_count: int = field(default=0, metadata=_range(0, 10**9))
    """Keep at most this many recordings (0: no limit)."""
    max_total_mb: float = field(default=0.0, metadata=_range(0.0, 10.0**9))
    """Keep at most this many megabytes of recordings (0: no limit)."""

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
    gpio_recording: str = "on"
    """The LED's pattern per state: on, off, blink or pulse (pulse needs a PWM pin)."""
    gpio_listening: str = "off"
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
        from recorder import pi  # the patterns and the apa102 table are checked where used

        pi.check_config(self)


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
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative paths in the file are resolved against."""

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, what: str) -> float:
    """"90s", "15m", "12h", "30d", "2w" (or a bare number of seconds) in seconds."""
    t = text.strip().lower()
    unit = _UNITS_S.get(t[-1:])
    number = t[:-1] if unit else t
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        value = -1.0
    if not t or value < 0 or value != value:
        raise RecorderError(f"{what}: {text!r} is not a duration like 90s, 15m, 12h, 30d or 2w")
    return value


def _type_name(tp: Any) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", float: "a number"}.get(
        tp, str(tp))


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
        return {k: _section(f"{where}.{k}", val_type, v) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool) or tp is not bool and isinstance(value, bool) \
            or not isinstance(value, tp):
        raise RecorderError(f"{where}: must be {_type_name(tp)}, got {value!r}")
    return value


def _check_range(where: str, f: dataclasses.Field, value: Any) -> None:
    if value is None or "lo" not in f.metadata:
        return
    lo, hi, lo_open = f.metadata["lo"], f.metadata["hi"], f.metadata["lo_open"]
    if (lo is not None and (value <= lo if lo_open else value < lo)) or \
            (hi is not None and value > hi):
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


def load(path: Path | None) -> Config:
    """Load and validate a TOML config file; None gives the defaults."""
    if path is None:
        return validate(Config())
    name = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RecorderError(f"{name}: no such config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise RecorderError(f"{name}: cannot read config ({e.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise RecorderError(f"{name}: invalid TOML ({e})") from None
    sections = {}
    for key, table in data.items():
        f = next((f for f in dataclasses.fields(Config) if f.name == key != "base_dir"), None)
        if f is None:
            raise RecorderError(f"{name}: unknown section [{key}]")
        sections[key] = _section(f"{name}: [{key}]", typing.get_type_hints(Config)[key], table)
    return validate(Config(**sections, base_dir=path.resolve().parent), name)
