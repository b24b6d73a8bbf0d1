#!/usr/bin/env python3
"""Measure the second-stage verifier on held-out voices: false accepts per hour and false-reject
rate at the wake word's threshold, with and without it.

Synthesized with espeak-ng (needs it): the wake phrase and near misses ("hey travis", "hey
marvin", ...) in many voices, speeds and pitches, over brown noise. Voices are split in two:
the verifier is trained as on the device, from the wake-word moments of one half's clips (the
enrolled positives) and the near-miss moments of that half's near-miss stream (the room's
negatives: frames scoring at least --collect-at), and measured on the other half.

    .venv/bin/python scripts/bench_verifier.py [--model hey_jarvis] [--thresholds 0.3,0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recorder import config as config_mod  # noqa: E402
from recorder.audio import FRAME_S, SAMPLE_RATE, read_wav  # noqa: E402
from recorder.onsets import count  # noqa: E402
from recorder.pipeline import build_engine  # noqa: E402
from recorder.sources import chunk  # noqa: E402
from recorder.vad import gate_vad  # noqa: E402
from recorder.verifier import WINDOW, features, train  # noqa: E402

VOICES = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en+f3",
    "en+m3",
    "en-us+f2",
    "en-us+m7",
    "en-gb+f4",
    "en-gb+klatt",
    "en+whisper",
    "en-us+croak",
]
SPEEDS = (135, 175)
PITCHES = (30, 70)
WAKE = {"hey_jarvis": "hey jarvis", "alexa": "alexa", "hey_mycroft": "hey mycroft"}
NEAR_MISSES = [
    "hey travis",
    "hey jervis",
    "hey garvis",
    "hey marvin",
    "hey davis",
    "hey service",
    "they jar this",
    "hey harvest",
    "hey charles",
    "a jar of this",
    "hey jealous",
    "hey jarred",
    "hey carlos",
    "hey nervous",
    "hey elvis",
]
REFRACTORY_FRAMES = 25


def speak(text: str, voice: str, speed: int, pitch: int, tmp: Path) -> np.ndarray:
    out = tmp / "say.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
        check=True,
        capture_output=True,
    )
    x = read_wav(out).astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 300)
    x = x[loud[0] : loud[-1] + 1] if len(loud) else x
    return x / (np.abs(x).max() + 1e-9) * 0.35 * 32768


def with_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    brown = np.cumsum(rng.standard_normal(len(x)))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")
    speech_rms = np.sqrt(np.mean(x[np.abs(x) > 300] ** 2)) if np.any(np.abs(x) > 300) else 1.0
    brown *= speech_rms / 10 ** (snr_db / 20) / (brown.std() + 1e-9)
    return np.clip(x + brown, -32768, 32767).astype(np.int16)


def stream(engine, name: str, samples: np.ndarray, collect_at: float):
    """Scores of every frame, and the verifier features of the frames scoring >= collect_at."""
    engine.gate = gate_vad()
    engine.reset()
    scores, feats = [], {}
    for f in chunk(samples):
        s = engine.process(f.samples)[name]
        if s >= collect_at:
            feats[len(scores)] = features(engine.recent_embeddings(WINDOW))
        scores.append(s)
    return np.array(scores), feats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hey_jarvis", choices=sorted(WAKE))
    ap.add_argument("--thresholds", default="0.3,0.5")
    ap.add_argument(
        "--collect-at",
        type=float,
        default=0.1,
        help="near-miss moments: frames scoring at least this (default 0.1)",
    )
    args = ap.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    config = config_mod.load(None)
    config = dataclasses.replace(
        config, wake=dataclasses.replace(config.wake, models=(args.model,))
    )
    engine = build_engine(config)
    name = engine.names[0]
    rng = np.random.default_rng(14)
    pad = np.zeros(SAMPLE_RATE, dtype=np.int16)
    started = time.monotonic()
    data: dict[str, dict[str, list]] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for i, voice in enumerate(VOICES):
            split = "train" if i % 2 == 0 else "test"
            d = data.setdefault(split, {"pos": [], "neg": []})
            for speed in SPEEDS:
                for pitch in PITCHES:
                    snr = float(rng.uniform(10, 30))
                    clip = with_noise(
                        np.concatenate(
                            [pad, speak(WAKE[args.model], voice, speed, pitch, tmp), pad]
                        ),
                        rng,
                        snr,
                    )
                    d["pos"].append(stream(engine, name, clip, args.collect_at))
                    parts = []
                    for text in NEAR_MISSES:
                        parts += [
                            speak(text, voice, speed, pitch, tmp),
                            np.zeros(int(rng.uniform(0.8, 2.0) * SAMPLE_RATE)),
                        ]
                    near = with_noise(np.concatenate(parts), rng, snr)
                    d["neg"].append(stream(engine, name, near, args.collect_at))
    synth_s = time.monotonic() - started

    train_pos = [f for _, feats in data["train"]["pos"] for f in feats.values()]
    train_neg = [f for _, feats in data["train"]["neg"] for f in feats.values()]
    verifier = train(name, np.array(train_pos), np.array(train_neg))
    test = data["test"]
    neg_hours = sum(len(s) for s, _ in test["neg"]) * FRAME_S / 3600

    print(
        f"model {name}; {len(VOICES) // 2} voices x {len(SPEEDS) * len(PITCHES)} variants "
        f"per split; training: {len(train_pos)} wake-word moments and {len(train_neg)} "
        f"near-miss moments (frames scoring >= {args.collect_at:g}); held out: "
        f"{len(test['pos'])} wake-word clips, {neg_hours * 60:.1f} min of near misses "
        f"({len(NEAR_MISSES)} phrases per variant); data and scoring took {synth_s:.0f} s"
    )
    print(
        f"{'threshold':>9}  {'FRR without':>11}  {'FRR with':>8}  {'FA/h without':>12}  "
        f"{'FA/h with':>9}  {'FA without':>10}  {'FA with':>7}  verdict"
    )
    for t in thresholds:

        def accepted(scores: np.ndarray, feats: dict, use: bool, t: float = t) -> np.ndarray:
            ok = scores >= t
            if use:
                for k in np.flatnonzero(ok):
                    ok[k] = bool(verifier.probability(feats[k]) >= verifier.decision)
            return ok

        frr = {
            u: float(np.mean([not accepted(s, f, u).any() for s, f in test["pos"]]))
            for u in (False, True)
        }
        fa = {
            u: sum(
                int(count(accepted(s, f, u).astype(float), [1.0], [1], REFRACTORY_FRAMES)[0, 0])
                for s, f in test["neg"]
            )
            for u in (False, True)
        }
        halves = fa[True] <= fa[False] / 2 and fa[False] > 0
        cheap = frr[True] - frr[False] <= 0.02
        verdict = (
            "meets the bar"
            if halves and cheap
            else (
                "does not meet the bar ("
                + ", ".join(
                    m
                    for m, bad in (
                        ("does not halve false accepts", not halves),
                        ("costs more than 2 points of false rejects", not cheap),
                    )
                    if bad
                )
                + ")"
            )
        )
        print(
            f"{t:9.2f}  {frr[False]:11.1%}  {frr[True]:8.1%}  {fa[False] / neg_hours:12.1f}  "
            f"{fa[True] / neg_hours:9.1f}  {fa[False]:10d}  {fa[True]:7d}  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
