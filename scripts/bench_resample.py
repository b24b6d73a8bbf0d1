#!/usr/bin/env python3
"""Benchmark: what a microphone at another rate or channel count costs.

Measured in one run on the same audio, on this machine, in CPU seconds per hour of audio:
  - the microphone's reframer (channel selection + soxr streaming resampling to 16 kHz) for
    48 kHz stereo, 44.1 kHz mono, and 16 kHz stereo (channel selection only), fed 80 ms blocks;
  - the project's own Kaiser-windowed sinc (recorder.audio.resample, used for WAV files) on the
    first minute of the same 48 kHz audio, in 80 ms blocks with 64 samples of context each side,
    for comparison;
  - the wake-word engine (ungated, one model) on the 16 kHz result: the reference the ratios
    are taken against.

    .venv/bin/python scripts/bench_resample.py [--minutes 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from make_test_audio import noise_bed  # noqa: E402

from recorder import models  # noqa: E402
from recorder.audio import SAMPLE_RATE, read_wav, resample  # noqa: E402
from recorder.engines import OpenWakeWordEngine  # noqa: E402
from recorder.sources.mic import OpenFormat, Reframer  # noqa: E402

FIXTURES = REPO.parent / "shared" / "fixtures" / "openwakeword"


def speech_16k(seconds: float) -> np.ndarray:
    """Real speech clips over a quiet noise bed, repeated to `seconds`."""
    clips = [read_wav(p) for p in sorted(FIXTURES.glob("*.wav"))]
    speech = np.concatenate(clips).astype(np.float64)
    n = int(seconds * SAMPLE_RATE)
    out = np.resize(speech, n) + noise_bed(seconds, 0)[:n]
    return np.clip(out, -32768, 32767).astype(np.int16)


def at_rate(x: np.ndarray, rate: int) -> np.ndarray:
    y = resample(x.astype(np.float64) / 32768.0, SAMPLE_RATE, rate)
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def reframer_cost(device: np.ndarray, fmt: OpenFormat) -> float:
    block = round(fmt.rate * 0.08)

    def go() -> None:
        r = Reframer(fmt)
        for i in range(0, len(device), block):
            for _ in r.push(device[i : i + block]):
                pass

    return cpu(go)


def kaiser_cost(device: np.ndarray, rate: int) -> float:
    """The Kaiser sinc, streamed the simple way: each 80 ms block with 64 samples of context."""
    block, ctx = round(rate * 0.08), 64
    x = device.astype(np.float64) / 32768.0

    def go() -> None:
        for i in range(0, len(x), block):
            resample(x[max(0, i - ctx) : i + block + ctx], rate, SAMPLE_RATE)

    return cpu(go)


def engine_cost(samples: np.ndarray) -> float:
    m = models.load_manifest()
    engine = OpenWakeWordEngine(
        m.path(m.features["melspectrogram"]),
        m.path(m.features["embedding"]),
        [models.resolve_wake_model(m, "hey_jarvis")],
    )

    def go() -> None:
        for i in range(0, len(samples) - 1279, 1280):
            engine.process(samples[i : i + 1280])

    return cpu(go)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    seconds = args.minutes * 60
    per_hour = 3600 / seconds
    speech = speech_16k(seconds)
    s48, s44 = at_rate(speech, 48000), at_rate(speech, 44100)
    quiet = (np.random.default_rng(1).standard_normal(len(s48)) * 300).astype(np.int16)
    cases = {
        "48 kHz stereo -> 16 kHz (soxr)": reframer_cost(
            np.column_stack([quiet, s48]), OpenFormat(48000, 2, 1)
        ),
        "44.1 kHz mono -> 16 kHz (soxr)": reframer_cost(s44, OpenFormat(44100, 1, 0)),
        "16 kHz stereo, one channel kept": reframer_cost(
            np.column_stack([speech, speech]), OpenFormat(SAMPLE_RATE, 2, 0)
        ),
        # The slow one runs on the first minute only, scaled to the same duration.
        "48 kHz -> 16 kHz, Kaiser sinc (recorder.audio.resample)": kaiser_cost(
            s48[: 60 * 48000], 48000
        )
        * len(s48)
        / min(len(s48), 60 * 48000),
    }
    engine = engine_cost(speech) * per_hour
    results = {name: round(c * per_hour, 2) for name, c in cases.items()}
    if args.json:
        print(
            json.dumps(
                {"cpu_s_per_hour": results, "engine_cpu_s_per_hour": round(engine, 2)}, indent=2
            )
        )
        return 0
    print(
        f"{args.minutes:g} min of audio; CPU seconds per hour of audio, and the ratio to the "
        "wake-word engine (ungated, hey_jarvis) on the same audio"
    )
    print(f"{'wake-word engine (reference)':<58} {engine:8.2f}   1.000x")
    for name, value in results.items():
        print(f"{name:<58} {value:8.2f}   {value / engine:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
