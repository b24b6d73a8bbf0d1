"""One configuration, found the same way by every command: run, then a plain `recorder list`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import AUDIO, RECORDER, REPO

SCENE = f"file:{AUDIO / 'jarvis_pause_command.wav'}"


def recorder(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RECORDER), *args], capture_output=True, text=True, env=env, timeout=120
    )


def fresh_env(tmp_path: Path) -> dict[str, str]:
    """A new user: an empty HOME, no XDG variables, no system config."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XDG_") and k not in ("RECORDER_CONFIG",)
    }
    home = tmp_path / "home"
    home.mkdir()
    env.update(
        HOME=str(home),
        RECORDER_SYSTEM_CONFIG=str(tmp_path / "etc" / "recorder.toml"),
        XDG_RUNTIME_DIR=str(tmp_path / "run"),
    )
    return env


def listed(env: dict[str, str]) -> list[dict]:
    proc = recorder(env, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_new_user_finds_what_run_saved_with_a_plain_list(tmp_path):
    env = fresh_env(tmp_path)
    assert recorder(env, "config", "path").stdout.startswith("(none: the built-in defaults")
    proc = recorder(env, "run", "--source", SCENE)
    assert proc.returncode == 0, proc.stderr
    [meta] = listed(env)
    saved = Path(env["HOME"]) / ".local/share/recorder/recordings" / meta["meta"]["audio_file"]
    assert saved.is_file() and Path(meta["audio"]) == saved


@pytest.mark.parametrize("where", ["xdg", "etc", "env"])
def test_every_command_uses_the_config_found_on_the_search_path(tmp_path, where):
    env = fresh_env(tmp_path)
    if where == "xdg":
        env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
        path = tmp_path / "xdg" / "recorder" / "recorder.toml"
    elif where == "etc":
        path = Path(env["RECORDER_SYSTEM_CONFIG"])
    else:
        path = tmp_path / "mine.toml"
        env["RECORDER_CONFIG"] = str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = tmp_path / f"rec-{where}"
    path.write_text(
        (REPO / "config" / "recorder.toml")
        .read_text()
        .replace('directory = "~/.local/share/recorder/recordings"', f'directory = "{rec}"')
    )
    assert recorder(env, "config", "path").stdout.strip() == str(path)
    assert f'directory = "{rec}"' in recorder(env, "config", "show").stdout
    assert recorder(env, "run", "--source", SCENE).returncode == 0
    [meta] = listed(env)
    assert (rec / meta["meta"]["audio_file"]).is_file() and Path(meta["audio"]).parent == rec
    proc = recorder(env, "delete", "--all")  # not a terminal: no question
    assert proc.returncode == 0 and listed(env) == []


def test_a_user_config_comes_before_the_systems(tmp_path):
    env = fresh_env(tmp_path)
    user = Path(env["HOME"]) / ".config" / "recorder" / "recorder.toml"
    for path in (user, Path(env["RECORDER_SYSTEM_CONFIG"])):
        path.parent.mkdir(parents=True)
        path.write_text("[wake]\nthreshold = 0.6\n")
    assert recorder(env, "config", "path").stdout.strip() == str(user)
    env["RECORDER_CONFIG"] = str(tmp_path / "absent.toml")  # named, so it must exist
    proc = recorder(env, "list")
    assert proc.returncode == 2 and "absent.toml: no such config file" in proc.stderr


def test_config_init_does_not_hide_the_systems_config(tmp_path):
    env = fresh_env(tmp_path)
    system = Path(env["RECORDER_SYSTEM_CONFIG"])
    user = Path(env["HOME"]) / ".config" / "recorder" / "recorder.toml"
    wrote = recorder(env, "config", "init")
    assert wrote.returncode == 0 and user.is_file(), wrote.stderr
    user.unlink()
    system.parent.mkdir(parents=True)
    system.write_text("[wake]\nthreshold = 0.6\n")
    refused = recorder(env, "config", "init")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"recorder: error: {system} exists: a new {user} would hide it from every command you run "
        "(they would use other directories than the service's); edit it, or give "
        "--config PATH\n"
    )
    assert not user.exists()
    assert recorder(env, "config", "path").stdout.strip() == str(system)
    named = tmp_path / "mine.toml"
    assert recorder(env, "config", "init", "--config", str(named)).returncode == 0
    assert named.is_file()


def test_config_show_loads_back_to_the_same_configuration(tmp_path):
    env = fresh_env(tmp_path)
    shown = recorder(env, "config", "show", "--config", str(REPO / "config" / "recorder.toml"))
    assert shown.returncode == 0, shown.stderr
    (tmp_path / "shown.toml").write_text(shown.stdout)
    again = recorder(env, "config", "show", "--config", str(tmp_path / "shown.toml"))
    body = [line for line in shown.stdout.splitlines() if not line.startswith("# the config")]
    assert [
        line for line in again.stdout.splitlines() if not line.startswith("# the config")
    ] == body
