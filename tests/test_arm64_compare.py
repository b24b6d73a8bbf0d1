"""scripts/arm64_smoke_compare.py, which decides CI's arm64 check: identical recordings pass,
and any difference in a WAV's bytes, in a sidecar's lasting fields or in the number of
recordings fails it. The wall-clock fields (id, audio file name, start time) may differ."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPARE = REPO / "scripts" / "arm64_smoke_compare.py"


def save(scene_dir: Path, stamp: str, audio: bytes, **meta: object) -> None:
    scene_dir.mkdir(parents=True, exist_ok=True)
    (scene_dir / f"{stamp}.wav").write_bytes(audio)
    sidecar = {
        "id": stamp,
        "audio_file": f"{stamp}.wav",
        "started_at": f"2026-12-07T{stamp}Z",
        "wake_word": "hey_jarvis",
        "score": 0.93,
        "samples": len(audio) // 2,
    }
    sidecar.update(meta)
    (scene_dir / f"{stamp}.json").write_text(json.dumps(sidecar))


def run(ref: Path, other: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(COMPARE), str(ref), str(other)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    """The same two recordings of one scene, saved at other wall-clock times."""
    ref, other = tmp_path / "x86", tmp_path / "arm"
    for root, stamps in ((ref, ("080000", "080005")), (other, ("090000", "090005"))):
        save(root / "scene", stamps[0], b"RIFF-one" * 50)
        save(root / "scene", stamps[1], b"RIFF-two" * 50)
    return ref, other


def test_identical_recordings_pass_whatever_their_times(runs: tuple[Path, Path]) -> None:
    result = run(*runs)
    assert result.returncode == 0, result.stdout
    assert result.stdout.count(" identical") == 4


def test_one_changed_sample_fails(runs: tuple[Path, Path]) -> None:
    ref, other = runs
    wav = sorted((other / "scene").glob("*.wav"))[1]
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1
    wav.write_bytes(bytes(data))
    result = run(ref, other)
    assert result.returncode == 1
    assert "scene[1] wav" in result.stdout and "MISMATCH" in result.stdout


def test_a_changed_score_fails(runs: tuple[Path, Path]) -> None:
    ref, other = runs
    sidecar = sorted((other / "scene").glob("*.json"))[0]
    meta = json.loads(sidecar.read_text())
    meta["score"] = 0.9300001
    sidecar.write_text(json.dumps(meta))
    result = run(ref, other)
    assert result.returncode == 1
    assert "score: 0.93 against 0.9300001" in result.stdout


def test_a_missing_recording_or_scene_fails(runs: tuple[Path, Path]) -> None:
    ref, other = runs
    for path in sorted((other / "scene").glob("090005.*")):
        path.unlink()
    assert run(ref, other).returncode == 1
    shutil.rmtree(other / "scene")
    assert run(ref, other).returncode == 1


def test_a_reference_that_saved_nothing_fails(tmp_path: Path) -> None:
    (tmp_path / "x86" / "scene").mkdir(parents=True)
    (tmp_path / "arm" / "scene").mkdir(parents=True)
    result = run(tmp_path / "x86", tmp_path / "arm")
    assert result.returncode == 1
    assert "nothing to compare" in result.stdout
