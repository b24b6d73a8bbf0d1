#!/usr/bin/env python3
"""Real voices in real rooms: does the recorder keep every request its wake-word model heard?

Builds, per room condition, one continuous stream of trials: room sound, a real person saying
the wake word, a natural pause, a real person's spoken command, more room sound. The wake
words and the commands are crowd-sourced recordings of real people (Picovoice's
wake-word-benchmark and speech-to-intent-benchmark, Apache-2.0; see docs/tuning.md for where
to get them). The room: a quiet bed alone, or with steady (pink) noise, TV-like talk (other
people's commands, back to back) or music-like sound (synthesized chords, bass and drums) at
20, 10, 5 and 0 dB SNR against the talker's active speech level.

Per condition it counts:
  - detected: trials whose wake word openWakeWord's own loop (the `openwakeword` package)
    detects at 0.5; not woken: of those, trials in which the recorder detected no wake word
    (what the speech gate would cost);
  - complete: of those, trials whose command the recorder saved complete (from before the
    command's first word to after its last);
  - lost: detected but not saved complete; overlong: complete captures running more than 3 s
    past the command's end; false: recordings saved that belong to no trial's wake word;
  - gate open: the share of frames on which the speech gate let the models run.

    .venv/bin/python scripts/bench_voices.py --voices DIR [--trials 329] [--model alexa]
        [--conditions quiet,steady:10,tv:5,...] [--set KEY=VALUE ...] [--json]

DIR holds wake/*.wav (the wake word, any rate; converted) and commands/*.wav. `--set` changes
a configuration value for the recorder's run, e.g. `--set wake.gate=false`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from make_test_audio import noise_bed  # noqa: E402

from recorder.audio import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, Frame, read_wav  # noqa: E402

RATE = SAMPLE_RATE
TALKER_DBFS = -33.0
"""The talker's nominal active speech level at the microphone; each trial's talker is up to
`TALKER_SPREAD_DB` quieter or louder (a far or near talker, a low or high gain), while the room's
sound stays at its level: SNRs are against the nominal level."""
TALKER_SPREAD_DB = 6.0
CONDITIONS = ["quiet"] + [
    f"{kind}:{snr}" for kind in ("steady", "tv", "music") for snr in (20, 10, 5, 0)
]
END_TOLERANCE_S = 0.15
"""A capture is complete when it ends no earlier than this before the command's last sound."""
OVERLONG_S = 3.0


# --- measuring clean clips -------------------------------------------------------------------
def _subframe_energy(x: np.ndarray, n: int = 320) -> np.ndarray:
    m = len(x) // n
    return (x[: m * n].reshape(m, n).astype(np.float64) ** 2).mean(axis=1) + 1e-3


def active_level_db(x: np.ndarray) -> float:
    """RMS in dBFS over the 20 ms parts within 30 dB of the loudest (a speech level)."""
    e = _subframe_energy(x)
    active = e[e > e.max() * 1e-3]
    return float(10 * np.log10(active.mean() / 32768**2))


def speech_span(x: np.ndarray) -> tuple[float, float]:
    """First and last sound of a clean clip's speech, in seconds: the first and last runs of at
    least 100 ms within 30 dB of the clip's loudest 20 ms (a click or a breath is shorter or
    quieter)."""
    e = _subframe_energy(x)
    loud = e > max(e.max() * 1e-3, np.percentile(e, 10) * 10)
    idx = np.flatnonzero(loud)
    runs = np.split(idx, np.flatnonzero(np.diff(idx) > 2) + 1)  # gaps of 40 ms or less join
    runs = [r for r in runs if len(r) >= 5]
    if not runs:
        return 0.0, len(x) / RATE
    return runs[0][0] * 0.02, (runs[-1][-1] + 1) * 0.02


# --- room sounds -------------------------------------------------------------------------------
def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[1:] /= np.sqrt(f[1:] / f[1])
    spec[0] = 0
    return np.fft.irfft(spec, n)


