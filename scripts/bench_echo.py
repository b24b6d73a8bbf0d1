#!/usr/bin/env python3
"""Real voices while the device plays: the recorder with and without its playback reference.

The talkers' stream is bench_voices.py's (real people's "Alexa" and commands, a quiet room, 3-6 s
between trials). The device plays music-like sound (bench_voices' chords, bass and drums) or
speech (other real people's commands back to back, as a radio's talk) with its loopback as the
reference at -20 dBFS; the microphone hears the talker plus the playback through a room: a direct
path 1 ms after the reference and an exponentially decaying tail (RT60 `--rt60` s, 300 ms long),
its echo `--echo` dB above the talker's nominal level. Between some trials the playback itself
says "Alexa" (a real recording no talker uses): a self-wake when it records anything.

Modes, per playback and echo level:
  - none: the microphone alone, as without `[audio] reference_channel`;
  - linear, webrtc: the reference configured, with that `[audio] echo_canceller` before the
    ears, the playback scored too, and a detection the playback explains ignored
    (`recorder.playback`);
  - linear_norule, webrtc_norule: the echo cancelled, without the playback's wake-word scores
    (no self-wake rule);
  - linear_noresidual, webrtc_noresidual: the request's end judged without the residual echo's
    estimate (`recorder.residual`), as before it;
  - linear@S: the linear canceller with a filter S seconds long (the default is 0.3).
and "silent": the device plays nothing (the ceiling).

Per run: complete (of the trials openWakeWord's own loop detects with the device silent, those
whose command was saved complete), overlong (complete, but running > 3 s past the command),
false (saved, belonging to no trial and to no played wake word), self-wakes (recordings that
start inside a played wake word), ignored (detections the playback explained), and the CPU per
hour of audio of the echo canceller and of the reference's engine.

    .venv/bin/python scripts/bench_echo.py --voices DIR [--trials 60] [--echo 0,5,10]
        [--playback music,speech] [--modes none,linear,webrtc,linear_norule] [--jobs 2]
        [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_voices import (  # noqa: E402
    RATE,
    TALKER_DBFS,
    Run,
    Scene,
    _trim,
    active_level_db,
    build_scene,
    count,
    load_set,
    music_like,
    reference_detections,
    tv_talk,
)

from recorder.audio import FRAME_S, FRAME_SAMPLES, Frame  # noqa: E402

REFERENCE_DBFS = -20.0
PLAYED_WAKES = int(os.environ.get("BENCH_PLAYED_WAKES", "8"))
"""Played "Alexa"s per stream, in the gaps between trials."""


# --- the room's echo path --------------------------------------------------------------------
def room_ir(rt60_s: float, seed: int, length_s: float = 0.3, direct_ms: float = 1.0) -> np.ndarray:
    """A loudspeaker-to-microphone impulse response: the direct path `direct_ms` after the
    reference, then reflections as exponentially decaying noise (60 dB down in `rt60_s`)."""
    rng = np.random.default_rng(seed)
    n = int(length_s * RATE)
    ir = np.zeros(n)
    d = int(direct_ms * RATE / 1000)
    ir[d] = 1.0
    t = np.arange(n - d - 40) / RATE
    ir[d + 40 :] = 0.5 * rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60_s)
    return ir


def through_room(reference: np.ndarray, ir: np.ndarray, echo_dbfs: float) -> np.ndarray:
    """What the microphone hears of the playback: the reference convolved with the room, at an
    active level of `echo_dbfs`."""
    n = 1 << int(np.ceil(np.log2(len(reference) + len(ir))))
    y = np.fft.irfft(np.fft.rfft(reference, n) * np.fft.rfft(ir, n), n)[: len(reference)]
    return y * 10 ** ((echo_dbfs - active_level_db(y)) / 20)


def playback(
    kind: str, n: int, commands: list[np.ndarray], wakes: list[np.ndarray], scene: Scene, seed: int
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The device's output at the reference's level, with `PLAYED_WAKES` real "Alexa"s placed
    in the gaps before trials (clips no talker says); their spans in s."""
    rng = np.random.default_rng(seed)
    x = music_like(n, rng) if kind == "music" else tv_talk(n, commands[1::2], rng)
    x = x * 10 ** ((REFERENCE_DBFS - active_level_db(x * 32768)) / 20) * 32768
    spans: list[tuple[float, float]] = []
    step = max(1, len(scene.trials) // max(PLAYED_WAKES, 1))
    for k, i in enumerate(range(1, len(scene.trials) if PLAYED_WAKES else 0, step)):
        w = _trim(wakes[-1 - k % 40])
        w = w * 10 ** ((REFERENCE_DBFS - active_level_db(w)) / 20)
        at = int((scene.trials[i - 1].command[1] + 0.8) * RATE)
        if at + len(w) >= (scene.trials[i].wake[0] - 2.0) * RATE:
            continue  # no room before the talker's wake word
        x[at : at + len(w)] += w
        spans.append((at / RATE, (at + len(w)) / RATE))
    return x, spans


# --- the recorder's run --------------------------------------------------------------------------
def recorder_run(
    mic: np.ndarray, reference: np.ndarray | None, model: str, mode: str
) -> tuple[Run, int, float, float]:
    """The daemon's per-frame step over the stream; with a reference, through the echo stage.
    Also: detections ignored, CPU s of the canceller and of the reference's engine."""
    from recorder import pipeline
    from recorder.aec import LinearCanceller
    from recorder.config import load as load_config
    from recorder.echo import EchoStage, canceller
    from recorder.machine import (
        EndReason,
        UtteranceDiscarded,
        UtteranceReady,
        WakeDetected,
        WakeIgnored,
    )
    from recorder.residual import ResidualEcho

    toml = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_echo_{os.getpid()}.toml"
    toml.write_text(f'[wake]\nmodels = ["{model}"]\n')
    config = load_config(toml)
    engine = pipeline.build_engine(config)
    machine = pipeline.build_machine(config, engine)
    vad = pipeline.build_vad(config)
    timing = {"aec": 0.0, "ref": 0.0}
    echo = None
    if reference is not None:
        kind, _, rule = mode.partition("_")
        kind, _, tail = kind.partition("@")
        vad.residual = ResidualEcho() if rule != "noresidual" else None
        ref_engine = pipeline.build_engine(config) if rule != "norule" else None
        echo = EchoStage(
            _Timed(LinearCanceller(float(tail)) if tail else canceller(kind), timing, "aec"),
            _Timed(ref_engine, timing, "ref") if ref_engine is not None else None,
        )
    run, ignored = Run([], [], 0.0), 0

    def collect(events: list) -> None:
        nonlocal ignored
        for e in events:
            if isinstance(e, WakeDetected):
                run.wakes.append(e.frame_index * FRAME_S)
            elif isinstance(e, WakeIgnored):
                ignored += 1
            elif isinstance(e, UtteranceReady):
                run.saved.append(
                    (e.start_frame * FRAME_S, e.end_frame * FRAME_S, e.end_reason.value)
                )
            elif isinstance(e, UtteranceDiscarded):
                run.discarded.append((e.wake.frame_index * FRAME_S, e.reason))

    collect(machine.start())
    for i in range(len(mic) // FRAME_SAMPLES):
        part = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        ref = reference[part] if reference is not None else None
        a = pipeline.step(machine, engine, vad, Frame(i, mic[part], ref), echo=echo)
        if a is not None:
            collect(a.events)
    collect(machine.finish(EndReason.EOF))
    return run, ignored, timing["aec"], timing["ref"]


class _Timed:
    """An object whose `process` calls are timed (CPU) into `timing[key]`."""

    def __init__(self, inner, timing: dict, key: str):
        self.inner, self.timing, self.key = inner, timing, key

    def process(self, *args):
        t0 = time.process_time()
        out = self.inner.process(*args)
        self.timing[self.key] += time.process_time() - t0
        return out

    def __getattr__(self, name):
        return getattr(self.inner, name)


# --- one condition -------------------------------------------------------------------------------
def one(args: tuple) -> tuple[str, dict]:
    kind, echo_db, mode, voices, trials, model, rt60 = args
    wakes, commands = load_set(Path(voices))
    scene = build_scene("quiet", wakes, commands, trials)
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_echo_hits_{model}_{trials}.npy"
    if cache.exists():
        ref_hits = np.load(cache)
    else:
        ref_hits = reference_detections(scene.audio, model)
        np.save(cache, ref_hits)
    name = "silent" if kind == "silent" else f"{kind}:{echo_db:+d} {mode}"
    if kind == "silent":
        mic, reference, spans = scene.audio, None, []
    else:
        played, spans = playback(kind, len(scene.audio), commands, wakes, scene, seed=7)
        echo = through_room(played, room_ir(rt60, seed=3), TALKER_DBFS + echo_db)
        mic = np.clip(np.round(scene.audio + echo), -32768, 32767).astype(np.int16)
        reference = np.clip(np.round(played), -32768, 32767).astype(np.int16)
        if mode == "none":
            reference = None
    run, ignored, aec_s, ref_s = recorder_run(mic, reference, model, mode)
    out = count(scene, ref_hits, run)
    self_wakes = [s for s, _, _ in run.saved if any(lo - 0.3 <= s <= hi + 0.5 for lo, hi in spans)]
    hours = len(mic) / RATE / 3600
    out.update(
        played_wakes=len(spans),
        self_wakes=len(self_wakes),
        false=out["false"] - len(self_wakes),
        ignored=ignored,
        aec_cpu_s_per_h=aec_s / hours,
        ref_cpu_s_per_h=ref_s / hours,
        audio_min=len(mic) / RATE / 60,
    )
    return name, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--model", default="alexa")
    ap.add_argument("--echo", default="0,5,10", help="echo levels, dB above the talker")
    ap.add_argument("--playback", default="music,speech")
    ap.add_argument("--modes", default="none,linear,webrtc,linear_norule")
    ap.add_argument("--rt60", type=float, default=0.25)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    jobs = [("silent", 0, "none", str(a.voices), a.trials, a.model, a.rt60)]
    for kind in a.playback.split(","):
        for db in (int(x) for x in a.echo.split(",")):
            for mode in a.modes.split(","):
                jobs.append((kind, db, mode, str(a.voices), a.trials, a.model, a.rt60))
    with ProcessPoolExecutor(a.jobs) as pool:
        results = dict(pool.map(one, jobs))
    if a.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"model {a.model}, {a.trials} trials per run, room RT60 {a.rt60} s")
    print(
        f"{'condition':<22} {'detected':>8} {'complete':>8} {'overlong':>8} {'false':>5} "
        f"{'self-wakes':>10} {'ignored':>7} {'AEC CPU s/h':>11} {'ref CPU s/h':>11}"
    )
    for name, r in results.items():
        sw = f"{r['self_wakes']}/{r['played_wakes']}"
        print(
            f"{name:<22} {r['detected']:>8} {r['complete']:>8} {r['overlong']:>8} "
            f"{r['false']:>5} {sw:>10} {r['ignored']:>7} {r['aec_cpu_s_per_h']:>11.0f} "
            f"{r['ref_cpu_s_per_h']:>11.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
