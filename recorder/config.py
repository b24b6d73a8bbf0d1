"""Configuration: a TOML file read into the schema (`recorder.config_schema`), validated on
load, and the one place every caller imports the configuration's names from.

Relative paths in a config file are resolved against the file's own directory. Every error a
user can make names the file, the section and the key. The search path, the writer, the
command line's overrides and the Pi lights' keys live in modules of their own.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from recorder.config_lights import (
    APA102_KEYS,
    DEFAULT_COLORS,
    LED_PATTERNS,
    LED_STATES,
    Apa102Settings,
    check_lights,
    gpio_patterns,
    parse_apa102,
    parse_color,
)
from recorder.config_overrides import (
    ENVIRONMENT,
    Overrides,
    environment_fills,
    from_environment,
    with_overrides,
)
from recorder.config_schema import (
    DEFAULT_THRESHOLD,
    KEEP_AUDIO,
    LOG_LEVELS,
    MAX_DURATION_S,
    PATH,
    AudioConfig,
    Config,
    ControlConfig,
    HandoffConfig,
    IndicatorConfig,
    LogConfig,
    ModelOverride,
    StorageConfig,
    VadConfig,
    WakeConfig,
    check_handoff,
    check_range,
    is_path,
    parse_duration,
    validate,
)
from recorder.config_search import CONFIG_HELP, SYSTEM_CONFIG, locate, search_path
from recorder.config_write import template, to_toml, toml_key, write_template
from recorder.dirs import default_state_dir
from recorder.errors import RecorderError

__all__ = [
    "APA102_KEYS",
    "CONFIG_HELP",
    "DEFAULT_COLORS",
    "DEFAULT_THRESHOLD",
    "ENVIRONMENT",
    "KEEP_AUDIO",
    "LED_PATTERNS",
    "LED_STATES",
    "LOG_LEVELS",
    "MAX_DURATION_S",
    "PATH",
    "SYSTEM_CONFIG",
    "Apa102Settings",
    "AudioConfig",
    "Config",
    "ControlConfig",
    "HandoffConfig",
    "IndicatorConfig",
    "LogConfig",
    "ModelOverride",
    "Overrides",
    "StorageConfig",
    "VadConfig",
    "WakeConfig",
    "check_handoff",
    "check_lights",
    "environment_fills",
    "from_environment",
    "gpio_patterns",
    "is_path",
    "load",
    "locate",
    "parse_apa102",
    "parse_color",
    "parse_duration",
    "search_path",
    "state_dir",
    "template",
    "to_toml",
    "toml_key",
    "validate",
    "with_overrides",
    "write_template",
]


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
        check_range(f"{where} {key}", f, converted)
        values[key] = converted
    try:
        return cls(**values)
    except RecorderError as e:  # checks across keys inside a section: name the file too
        file = where.split(": [")[0]
        raise RecorderError(str(e) if str(e).startswith(file) else f"{file}: {e}") from None


def load(path: Path | None, environment: bool = True) -> Config:
    """Load and validate a TOML config file (None: the defaults), with the environment's
    directories in the keys it leaves empty (`from_environment`: $RECORDER_MODELS_DIR,
    $STATE_DIRECTORY) unless `environment` is false."""
    if path is None:
        return from_environment(validate(Config())) if environment else validate(Config())
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
    config = validate(Config(**sections, base_dir=path.resolve().parent), name)
    return from_environment(config, name) if environment else config


def state_dir(config: Config) -> Path:
    """The state directory: [storage] state_dir (which --state-dir and $STATE_DIRECTORY
    override), else $XDG_STATE_HOME/recorder (~/.local/state/recorder)."""
    if config.storage.state_dir:
        return config.path(config.storage.state_dir)
    return default_state_dir()
