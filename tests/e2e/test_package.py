"""The package as a user gets it: build the sdist and wheel, install the wheel into a fresh venv
outside the checkout, fetch the models into a data directory, and record from a file; write the
configuration's template and run the recording that comes with the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import AUDIO, REPO, SCENES

# What a build needs (the package's template is a link into config/); everything else in the
# checkout (venvs, models, caches) stays out.
SOURCES = ["pyproject.toml", "README.md", "recorder", "config"]
DIST = "wakeword_recorder"  # the distribution wakeword-recorder, as file names spell it


def run(*cmd: str | Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw
    )
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """sdist + wheel built with `python -m build` (the wheel is built from the sdist)."""
    base = tmp_path_factory.mktemp("build")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name,
                src / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy2(REPO / name, src / name)
    run(sys.executable, "-m", "build", "--outdir", base / "dist", src)
    return base / "dist"


def test_sdist_and_wheel_hold_the_whole_package(dist: Path):
    (wheel,) = dist.glob(f"{DIST}-*.whl")
    (sdist,) = dist.glob(f"{DIST}-*.tar.gz")
    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
        (metadata,) = [n for n in in_wheel if n.endswith(".dist-info/METADATA")]
        headers = z.read(metadata).decode().split("\n\n", 1)[0].splitlines()
        scripts = z.read(metadata.replace("METADATA", "entry_points.txt")).decode()
        template = z.read("recorder/data/recorder.toml")
        sample = z.getinfo("recorder/data/speech_then_wake.wav")
    assert "Name: wakeword-recorder" in headers, headers
    assert "recorder = recorder.cli:main" in scripts, scripts  # the command keeps its name
    for name in (
        "recorder/manifest.toml",
        "recorder/cli.py",
        "recorder/sources/mic.py",
        "recorder/sources/__init__.py",
    ):
        assert name in in_wheel, sorted(in_wheel)
    assert not any(n.endswith(".onnx") for n in in_wheel)  # models are fetched, not shipped
    # The template is config/recorder.toml's text (not a link), the sample a small real scene.
    assert template == (REPO / "config/recorder.toml").read_bytes()
    assert sample.file_size == (AUDIO / "speech_then_wake.wav").stat().st_size < 400_000
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1]: m for m in t.getmembers() if "/" in m.name}
    assert "recorder/manifest.toml" in members and "pyproject.toml" in members
    assert members["recorder/data/recorder.toml"].isfile()


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory) -> Path:
    """A fresh venv with the wheel (and its dependencies from the index) installed."""
    (wheel,) = dist.glob(f"{DIST}-*.whl")
    venv = tmp_path_factory.mktemp("installed") / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    return venv


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user outside the checkout: own data and config directories, no recorder variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RECORDER_MODELS_DIR", "RECORDER_CONFIG", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["RECORDER_SYSTEM_CONFIG"] = str(tmp_path / "etc/recorder.toml")
    return env


def test_wheel_installs_fetches_models_and_records_outside_the_checkout(venv: Path, tmp_path):
    env = user_env(tmp_path)
    recorder = venv / "bin/recorder"
    where = run(
        venv / "bin/python",
        "-I",
        "-c",
        "import recorder; print(recorder.__file__)",
        cwd=tmp_path,
        env=env,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where  # the wheel, not this checkout

    fetched = run(recorder, "models", "fetch", cwd=tmp_path, env=env)
    models = tmp_path / "data/recorder/models"
    assert f"models in {models}: installed 8" in fetched.stdout, fetched.stdout
    listed = run(recorder, "models", "list", cwd=tmp_path, env=env).stdout.splitlines()
    micro = [row for row in listed if " microWakeWord " in row]  # without wakeword-recorder[micro]
    assert len(micro) == 4 and all(" not installed " in row for row in micro), micro
    assert listed[-1].startswith("(microWakeWord's models come with its runtime"), listed
    listed = [row for row in listed[:-1] if row not in micro]
    assert len(listed) == 8 and all(row.split()[-2] == "ok" for row in listed), listed

    rec = tmp_path / "recordings"
    run(
        recorder,
        "run",
        "--source",
        f"file:{AUDIO / 'jarvis_pause_command.wav'}",
        "--recordings",
        rec,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    sidecars = sorted(rec.glob("*.json"))
    assert len(sidecars) == 1
    meta = json.loads(sidecars[0].read_text())
    assert meta["wake_word"] == "hey_jarvis" and (rec / meta["audio_file"]).is_file()
    assert "device_rate" not in meta  # a file source has no device format

    # --models-dir points elsewhere: nothing there yet, so the run stops with one line.
    empty = tmp_path / "empty"
    proc = subprocess.run(
        [
            str(recorder),
            "run",
            "--models-dir",
            str(empty),
            "--source",
            f"file:{AUDIO / 'jarvis_pause_command.wav'}",
            "--recordings",
            str(rec),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr.startswith("recorder: error: model melspectrogram (")
        and str(empty) in proc.stderr
        and len(proc.stderr.splitlines()) == 1
    ), proc.stderr


def test_the_wheel_writes_the_config_template_and_records_its_sample(venv: Path, tmp_path):
    env = user_env(tmp_path)
    recorder = venv / "bin/recorder"
    config = tmp_path / "config/recorder/recorder.toml"
    wrote = run(recorder, "config", "init", cwd=tmp_path, env=env)
    assert wrote.stdout.startswith(f"wrote {config}: edit it"), wrote.stdout
    assert config.read_bytes() == (REPO / "config/recorder.toml").read_bytes()
    assert run(recorder, "config", "path", cwd=tmp_path, env=env).stdout.strip() == str(config)
    again = subprocess.run(
        [str(recorder), "config", "init"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert again.returncode == 2 and again.stderr == (
        f"recorder: error: {config} exists: edit it, or move it away first\n"
    )

    # The demo's two command lines (README, `make demo`), with the checkout's models.
    demo = tmp_path / "demo"
    ran = run(
        recorder,
        "run",
        "--source",
        "sample",
        "--models-dir",
        REPO / "models",
        "--recordings",
        demo,
        "--state-dir",
        demo / ".state",
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert "wake word hey_jarvis detected" in ran.stderr, ran.stderr
    (sidecar,) = demo.glob("*.json")
    meta = json.loads(sidecar.read_text())
    assert meta["wake_word"] == "hey_jarvis" and meta["end_reason"] == "silence", meta
    assert meta["source"] == f"file:{venv_site(venv)}/recorder/data/speech_then_wake.wav"
    # Only the request: the talk before the wake word is not in what was kept.
    scene = SCENES["speech_then_wake"]
    assert scene["chat"][1] < meta["source_offset_s"] < scene["wake"][1], meta
    assert meta["source_offset_s"] + meta["duration_s"] > scene["command"][1], meta
    listed = run(recorder, "list", "--recordings", demo, cwd=tmp_path, env=env).stdout
    assert listed.splitlines()[-1].startswith("1 recording, 2."), listed


def venv_site(venv: Path) -> Path:
    (site,) = venv.glob("lib/python3.*/site-packages")
    return site


def test_models_directory_precedence(monkeypatch, tmp_path):
    from recorder import models

    monkeypatch.delenv("RECORDER_MODELS_DIR", raising=False)
    assert models.models_dir() == REPO / "models"  # a source checkout keeps its own
    monkeypatch.setenv("RECORDER_MODELS_DIR", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"
    manifest = models.load_manifest()
    assert manifest.directory == tmp_path / "m" and len(manifest.all_files()) == 8
    assert models.load_manifest(tmp_path / "x").directory == tmp_path / "x"
