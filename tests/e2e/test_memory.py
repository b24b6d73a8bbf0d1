"""Memory flat in the input's length: `recorder run --source file:` and `recorder score` on a
38-minute file peak within 5 MB of the same commands on a 1-minute file.

Each file is low noise followed by a real request (the wake word, then a command), so the
commands must read the long file to its end to find it. Peak RSS is the `ru_maxrss` of the
command's process, reported by a small launcher process: a child forked from this (large) test
process would count this process's pages until it execs.
"""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
from conftest import AUDIO, RATE, RECORDER, read_pcm, recordings

LONG_MIN, SHORT_MIN = 38.0, 1.0
SLACK_MB = 5.0
SCENE = "jarvis_pause_command"
NOISE_RMS = 20.0
"""About -64 dBFS: a quiet room, where the speech gate stays closed."""

LAUNCHER = (
    "import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True); sys.exit(rc)"
)


def write_noise_then_scene(path: Path, minutes: float) -> float:
    """`minutes` of low noise, then the scene, written a minute at a time (the test holds no
    more); returns where the scene starts, in seconds."""
    rng = np.random.default_rng(1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        left = round(minutes * 60 * RATE)
        while left:
            n = min(left, 60 * RATE)
            noise = np.round(rng.normal(0.0, NOISE_RMS, n))
            w.writeframes(noise.astype("<i2").tobytes())
            left -= n
        w.writeframes(read_pcm(AUDIO / f"{SCENE}.wav").tobytes())
    return minutes * 60


def peak_rss_mb(*args: str) -> tuple[float, str]:
    """The command's peak RSS in MB and its standard output."""
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(RECORDER), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    *out, maxrss_kb = proc.stdout.splitlines()
    return int(maxrss_kb) / 1024, "\n".join(out)


def test_run_and_score_peak_memory_does_not_grow_with_the_file(tmp_path):
    peaks: dict[str, dict[float, float]] = {"run": {}, "score": {}}
    for minutes in (SHORT_MIN, LONG_MIN):
        path = tmp_path / f"{minutes:g}min.wav"
        scene_s = write_noise_then_scene(path, minutes)
        rec = tmp_path / f"rec{minutes:g}"
        peaks["run"][minutes], _ = peak_rss_mb(
            "run", "--source", f"file:{path}", "--recordings", str(rec)
        )
        [(meta, _)] = recordings(rec)  # the request at the end of the file was heard
        assert meta["source_offset_s"] >= scene_s
        peaks["score"][minutes], table = peak_rss_mb("score", str(path))
        duration_s = scene_s + len(read_pcm(AUDIO / f"{SCENE}.wav")) / RATE
        assert f"{duration_s:.2f} s" in table and "  1 at " in table, table
        path.unlink()
    figures = {
        command: (by_length[SHORT_MIN], by_length[LONG_MIN]) for command, by_length in peaks.items()
    }
    report = "; ".join(
        f"{command}: {short:.1f} MB on {SHORT_MIN:g} min, {long:.1f} MB on {LONG_MIN:g} min "
        f"(+{long - short:.1f} MB)"
        for command, (short, long) in figures.items()
    )
    assert all(long - short <= SLACK_MB for short, long in figures.values()), report
