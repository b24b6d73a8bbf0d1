#!/usr/bin/env python3
"""Soak benchmark: hours of audio through the real daemon at full speed; RSS and fds over time.

The daemon reads raw audio from stdin (a live source, so the control socket, mute switch and
watchdog paths are all running). The audio loops the test scenes (wake words, commands, a bare
wake word, speech without one) over the quiet noise bed, so requests are detected, saved and
pruned by retention all along. Every few audio-minutes the script samples the daemon's RSS
(/proc/PID/status VmRSS) and open file descriptors (/proc/PID/fd), and reports the growth after
warm-up.

    .venv/bin/python scripts/soak.py [--hours 3] [--warmup-minutes 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RATE = 16000


def scenes() -> np.ndarray:
    parts = []
    for wav in sorted((REPO / "tests" / "audio").glob("*.wav")):
        with wave.open(str(wav)) as w:
            parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    return np.concatenate(parts)


def sample(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
    return rss_kb, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--warmup-minutes", type=float, default=20.0)
    ap.add_argument("--every-minutes", type=float, default=10.0)
    args = ap.parse_args()

    loop = scenes().tobytes()
    total_bytes = int(args.hours * 3600 * RATE * 2)
    tmp = Path(tempfile.mkdtemp(prefix="recorder-soak-"))
    config = tmp / "soak.toml"
    config.write_text(
        '[wake]\nmodels = ["hey_jarvis", "alexa"]\n'
        '[storage]\nmax_count = 50\n[log]\nlevel = "warning"\n'
    )
    recorder = Path(sys.executable).parent / "recorder"
    proc = subprocess.Popen(
        [
            str(recorder),
            "run",
            "--source",
            "stdin",
            "--config",
            str(config),
            "--recordings",
            str(tmp / "rec"),
            "--runtime-dir",
            str(tmp / "run"),
            "--state-dir",
            str(tmp / "state"),
        ],
        stdin=subprocess.PIPE,
    )
    fed = [0]

    def feed() -> None:
        while fed[0] < total_bytes:
            chunk = loop[: total_bytes - fed[0]]
            proc.stdin.write(chunk)
            fed[0] += len(chunk)
        proc.stdin.close()

    threading.Thread(target=feed, daemon=True).start()
    rows = []
    next_at = 0.0
    t0 = time.monotonic()
    while proc.poll() is None:
        audio_min = fed[0] / (RATE * 2) / 60  # fed, within one pipe buffer of processed
        if audio_min >= next_at:
            try:
                rss, fds = sample(proc.pid)
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                break
            rows.append(
                {
                    "audio_min": round(audio_min, 1),
                    "rss_mb": round(rss / 1024, 1),
                    "fds": fds,
                    "wall_s": round(time.monotonic() - t0, 1),
                }
            )
            print(f"{audio_min:8.1f} audio-min  rss {rss / 1024:6.1f} MB  fds {fds}", flush=True)
            next_at += args.every_minutes
        time.sleep(0.05)
    wall = time.monotonic() - t0
    saved = len(list((tmp / "rec").glob("*.wav")))
    warm = [r for r in rows if r["audio_min"] >= args.warmup_minutes]
    result = {
        "hours": args.hours,
        "wall_s": round(wall, 1),
        "exit": proc.returncode,
        "recordings_kept": saved,
        "samples": rows,
    }
    if warm:
        result["rss_growth_after_warmup_mb"] = round(
            max(r["rss_mb"] for r in warm) - warm[0]["rss_mb"], 2
        )
        # a save in progress holds one file open for a moment: compare the settled counts
        fds = [r["fds"] for r in warm]
        result["fd_growth_after_warmup"] = min(fds[-3:]) - min(fds[:3])
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}))
    shutil.rmtree(tmp)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
