"""Shared test helpers: paths to real audio, running the real `recorder` executable to the end
(a running daemon, the one polling helper and the shared checks are in harness.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
AUDIO = REPO / "tests" / "audio"
SCENES = json.loads((AUDIO / "scenes.json").read_text())
OWW_FIXTURES = REPO / "tests" / "fixtures" / "openwakeword"
RECORDER = Path(sys.executable).parent / "recorder"
RATE = 16000


def oww_fixture(name: str) -> Path:
    path = OWW_FIXTURES / name
    if not path.exists():
        pytest.fail(f"missing real-audio fixture {path}")
    return path


def read_pcm(path: Path) -> np.ndarray:
    """Samples of a 16 kHz mono s16 WAV, read with the standard library (not our reader)."""
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_pcm(path: Path, samples: np.ndarray, rate: int = RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return path


def tone(freq: float, seconds: float, rate: int = RATE, channels: int = 1) -> np.ndarray:
    """A faded sine at a quarter of full scale, interleaved for `channels`."""
    t = np.arange(round(seconds * rate)) / rate
    fade = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)
    x = np.round(8000 * np.sin(2 * np.pi * freq * t) * fade).astype("<i2")
    return np.repeat(x[:, None], channels, axis=1).reshape(-1)


def run_recorder(
    *args: str, timeout: float = 120, env: dict | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(RECORDER), *args],
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        input=input,
    )


def recordings(directory: Path) -> list[tuple[dict, np.ndarray]]:
    """(sidecar, samples) for every recording, via the sidecar's audio_file."""
    out = []
    for sidecar in sorted(directory.glob("*.json")):
        meta = json.loads(sidecar.read_text())
        out.append((meta, read_pcm(sidecar.parent / meta["audio_file"])))
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests under tests/e2e/ are end-to-end scenes: `pytest -m "not e2e"` leaves them out."""
    for item in items:
        if item.path.parent.name == "e2e":
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def manifest():
    from recorder import models

    m = models.load_manifest()
    models.verify_installed(m, m.all_files())
    return m


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory, monkeypatch):
    """Each test's daemons get their own runtime, state and config directories (control socket,
    mute, the config search path)."""
    base = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base / "run"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))  # no config file found there
    monkeypatch.setenv("RECORDER_SYSTEM_CONFIG", str(base / "etc" / "recorder.toml"))
    for var in (
        "RUNTIME_DIRECTORY",
        "STATE_DIRECTORY",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "RECORDER_CONFIG",
        "CACHE_DIRECTORY",
    ):
        monkeypatch.delenv(var, raising=False)
    # one graph cache for the whole run, as a service keeps one between its starts
    monkeypatch.setenv("RECORDER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@contextlib.contextmanager
def small_tmpfs(path: Path, size_kib: int):
    """A real tmpfs of `size_kib` mounted at `path` (skips the test where mounting is refused)."""
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)
