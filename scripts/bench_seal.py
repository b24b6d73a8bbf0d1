#!/usr/bin/env python3
"""Measure what sealing costs a saved request: Storage.save of a typical 5-s request, sealed
(age to one X25519 recipient) and plaintext, on the same disk in the same run, each repeated
and interleaved; prints the median of each, the difference in ms and their ratio, and the cost
of the encryption alone (in memory, no I/O).

    .venv/bin/python scripts/bench_seal.py [--seconds 5] [--repeat 200] [--dir DIR]

--dir picks the disk (default: a temporary directory under the current one, so that the fsyncs
reach the same disk the recordings would be on).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder.seal import Sealer, keygen  # noqa: E402
from recorder.storage import Storage  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(round(16000 * args.seconds)) * 3000).astype(np.int16)
    meta = {"wake_word": "hey_jarvis", "started_at": "2026-11-28T06:00:00.000Z", "duration_s": 5.0}
    _, recipient = keygen()
    sealer = Sealer([recipient])
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        plain = Storage(Path(tmp) / "plain")
        sealed = Storage(Path(tmp) / "sealed", sealer)
        plain.prepare()
        sealed.prepare()
        times: dict[str, list[float]] = {"plain": [], "sealed": [], "encrypt": []}
        for i in range(args.repeat + 5):
            for name, storage in (("plain", plain), ("sealed", sealed)):
                t0 = time.perf_counter()
                rec = storage.save(f"R{i:05d}", audio, meta)
                dt = time.perf_counter() - t0
                storage.delete(rec)
                if i >= 5:  # the first few warm up the caches and the allocator
                    times[name].append(dt)
            t0 = time.perf_counter()
            sealer.seal(audio.tobytes())
            if i >= 5:
                times["encrypt"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    print(f"a {args.seconds:g}-s request ({audio.nbytes / 1000:.0f} kB), {args.repeat} saves each")
    print(f"plaintext save (WAV + JSON, fsynced): {med['plain']:8.3f} ms")
    print(f"sealed save (age, fsynced):           {med['sealed']:8.3f} ms")
    print(
        f"sealing adds:                         {med['sealed'] - med['plain']:8.3f} ms per request"
    )
    print(f"ratio sealed / plaintext:             {med['sealed'] / med['plain']:8.2f}")
    print(f"encryption alone (in memory):         {med['encrypt']:8.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