def music_like(n: int, rng: np.random.Generator) -> np.ndarray:
    """Chords, a bass line and drums at 100-130 bpm, new notes every beat."""
    out = np.zeros(n)
    t = 0
    scale = [0, 2, 4, 7, 9, 12, 14, 16]
    while t < n:
        bpm = rng.uniform(100, 130)
        beat = int(60 / bpm * RATE)
        root = 196.0 * 2 ** (rng.integers(0, 7) / 12)
        for b in range(16):
            s = t + b * beat
            if s >= n:
                break
            k = np.arange(min(beat * 2, n - s))
            env = np.exp(-k / (0.35 * RATE))
            chord = [root * 2 ** (scale[rng.integers(0, len(scale))] / 12) for _ in range(3)]
            tone = sum(
                sum(np.sin(2 * np.pi * f * h * k / RATE) / h**1.5 for h in (1, 2, 3, 4))
                for f in chord
            )
            out[s : s + len(k)] += 0.5 * env * tone
            bass = np.sin(2 * np.pi * root / 2 * k / RATE) * np.exp(-k / (0.2 * RATE))
            out[s : s + len(k)] += 0.8 * bass
            d = min(int(0.12 * RATE), n - s)
            hit = rng.standard_normal(d) * np.exp(-np.arange(d) / (0.03 * RATE))
            if b % 2 == 0:  # kick: a falling sine; snare: noise
                kick = np.sin(
                    2 * np.pi * 60 * np.arange(d) / RATE * (1 + np.exp(-np.arange(d) / 400))
                )
                out[s : s + d] += 1.2 * kick * np.exp(-np.arange(d) / (0.05 * RATE))
            else:
                out[s : s + d] += 0.6 * hit
            if rng.random() < 0.5:  # a melody note on the off-beat
                m = s + beat // 2
                k2 = np.arange(min(beat // 2, max(n - m, 0)))
                f = root * 2 * 2 ** (scale[rng.integers(0, len(scale))] / 12)
                out[m : m + len(k2)] += (
                    0.4 * np.sin(2 * np.pi * f * k2 / RATE) * np.exp(-k2 / (0.15 * RATE))
                )
        t += 16 * beat
    return out


def tv_talk(n: int, clips: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Other people's speech back to back with short pauses, as a TV's talk show sounds."""
    out = np.zeros(n)
    t = 0
    while t < n:
        c = clips[rng.integers(len(clips))]
        lo, hi = speech_span(c)
        c = c[int(lo * RATE) : int(hi * RATE)]
        c = c / 10 ** (active_level_db(c) / 20) / 32768  # each voice at the same level
        m = min(len(c), n - t)
        out[t : t + m] += c[:m]
        t += m + int(rng.uniform(0.1, 0.6) * RATE)
    return out


def room(kind: str, n: int, tv_clips: list[np.ndarray], seed: int) -> np.ndarray:
    """Unit-level room sound of `kind` (RMS 1 over its active parts)."""
    rng = np.random.default_rng(seed)
    if kind == "steady":
        x = pink_noise(n, rng)
    elif kind == "music":
        x = music_like(n, rng)
    elif kind == "tv":
        x = tv_talk(n, tv_clips, rng)
    else:
        raise ValueError(kind)
    level = 10 ** (active_level_db(x * 1000) / 20) * 32768 / 1000
    return x / level


# --- the scene -------------------------------------------------------------------------------
@dataclass
class Trial:
    wake: tuple[float, float]  # the wake word's speech, s in the stream
    command: tuple[float, float]  # the command's first and last sound


@dataclass
class Scene:
    audio: np.ndarray
    trials: list[Trial] = field(default_factory=list)


def _trim(x: np.ndarray, keep_s: float = 0.1) -> np.ndarray:
    """A clip cut to its speech and `keep_s` of its own sound either side. Each clip was
    recorded in its own room: a clip's hum or hiss, spliced into this scene's room, would start
    and stop with the words, which no real room's sound does."""
    lo, hi = speech_span(x)
    return x[max(0, int((lo - keep_s) * RATE)) : int((hi + keep_s) * RATE)]


def load_set(voices: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    wakes = [read_wav(p).astype(np.float64) for p in sorted((voices / "wake").glob("*.wav"))]
    commands = [read_wav(p).astype(np.float64) for p in sorted((voices / "commands").glob("*.wav"))]
    if not wakes or not commands:
        raise SystemExit(f"{voices}: needs wake/*.wav and commands/*.wav")
    return wakes, commands


def build_scene(
    condition: str, wakes: list[np.ndarray], commands: list[np.ndarray], trials: int, seed: int = 1
) -> Scene:
    """Trials back to back: 3-6 s of room, the wake word, a pause of 0.2-1.4 s (0.1 s of each
    clip's own sound and 0-1.2 s more), the command; the talkers' commands and the TV's voices
    are disjoint halves of the command set."""
    rng = np.random.default_rng(seed)
    own, tv = commands[0::2], commands[1::2]
    pieces, scene_trials, t = [], [], 0
    for i in range(trials):
        gap = int(rng.uniform(3.0, 6.0) * RATE)
        level = TALKER_DBFS + rng.uniform(-TALKER_SPREAD_DB, TALKER_SPREAD_DB)
        w = wakes[i % len(wakes)]
        c = own[(i * 7) % len(own)]
        w = w * 10 ** ((level - active_level_db(w)) / 20)
        c = c * 10 ** ((level - active_level_db(c)) / 20)
        w, c = _trim(w), _trim(c)
        pause = int(rng.uniform(0.0, 1.2) * RATE)
        ws, we = speech_span(w)
        cs, ce = speech_span(c)
        t += gap
        w_at, c_at = t, t + len(w) + pause
        scene_trials.append(
            Trial((w_at / RATE + ws, w_at / RATE + we), (c_at / RATE + cs, c_at / RATE + ce))
        )
        pieces += [np.zeros(gap), w, np.zeros(pause), c]
        t = c_at + len(c)
    pieces.append(np.zeros(int(4 * RATE)))
    x = np.concatenate(pieces)
    x += noise_bed(len(x) / RATE + 1, seed)[: len(x)]
    if condition != "quiet":
        kind, snr = condition.split(":")
        noise = room(kind, len(x), tv, seed + 1)
        x += noise * 32768 * 10 ** ((TALKER_DBFS - float(snr)) / 20)
    return Scene(np.clip(np.round(x), -32768, 32767).astype(np.int16), scene_trials)


# --- the two listeners ---------------------------------------------------------------------------
def reference_detections(audio: np.ndarray, model: str, threshold: float = 0.5) -> np.ndarray:
    """openWakeWord's own loop: the frames (80 ms) whose score reaches the threshold."""
    from openwakeword.model import Model

    from recorder import models

    manifest = models.load_manifest(None)
    oww = Model(
        wakeword_models=[str(manifest.path(manifest.wakewords[model]))],
        inference_framework="onnx",
        melspec_model_path=str(manifest.path(manifest.features["melspectrogram"])),
        embedding_model_path=str(manifest.path(manifest.features["embedding"])),
    )
    hits = []
    for i in range(len(audio) // FRAME_SAMPLES):
        score = next(iter(oww.predict(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]).values()))
        if score >= threshold:
            hits.append(i)
    return np.array(hits, dtype=int)


@dataclass
class Run:
    saved: list[tuple[float, float, str]]  # start s, end s, end reason
    discarded: list[tuple[float, str]]  # wake time s, reason
    gate_open: float
    wakes: list[float] = field(default_factory=list)  # detection times, s


class Replay:
    """The engine's per-frame scores, as a cached run of the same engine on the same audio
    gave them (the models are deterministic): the endpointing can be re-measured without
    running the models again."""

    def __init__(self, names: list[str], scores: np.ndarray, gate_open_frames: int):
        self.names = names
        self.embeddings = None  # no verifier in the benchmark
        self.scores = scores
        self.gate_open_frames = gate_open_frames
        self._i = 0

    def process(self, samples: np.ndarray) -> dict[str, float]:
        row = self.scores[self._i]
        self._i += 1
        return {n: float(v) for n, v in zip(self.names, row, strict=True)}


def recorder_run(
    audio: np.ndarray, model: str, settings: list[str], scores_file: Path | None = None
) -> Run:
    """The daemon's own per-frame step (pipeline.step: engine, gate, VAD, machine) over the
    stream, with the shipped configuration and `settings` (KEY=VALUE) on top. With
    `scores_file`, the engine's scores are kept there, and read from there on the next run."""
    from recorder import pipeline
    from recorder.config import load as load_config
    from recorder.machine import EndReason, UtteranceDiscarded, UtteranceReady, WakeDetected

    lines = [f'[wake]\nmodels = ["{model}"]']
    by_section: dict[str, list[str]] = {}
    for s in settings:
        key, value = s.split("=", 1)
        section, name = key.rsplit(".", 1)
        by_section.setdefault(section, []).append(f"{name} = {value}")
    for section, items in by_section.items():
        if section == "wake":
            lines += items
        else:
            lines += [f"[{section}]", *items]
    toml = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_voices_{os.getpid()}.toml"
    toml.write_text("\n".join(lines) + "\n")
    config = load_config(toml)
    engine = pipeline.build_engine(config)
    machine = pipeline.build_machine(config, engine)
    vad = pipeline.build_vad(config)
    run = Run([], [], 0.0)
    n = len(audio) // FRAME_SAMPLES
    live = engine
    if scores_file is not None and scores_file.exists():
        cached = np.load(scores_file)
        engine = Replay(list(engine.names), cached["scores"], int(cached["gate_open_frames"]))
    recorded: list[list[float]] = []

    def collect(events: list) -> None:
        for e in events:
            if isinstance(e, WakeDetected):
                run.wakes.append(e.frame_index * FRAME_S)
            if isinstance(e, UtteranceReady):
                run.saved.append(
                    (e.start_frame * FRAME_S, e.end_frame * FRAME_S, e.end_reason.value)
                )
            elif isinstance(e, UtteranceDiscarded):
                run.discarded.append((e.wake.frame_index * FRAME_S, e.reason))

    collect(machine.start())
    for i in range(n):
        a = pipeline.step(
            machine, engine, vad, Frame(i, audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
        )
        if a is not None:
            collect(a.events)
            recorded.append([a.scores.get(name, 0.0) for name in engine.names])
    collect(machine.finish(EndReason.EOF))
    gate_open = getattr(engine, "gate_open_frames", n)
    run.gate_open = gate_open / max(n, 1)
    if scores_file is not None and engine is live and len(recorded) == n:
        np.savez(scores_file, scores=np.array(recorded), gate_open_frames=gate_open)
    return run


# --- counting ----------------------------------------------------------------------------------
def count(scene: Scene, ref_hits: np.ndarray, run: Run) -> dict[str, float]:
    detected = complete = overlong = missed = 0
    lost: list[int] = []
    wakes = np.array(run.wakes)
    used: set[int] = set()
    for k, tr in enumerate(scene.trials):
        lo, hi = tr.wake[0], tr.command[0] + 0.5
        if not np.any((ref_hits * FRAME_S >= lo) & (ref_hits * FRAME_S <= hi)):
            continue
        detected += 1
        missed += not np.any((wakes >= lo) & (wakes <= hi))
        match = [
            j for j, (s, e, _) in enumerate(run.saved) if tr.wake[0] - 0.2 <= s <= tr.command[0]
        ]
        ok = [j for j in match if run.saved[j][1] >= tr.command[1] - END_TOLERANCE_S]
        used.update(match)
        if ok:
            complete += 1
            if run.saved[ok[0]][1] > tr.command[1] + OVERLONG_S:
                overlong += 1
        else:
            lost.append(k)
    # a recording is false when it starts inside no trial's wake word
    false = sum(
        1
        for j, (s, _, _) in enumerate(run.saved)
        if j not in used and not any(tr.wake[0] - 0.2 <= s <= tr.command[0] for tr in scene.trials)
    )
    return {
        "trials": len(scene.trials),
        "detected": detected,
        "complete": complete,
        "lost": detected - complete,
        "not_woken": missed,
        "overlong": overlong,
        "false": false,
        "gate_open": run.gate_open,
        "lost_trials": lost,
        "end_reasons": sorted({r for _, _, r in run.saved}),
        "discarded": len(run.discarded),
    }


def one_condition(args: tuple) -> tuple[str, dict]:
    condition, voices, trials, model, settings, cache = args
    wakes, commands = load_set(Path(voices))
    t0 = time.process_time()
    scene = build_scene(condition, wakes, commands, trials)
    ref_file = (
        Path(cache) / f"{condition.replace(':', '_')}_{model}_{trials}.npy" if cache else None
    )
    if ref_file is not None and ref_file.exists():
        ref = np.load(ref_file)
    else:
        ref = reference_detections(scene.audio, model)
        if ref_file is not None:
            ref_file.parent.mkdir(parents=True, exist_ok=True)
            np.save(ref_file, ref)
    # the engine's scores depend on the audio, the model and the [wake] settings only
    wake = sorted(s for s in settings if s.startswith("wake."))
    tag = hashlib.sha256("\n".join(wake).encode()).hexdigest()[:8]
    scores_file = ref_file.with_name(f"{ref_file.stem}_scores_{tag}.npz") if ref_file else None
    run = recorder_run(scene.audio, model, settings, scores_file)
    out = count(scene, ref, run)
    out["audio_min"] = len(scene.audio) / RATE / 60
    out["cpu_s"] = time.process_time() - t0
    return condition, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", type=Path, required=True)
    ap.add_argument("--trials", type=int, default=329)
    ap.add_argument("--model", default="alexa")
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--set", action="append", default=[], dest="settings", metavar="KEY=VALUE")
    ap.add_argument(
        "--cache",
        default="",
        help="keep openWakeWord's detections and the recorder's scores here (to re-measure "
        "the endpointing without running the models again)",
    )
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    conditions = a.conditions.split(",")
    jobs = [(c, str(a.voices), a.trials, a.model, a.settings, a.cache) for c in conditions]
    with ProcessPoolExecutor(a.jobs) as pool:
        results = dict(pool.map(one_condition, jobs))
    if a.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"model {a.model}, {a.trials} trials per condition, settings: {a.settings or 'defaults'}")
    print(
        f"{'condition':<10} {'detected':>8} {'not woken':>9} {'complete':>8} {'lost':>5} "
        f"{'overlong':>8} {'false':>5} {'gate open':>9}"
    )
    for c in conditions:
        r = results[c]
        print(
            f"{c:<10} {r['detected']:>8} {r['not_woken']:>9} {r['complete']:>8} {r['lost']:>5} "
            f"{r['overlong']:>8} {r['false']:>5} {r['gate_open']:>8.1%}  "
            f"lost: {r['lost_trials'][:12]}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
