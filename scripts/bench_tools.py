#!/usr/bin/env python3
"""Wall time of `recorder score` (or `tune`) with --jobs 1 against --jobs 2, in one run.

Builds FILES WAVs of SECONDS s each (8 x 120 s by default) in a temp directory, from the test
scenes (wake words, commands, chatter) laid end to end over a quiet brown-noise bed with a little
gain jitter, so that most of the audio is speech-like and the speech gate opens often. Then
runs the real `recorder` executable on them, once per --jobs value (after one untimed warm-up
run), and prints each wall time and the speed-up.

    .venv/bin/python scripts/bench_tools.py [--files 8] [--seconds 120] [--tool score|tune]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
AUDIO = REPO / "tests" / "audio"
RECORDER = Path(sys.executable).parent / "recorder"
RATE = 16000


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def write(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(np.round(samples), -32768, 32767).astype("<i2").tobytes())


def brown_noise(n: int, rng: np.random.Generator, level: float) -> np.ndarray:
    x = np.cumsum(rng.standard_normal(n))
    x -= np.convolve(x, np.ones(4001) / 4001, mode="same")  # keep it from drifting
    return x / (np.abs(x).max() or 1.0) * level


def make_files(directory: Path, n_files: int, seconds: float, seed: int = 7) -> list[Path]:
    rng = np.random.default_rng(seed)
    scenes = [read(p) for p in sorted(AUDIO.glob("*.wav"))]
    paths = []
    for i in range(n_files):
        parts, total = [], 0
        while total < seconds * RATE:
            s = scenes[rng.integers(len(scenes))]
            # the scenes' own lead-in is 2 s of noise bed: keep a part of it
            s = s[int(rng.uniform(1.0, 1.9) * RATE) :] * rng.uniform(0.6, 1.2)
            parts.append(s)
            total += len(s)
        audio = np.concatenate(parts)[: int(seconds * RATE)]
        audio += brown_noise(len(audio), rng, 150.0)
        paths.append(directory / f"bench_{i:02d}.wav")
        write(paths[-1], audio)
    return paths


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(RECORDER), *args], capture_output=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"recorder {' '.join(args)} failed:\n{proc.stderr.decode()}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each file")
    ap.add_argument("--tool", choices=["score", "tune"], default="score")
    ap.add_argument("--jobs", default="1,2", help="the --jobs values to compare")
    opts = ap.parse_args()
    jobs = [int(j) for j in opts.jobs.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_tools_") as tmp:
        paths = make_files(Path(tmp), opts.files, opts.seconds)
        audio_s = opts.files * opts.seconds
        if opts.tool == "score":
            base = ["score", tmp, "--json"]
        else:
            half = len(paths) // 2
            base = [
                "tune",
                "--positives",
                *map(str, paths[:half]),
                "--negatives",
                *map(str, paths[half:]),
                "--json",
            ]
        print(
            f"{opts.tool}: {opts.files} files x {opts.seconds:g} s = {audio_s / 60:.1f} min of "
            f"audio, {os.cpu_count()} cores"
        )
        timed([*base, "--jobs", str(jobs[-1])])  # warm-up: page cache, model files
        times = {}
        for j in jobs:
            times[j] = timed([*base, "--jobs", str(j)])
            print(f"  --jobs {j}: {times[j]:6.2f} s wall  ({audio_s / times[j]:6.1f}x realtime)")
        first, last = jobs[0], jobs[-1]
        print(f"speed-up --jobs {last} vs --jobs {first}: {times[first] / times[last]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
