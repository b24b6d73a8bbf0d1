#!/usr/bin/env python3
"""Save-to-command latency of the post-save command ([handoff] command).

Runs the real daemon on a file of N requests (tests/audio/two_requests.wav repeated, as fast as
the CPU allows) with a small shell command that writes the clock when it starts. The latency of
a request is that moment minus the WAV's modification time (the end of writing its audio,
before the fsyncs and the renames: a conservative start). The reference, measured in the same
run, is the same command started directly with subprocess, N times. Prints median and p95 of
both, and their difference (what the hand-off adds).

    .venv/bin/python scripts/bench_handoff.py [--requests 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORDER = Path(sys.executable).parent / "recorder"
HOOK = '#!/bin/sh\necho "$(date +%s%N) $RECORDER_ID" >> "{log}"\n'


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def figures(name: str, ms: list[float]) -> None:
    print(
        f"{name:>34}: median {statistics.median(ms):6.1f} ms  p95 {p95(ms):6.1f} ms  "
        f"max {max(ms):6.1f} ms  (n={len(ms)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="requests saved (even; default 40)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_handoff_") as tmp_name:
        tmp = Path(tmp_name)
        with wave.open(str(REPO / "tests" / "audio" / "two_requests.wav")) as w:
            params, pcm = w.getparams(), w.readframes(w.getnframes())
        scene = tmp / "scene.wav"
        with wave.open(str(scene), "wb") as w:
            w.setparams(params)
            for _ in range(args.requests // 2):  # one copy at a time: memory stays one scene's
                w.writeframes(pcm)
        log = tmp / "hook.log"
        hook = tmp / "hook.sh"
        hook.write_text(HOOK.format(log=log))
        hook.chmod(0o755)
        cfg = tmp / "recorder.toml"
        cfg.write_text(f'[handoff]\ncommand = "{hook}"\nqueue = {args.requests + 1}\n')
        rec = tmp / "rec"
        proc = subprocess.run(
            [
                str(RECORDER),
                "run",
                "--config",
                str(cfg),
                "--source",
                f"file:{scene}",
                "--recordings",
                str(rec),
            ],
            capture_output=True,
        )
        if proc.returncode != 0:
            sys.exit(proc.stderr.decode())
        started = {
            rid: int(ns) for ns, rid in (line.split() for line in log.read_text().splitlines())
        }
        latency = [
            (started[wav.stem] - os.stat(wav).st_mtime_ns) / 1e6
            for wav in sorted(rec.glob("*.wav"))
            if wav.stem in started
        ]
        log.unlink()
        reference = []
        env = {**os.environ, "RECORDER_ID": "reference"}
        for _ in range(len(latency)):
            t0 = time.time_ns()
            subprocess.run([str(hook)], env=env, check=True)
            reference.append((int(log.read_text().split()[-2]) - t0) / 1e6)
    print(f"{len(latency)} requests saved, each handed to the command")
    figures("save -> command started (daemon)", latency)
    figures("subprocess -> command started (ref)", reference)
    print(
        f"{'added by the hand-off':>34}: median "
        f"{statistics.median(latency) - statistics.median(reference):6.1f} ms "
        f"(ratio {statistics.median(latency) / statistics.median(reference):.2f}x the reference)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
