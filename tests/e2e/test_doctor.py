"""`recorder doctor` through the ALSA virtual microphone: each failure found, with its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, RECORDER, read_pcm
from virtual_mic import VirtualMic

SPEECH = read_pcm(AUDIO / "command_without_wake.wav")


def doctor(
    mic: VirtualMic, tmp_path: Path, *config_lines: str, rec: Path | None = None
) -> tuple[int, dict[str, dict]]:
    config = tmp_path / "recorder.toml"
    config.write_text('[audio]\nsource = "mic:virtualmic"\n' + "\n".join(config_lines) + "\n")
    proc = subprocess.run(
        [
            str(RECORDER),
            "doctor",
            "--json",
            "--config",
            str(config),
            "--recordings",
            str(rec or tmp_path / "rec"),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        env=mic.env,
        timeout=120,
    )
    assert proc.stderr == "" or "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] == (proc.returncode == 0)
    return proc.returncode, {c["name"]: c for c in report["checks"]}


def test_a_healthy_set_up_passes_every_check(tmp_path):
    with VirtualMic(tmp_path, np.tile(SPEECH, 2)) as mic:
        status, checks = doctor(mic, tmp_path)
    assert status == 0, checks
    assert list(checks) == [
        "config",
        "models",
        "input",
        "indicator",
        "recordings",
        "state",
        "service",
    ]
    assert "mic:virtualmic" in checks["input"]["detail"] and "dBFS" in checks["input"]["detail"]


def test_a_silent_microphone_is_found_with_the_mixer_fix(tmp_path):
    with VirtualMic(tmp_path) as mic:  # writes zeros
        status, checks = doctor(mic, tmp_path)
    assert status == 1
    assert not checks["input"]["ok"] and "silence" in checks["input"]["detail"]
    assert "alsamixer" in checks["input"]["fix"]
    assert all(c["ok"] for name, c in checks.items() if name != "input")


def test_a_missing_device_is_found(tmp_path):
    with VirtualMic(tmp_path, plugged=False) as mic:
        status, checks = doctor(mic, tmp_path)
    assert status == 1 and not checks["input"]["ok"]
    assert "mic:virtualmic: no audio input device" in checks["input"]["detail"]
    assert "recorder devices" in checks["input"]["fix"]


@pytest.mark.parametrize("kind", ["shared", "file"])
def test_an_unusable_recordings_directory_is_found(tmp_path, kind):
    rec = tmp_path / "rec"
    if kind == "shared":
        rec.mkdir()
        rec.chmod(0o777)
    else:
        rec.write_text("not a directory")
    with VirtualMic(tmp_path, np.tile(SPEECH, 2)) as mic:
        status, checks = doctor(mic, tmp_path, rec=rec)
    assert status == 1 and not checks["recordings"]["ok"]
    assert ("writable by others" if kind == "shared" else "not a directory") in checks[
        "recordings"
    ]["detail"]
    assert checks["input"]["ok"]


def test_a_failing_hook_is_found(tmp_path):
    hook = tmp_path / "hook.py"
    hook.write_text("import sys\nsys.stderr.write('no such LED\\n')\nsys.exit(4)\n")
    with VirtualMic(tmp_path, np.tile(SPEECH, 2)) as mic:
        status, checks = doctor(
            mic, tmp_path, "[indicator]", f'command = "{sys.executable} {hook}"'
        )
    assert status == 1 and not checks["indicator"]["ok"]
    assert "exited 4: no such LED" in checks["indicator"]["detail"]
