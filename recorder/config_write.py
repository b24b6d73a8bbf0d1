"""The configuration written as a TOML file that loads back to the same values, its paths
resolved; the commented template (package data) written as a new file."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recorder.config_schema import Config, is_path
from recorder.errors import RecorderError


def template() -> str:
    """The commented configuration (config/recorder.toml, shipped in the package): every key with
    its default and what it does."""
    from importlib import resources  # here: the daemon's start does not need it

    return resources.files("recorder").joinpath("data", "recorder.toml").read_text("utf-8")


def write_template(path: Path) -> None:
    """The template as a new file (0644) at `path`, its directory created: whole or not at all,
    and never over an existing file."""
    import tempfile  # here: the daemon's start does not need it

    exists = RecorderError(f"{path} exists: edit it, or move it away first")
    if path.exists() or path.is_symlink():
        raise exists
    try:
        if path.parent.exists() and not path.parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{path.parent} is not a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as tmp:
            try:
                tmp.write(template())
                tmp.flush()
                os.fsync(tmp.fileno())
                os.chmod(tmp.name, 0o644)
                try:
                    os.link(tmp.name, path)  # fails, rather than replaces, if path appeared
                except FileExistsError:
                    raise exists from None
            finally:
                os.unlink(tmp.name)
    except OSError as e:
        raise RecorderError(f"cannot write {path}: {e.strerror or e}") from None


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, quoted otherwise (so it stays on one line)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


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
                if is_path(sf) and value:
                    value = os.path.normpath(config.path(value))
                lines.append(f"{sf.name} = {_toml_value(value)}")
        for name, override in tables:
            lines.append(f"\n[{f.name}.per_model.{_toml_value(name)}]")
            for of in dataclasses.fields(override):
                if getattr(override, of.name) is not None:
                    lines.append(f"{of.name} = {_toml_value(getattr(override, of.name))}")
        lines.append("")
    return "\n".join(lines)
