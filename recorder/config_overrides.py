"""The command line's and the environment's overrides of the configuration: one `Overrides`
value, built from the parsed flags, applied to the configuration in force; and the environment's
directories (`from_environment`), which fill the keys the file leaves empty. The order: flag >
config file > environment > default."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.config_schema import Config, StorageConfig, WakeConfig, validate


@dataclass(frozen=True)
class Overrides:
    """The command-line flags that change the configuration (None or False: unchanged).

    `threshold` and `patience` set every model's, per-model overrides included."""

    recordings: Path | None = None
    source: str | None = None
    realtime: bool = False
    models: Sequence[str] | None = None
    threshold: float | None = None
    patience: int | None = None
    indicator_command: str | None = None
    log_level: str | None = None
    calibrate: bool = False
    models_dir: Path | None = None
    state_dir: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Overrides:
        """Whichever of these flags the command has."""
        return cls(
            recordings=getattr(args, "recordings", None),
            source=getattr(args, "source", None),
            realtime=getattr(args, "realtime", False),
            models=getattr(args, "model", None),
            threshold=getattr(args, "threshold", None),
            patience=getattr(args, "patience_frames", None),
            indicator_command=getattr(args, "indicator_command", None),
            log_level=getattr(args, "log_level", None),
            calibrate=getattr(args, "calibrate", False),
            models_dir=getattr(args, "models_dir", None),
            state_dir=getattr(args, "state_dir", None),
        )

    def _directories(
        self, wake: WakeConfig, storage: StorageConfig
    ) -> tuple[WakeConfig, StorageConfig]:
        """--recordings, --state-dir and --models-dir, made absolute."""
        if self.recordings is not None:
            storage = dataclasses.replace(storage, directory=_absolute(self.recordings))
        if self.state_dir is not None:
            storage = dataclasses.replace(storage, state_dir=_absolute(self.state_dir))
        if self.models_dir is not None:
            wake = dataclasses.replace(wake, models_dir=_absolute(self.models_dir))
        return wake, storage

    def apply(self, config: Config) -> Config:
        """The configuration with these overrides applied, checked."""
        source, threshold, patience = self.source, self.threshold, self.patience
        audio, wake, storage, ind, lg = (
            config.audio,
            config.wake,
            config.storage,
            config.indicator,
            config.log,
        )
        wake, storage = self._directories(wake, storage)
        if source is not None:
            if source.startswith("file:"):
                source = "file:" + str(Path(source[5:]).expanduser())
            audio = dataclasses.replace(audio, source=source)
        if self.realtime:
            audio = dataclasses.replace(audio, realtime=True)
        if self.models:
            wake = dataclasses.replace(wake, models=tuple(self.models))
        if threshold is not None:
            wake = _for_every_model(wake, "threshold", threshold)
        if patience is not None:
            wake = _for_every_model(wake, "patience", patience)
        if self.calibrate:
            wake = dataclasses.replace(wake, calibrate=True)
        if self.indicator_command is not None:
            ind = dataclasses.replace(ind, command=self.indicator_command)
        if self.log_level:
            lg = dataclasses.replace(lg, level=self.log_level)
        return validate(
            dataclasses.replace(
                config, audio=audio, wake=wake, storage=storage, indicator=ind, log=lg
            ),
            "command line",
        )


ENVIRONMENT = (
    ("RECORDER_MODELS_DIR", "wake", "models_dir"),
    ("STATE_DIRECTORY", "storage", "state_dir"),
)
"""The environment variables that set a key the file leaves empty: (variable, section, key).
systemd sets $STATE_DIRECTORY for every unit with StateDirectory= (several are colon-separated:
the first counts), so a file's key, when set, wins: a command run by another unit (a backup, a
timer) still uses the directories its configuration names."""


def environment_fills(
    config: Config, environ: Mapping[str, str] | None = None
) -> list[tuple[str, str, str, str]]:
    """(variable, section, key, directory) for each key the environment sets: those the file
    leaves empty."""
    env = os.environ if environ is None else environ
    fills = []
    for var, section, key in ENVIRONMENT:
        text = env.get(var, "").split(":")[0] if var == "STATE_DIRECTORY" else env.get(var, "")
        if text and not getattr(getattr(config, section), key):
            fills.append((var, section, key, os.path.abspath(Path(text).expanduser())))
    return fills


def from_environment(
    config: Config, where: str = "config", environ: Mapping[str, str] | None = None
) -> Config:
    """The configuration with the environment's directories in the keys the file leaves
    empty; a file key that names another directory than its variable is logged (it wins)."""
    env = os.environ if environ is None else environ
    for var, section, key in ENVIRONMENT:
        configured = getattr(getattr(config, section), key)
        text = env.get(var, "").split(":")[0] if var == "STATE_DIRECTORY" else env.get(var, "")
        if configured and text and config.path(configured).resolve() != Path(text).resolve():
            logging.getLogger("recorder").warning(
                "%s: [%s] %s = %s is used, not $%s (%s)", where, section, key, configured, var, text
            )
    changes: dict[str, Any] = {}
    for _var, section, key, value in environment_fills(config, env):
        table = changes.get(section, getattr(config, section))
        changes[section] = dataclasses.replace(table, **{key: value})
    return dataclasses.replace(config, **changes) if changes else config


def _absolute(path: Path) -> str:
    return str(path.expanduser().resolve())


def with_overrides(config: Config, **flags: Any) -> Config:
    """The configuration with command-line flags applied (None or False: unchanged), checked;
    `flags` are `Overrides`' fields."""
    return Overrides(**flags).apply(config)


def _for_every_model(wake: WakeConfig, name: str, value: float | int) -> WakeConfig:
    """`[wake] name = value`, with every `[wake.per_model.*]` setting of it dropped."""
    per_model = {k: dataclasses.replace(v, **{name: None}) for k, v in wake.per_model.items()}
    changes: dict[str, Any] = {name: value, "per_model": per_model}
    return dataclasses.replace(wake, **changes)
