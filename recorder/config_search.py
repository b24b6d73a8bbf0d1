"""Where the configuration file is looked for when no --config is given, and which one is in
force."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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
