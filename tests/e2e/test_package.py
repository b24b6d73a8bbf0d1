"""The package as a user gets it: build the sdist and wheel, install the wheel into a fresh venv
outside the checkout, fetch the models into a data directory, and record from a file."""

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
from conftest import AUDIO, REPO

# What a build needs; everything else in the checkout (venvs, models, caches) stays out.
SOURCES = ["pyproject.toml", "README.md", "recorder"]


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
                REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(REPO / name, src / name)
    run(sys.executable, "-m", "build", "--outdir", base / "dist", src)
    return base / "dist"


def test_sdist_and_wheel_hold_the_whole_package(dist: Path):
    (wheel,) = dist.glob("recorder-*.whl")
    (sdist,) = dist.glob("recorder-*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "recorder/manifest.toml",
        "recorder/cli.py",
        "recorder/sources/mic.py",
        "recorder/sources/__init__.py",
    ):
        assert name in in_wheel, sorted(in_wheel)
    assert not any(n.endswith(".onnx") for n in in_wheel)  # models are fetched, not shipped
    with tarfile.open(sdist) as t:
        in_sdist = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert "recorder/manifest.toml" in in_sdist and "pyproject.toml" in in_sdist


def test_wheel_installs_fetches_models_and_records_outside_the_checkout(dist: Path, tmp_path):
    (wheel,) = dist.glob("recorder-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RECORDER_MODELS_DIR", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
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
    micro = [row for row in listed if " microWakeWord " in row]  # without recorder[micro]
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


def test_models_directory_precedence(monkeypatch, tmp_path):
    from recorder import models

    monkeypatch.delenv("RECORDER_MODELS_DIR", raising=False)
    assert models.models_dir() == REPO / "models"  # a source checkout keeps its own
    monkeypatch.setenv("RECORDER_MODELS_DIR", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"
    manifest = models.load_manifest()
    assert manifest.directory == tmp_path / "m" and len(manifest.all_files()) == 8
    assert models.load_manifest(tmp_path / "x").directory == tmp_path / "x"
