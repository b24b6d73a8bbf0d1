#!/usr/bin/env python3
"""Benchmark: the daemon's wake-word engine against openWakeWord's own Model.predict loop.

Everything is measured in one run, on the same audio, on this machine:
  - CPU seconds per hour of audio, and the ratio to openWakeWord (ONNX, one thread), for a
    silent room (low brown noise and mains hum alone), a quiet home (an hour of that noise bed
    with ~6 % speech), continuous speech, and four models at once;
  - per-frame processing time p50 / p99 of the daemon's engine (speech-gate back-fill included);
  - peak RSS and the time from process start to `listening` of `recorder run` on a file source,
    against the floor: a bare process that imports numpy, onnxruntime and webrtcvad and loads
    the ONNX sessions the engine runs (targets: at most 8 MB over it, listening at most 0.05 s
    after its start), with the engine's graph in its cache as after the first start, and the
    first start apart; the same floor importing as well the standard library modules the daemon
    has imported when it listens; the peak RSS of a process that imports openWakeWord and runs
    one model;
  - peak RSS of `recorder run --source file:` and `recorder score` on a 1-minute file against a
    38-minute one (target: within 5 MB);
  - microWakeWord (okay_nabu): our engine against pymicro-wakeword's own streaming loop, and
    against openWakeWord, on the quiet-home and speech streams, and its peak RSS.

    .venv/bin/python scripts/bench.py [--minutes 60] [--json]
    .venv/bin/python scripts/bench.py --memory-only   # the memory and start-up figures alone
Needs the `openwakeword` and `pymicro-wakeword` packages (the test extra).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from make_test_audio import noise_bed  # noqa: E402

from recorder import models  # noqa: E402
from recorder.engines import OpenWakeWordEngine  # noqa: E402
from recorder.vad import gate_vad  # noqa: E402

RATE, FRAME = 16000, 1280
FIXTURES = REPO / "tests" / "fixtures" / "openwakeword"
FOUR = ["hey_jarvis", "alexa", "hey_mycroft", "weather"]


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def speech_clips() -> list[np.ndarray]:
    """Real speech (openWakeWord's test clips) and the synthesized scenes' speech."""
    clips = [
        read(FIXTURES / n)
        for n in (
            "negative_reference.wav",
            "hey_jane.wav",
            "turn_on_the_office_lights_test_clip.wav",
            "alexa_test.wav",
            "hey_mycroft_test.wav",
        )
    ]
    scenes = json.loads((REPO / "tests" / "audio" / "scenes.json").read_text())
    for name, marks in scenes.items():
        x = read(REPO / "tests" / "audio" / f"{name}.wav")
        spans = [v for k, v in marks.items() if k != "duration_s"]
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        clips.append(x[int(start * RATE) : int(end * RATE)])
    return clips


def quiet_home(minutes: float, speech_fraction: float = 0.06, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * RATE)
    x = noise_bed(minutes * 60, seed)
    clips = speech_clips()
    target, placed = speech_fraction * n, 0
    while placed < target:
        clip = clips[rng.integers(len(clips))]
        at = int(rng.integers(0, n - len(clip)))
        x[at : at + len(clip)] += clip
        placed += len(clip)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def continuous_speech(minutes: float) -> np.ndarray:
    clips = speech_clips()
    reps = int(np.ceil(minutes * 60 * RATE / sum(len(c) for c in clips)))
    x = np.concatenate(clips * reps)[: int(minutes * 60 * RATE)]
    return np.clip(np.round(x + noise_bed(len(x) / RATE, 3)), -32768, 32767).astype(np.int16)


def our_engine(manifest, names: list[str], gated: bool) -> OpenWakeWordEngine:
    specs = [models.resolve_wake_model(manifest, n) for n in names]
    return OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        specs,
        gate=gate_vad() if gated else None,
    )


def their_model(manifest, names: list[str]):
    from openwakeword.model import Model

    return Model(
        wakeword_models=[str(manifest.path(manifest.wakewords[n])) for n in names],
        inference_framework="onnx",
        melspec_model_path=str(manifest.path(manifest.features["melspectrogram"])),
        embedding_model_path=str(manifest.path(manifest.features["embedding"])),
    )


def cpu_per_hour(
    steps: dict[str, Callable[[np.ndarray], object]],
    audio: np.ndarray,
    times: list[float] | None = None,
    block_frames: int = 250,
) -> dict[str, float]:
    """CPU seconds per hour of audio of each stepper, all fed the same frames.

    The steppers take turns, 20 s of audio each, in a rotating order, so that a change in the
    machine's load during the run weighs on each of them alike. `times`: the per-frame wall
    times of the first stepper."""
    frames = [audio[i : i + FRAME] for i in range(0, len(audio) - FRAME + 1, FRAME)]
    spent = dict.fromkeys(steps, 0.0)
    names = list(steps)
    for b, start in enumerate(range(0, len(frames), block_frames)):
        block = frames[start : start + block_frames]
        for name in names[b % len(names) :] + names[: b % len(names)]:
            step = steps[name]
            c0 = time.process_time()
            if times is not None and name == names[0]:
                for f in block:
                    t = time.perf_counter()
                    step(f)
                    times.append(time.perf_counter() - t)
            else:
                for f in block:
                    step(f)
            spent[name] += time.process_time() - c0
    hours = len(audio) / RATE / 3600
    return {name: cpu / hours for name, cpu in spent.items()}


def classifier_weights_step(manifest, names: list[str]) -> Callable[[np.ndarray], object]:
    """The least a classifier can add to a frame: reading its first layer's weights once (a
    numpy matrix-vector product per classifier, of that layer's shape). Every frame's score
    needs every one of those weights."""
    from recorder.engines import onnx_wire as wire

    rng = np.random.default_rng(0)
    layers = []
    for name in names:
        graph = wire.read_model(manifest.path(manifest.wakewords[name]).read_bytes())
        gemm = next(n for n in graph.nodes if n.op in ("Gemm", "MatMul"))
        weights = rng.standard_normal(graph.dims[gemm.inputs[1]]).astype(np.float32)
        row = np.ones((1, weights.shape[1]), dtype=np.float32)
        layers.append((row, weights))

    def step(frame: np.ndarray) -> None:
        for row, weights in layers:
            row @ weights.T

    return step


def micro_steps(model: str = "okay_nabu") -> dict[str, Callable[[np.ndarray], object]]:
    """microWakeWord: our engine, and pymicro-wakeword's own streaming loop (its features and
    `process_streaming`), each to be fed the same 80 ms frames."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    from recorder.engines.micro import MicroEngine

    ours = MicroEngine([models.resolve_micro_model(models.load_manifest(), model)])
    wake, features = MicroWakeWord.from_builtin(Model(model)), MicroWakeWordFeatures()

    def theirs(frame: np.ndarray) -> None:
        for f in features.process_streaming(frame.tobytes()):
            wake.process_streaming(f)

    return {"micro_ours": ours.process, "micro_pymicro": theirs}


# Peak RSS of a command, measured by a small launcher process: a child forked straight from
# this (large) process would count this process's pages in its own peak until it execs.
_LAUNCHER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stderr=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_mb(argv: list[str], env: dict[str, str] | None = None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *argv],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    return int(out.split()[-1]) / 1024


BARE_LOAD = (
    "import sys, numpy, onnxruntime as ort, _webrtcvad; ort.disable_telemetry_events(); "
    "o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1; "
    "o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL; o.log_severity_level = 3; "
    "o.add_session_config_entry('session.intra_op.allow_spinning', '0'); "
    "o.add_session_config_entry('session.inter_op.allow_spinning', '0'); "
    "[ort.InferenceSession(p, o, providers=['CPUExecutionProvider']) for p in sys.argv[1:]]; "
    "print('loaded', flush=True)"
)
"""The floor: a bare interpreter that imports numpy, onnxruntime and webrtcvad's engine (the
`_webrtcvad` extension, which is what the daemon imports) and loads the ONNX sessions the
daemon's engine runs, with the engine's session options."""


def stdlib_load(run: list[str], env: dict[str, str]) -> tuple[str, list[str]]:
    """The floor, importing as well the standard library's modules `run` (a `recorder run`)
    has imported when it listens: what any daemon in Python that uses them pays."""
    sys.path.insert(0, str(REPO / "tests"))
    from listening import modules_at_listening

    loaded = modules_at_listening(run[1:], env)
    std = sorted(m for m in loaded if m.split(".")[0] in sys.stdlib_module_names)
    return BARE_LOAD.replace("print('loaded'", f"import {', '.join(std)}; print('loaded'"), std


def engine_models(manifest, model: str, tmp: Path) -> list[str]:
    """The ONNX models the daemon's engine runs for `model`, as files: the streaming graph,
    built as the engine builds it, and the classifier when the graph cannot run it."""
    from recorder.engines.graph_cache import streaming_graph

    classifier = manifest.path(manifest.wakewords[model])
    built = streaming_graph(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [classifier],
        None,
    ).built
    serialized, merged = built.model, built.merged
    assert isinstance(serialized, bytes)
    path = tmp / "streaming.onnx"
    path.write_bytes(serialized)
    return [str(path)] + ([] if merged else [str(classifier)])


def _time_to_line(
    argv: list[str], marker: str, stream: str, env: dict[str, str] | None = None
) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines = proc.stdout if stream == "stdout" else proc.stderr
    assert lines is not None
    took = float("nan")
    for line in lines:
        if marker in line:
            took = time.perf_counter() - t0
            break
    proc.communicate()
    return took


_MIC_LAUNCHER = (
    "import resource, signal, subprocess, sys, time; "
    "p = subprocess.Popen(sys.argv[2:], stderr=subprocess.PIPE, text=True); "
    "next(line for line in p.stderr if '-> listening' in line); "
    "time.sleep(float(sys.argv[1])); p.send_signal(signal.SIGTERM); p.communicate(); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def mic_peak_rss_mb(model: str = "hey_jarvis", seconds: float = 10.0) -> float:
    """Peak RSS of `recorder run` on the real PortAudio path (the tests' ALSA virtual
    microphone, fed silence), `seconds` after it started listening."""
    sys.path.insert(0, str(REPO / "tests"))
    from virtual_mic import VirtualMic

    with tempfile.TemporaryDirectory() as tmp, VirtualMic(Path(tmp)) as mic:
        recorder = Path(sys.executable).parent / "recorder"
        argv = [str(recorder), "run", "--source", "mic:virtualmic", "--model", model]
        argv += ["--recordings", str(Path(tmp) / "rec"), "--state-dir", str(Path(tmp) / "st")]
        argv += ["--runtime-dir", str(Path(tmp) / "run")]
        out = subprocess.run(
            [sys.executable, "-c", _MIC_LAUNCHER, str(seconds), *argv],
            check=True,
            capture_output=True,
            text=True,
            env=mic.env,
        ).stdout
    return int(out.split()[-1]) / 1024


def _recorder_run(tmp: str, model: str) -> list[str]:
    """`recorder run` on a minute of the quiet home, written to a WAV in `tmp`."""
    clip = Path(tmp) / "quiet.wav"
    with wave.open(str(clip), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(quiet_home(1.0).tobytes())
    recorder = Path(sys.executable).parent / "recorder"
    return [str(recorder), "run", "--source", f"file:{clip}", "--model", model]


def micro_peak_rss_mb(model: str = "okay_nabu") -> float:
    """Peak RSS of `recorder run` with one microWakeWord model on a 1-minute file."""
    with tempfile.TemporaryDirectory() as tmp:
        return peak_rss_mb(_recorder_run(tmp, model) + ["--recordings", str(Path(tmp) / "rec")])


RSS_OVER_FLOOR_MB = 8.0
LISTENING_AFTER_FLOOR_S = 0.05


def startup_and_rss(manifest, model: str = "hey_jarvis", runs: int = 9) -> dict[str, float]:
    """Start to `listening` and peak RSS of `recorder run` on a file source, against the floor
    (a bare process loading the same ONNX sessions), measured alternately in one run; each
    figure is the median of its runs. The daemon's starts find its graph in a cache of their
    own, as a service's do; the first start, with the cache empty, is measured apart."""
    with tempfile.TemporaryDirectory() as tmp:
        run = _recorder_run(tmp, model) + ["--recordings", str(Path(tmp) / "rec")]
        bare = [sys.executable, "-c", BARE_LOAD, *engine_models(manifest, model, Path(tmp))]
        cache = Path(tmp) / "cache"
        env = {**os.environ, "RECORDER_CACHE_DIR": str(cache)}
        cold_starts, cold_rss = [], []
        for _ in range(max(1, runs // 3)):
            shutil.rmtree(cache, ignore_errors=True)
            cold_starts.append(_time_to_line(run, "-> listening", "stderr", env))
            shutil.rmtree(cache, ignore_errors=True)
            cold_rss.append(peak_rss_mb(run, env))
        code, std = stdlib_load(run, env)
        with_std = [sys.executable, "-c", code, *bare[3:]]
        starts, bare_starts, std_starts = [], [], []
        for _ in range(runs):
            bare_starts.append(_time_to_line(bare, "loaded", "stdout"))
            std_starts.append(_time_to_line(with_std, "loaded", "stdout"))
            starts.append(_time_to_line(run, "-> listening", "stderr", env))
        rss, bare_rss, std_rss = [], [], []
        for _ in range(max(1, runs // 3)):
            bare_rss.append(peak_rss_mb(bare))
            std_rss.append(peak_rss_mb(with_std))
            rss.append(peak_rss_mb(run, env))
        code = (
            "import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
            "import bench, recorder.models as m; "
            "o = bench.their_model(m.load_manifest(), ['hey_jarvis']); "
            "[o.predict(np.zeros(1280, np.int16)) for _ in range(750)]"
        )
        return {
            "start_to_listening_s": float(np.median(starts)),
            "bare_load_s": float(np.median(bare_starts)),
            "start_over_bare_s": float(np.median(starts) - np.median(bare_starts)),
            "stdlib_over_bare_s": float(np.median(std_starts) - np.median(bare_starts)),
            "stdlib_modules": float(len(std)),
            "stdlib_over_bare_mb": float(np.median(std_rss) - np.median(bare_rss)),
            "first_start_to_listening_s": float(np.median(cold_starts)),
            "peak_rss_mb": float(np.median(rss)),
            "bare_load_peak_rss_mb": float(np.median(bare_rss)),
            "peak_rss_over_bare_mb": float(np.median(rss) - np.median(bare_rss)),
            "first_start_peak_rss_mb": float(np.median(cold_rss)),
            "openwakeword_peak_rss_mb": peak_rss_mb(
                [sys.executable, "-c", code, str(REPO / "scripts")]
            ),
        }


def startup_and_rss_lines(out: dict[str, float]) -> list[str]:
    """The daemon's start-up and memory against the floor, with their targets."""
    over_s, over_mb = out["start_over_bare_s"], out["peak_rss_over_bare_mb"]
    bare_s, bare_mb = out["bare_load_s"], out["bare_load_peak_rss_mb"]
    return [
        f"recorder run (one model, file source): start to listening "
        f"{out['start_to_listening_s']:.3f} s, the floor (numpy, onnxruntime, webrtcvad and the "
        f"engine's ONNX sessions loaded) {bare_s:.3f} s: listening "
        f"{over_s:+.3f} s after the floor's start (target <= {LISTENING_AFTER_FLOOR_S:g} s: "
        f"{'met' if over_s <= LISTENING_AFTER_FLOOR_S else 'NOT met'})",
        f"the floor importing as well the {out['stdlib_modules']:.0f} standard library modules "
        f"recorder run has imported when it listens: {out['stdlib_over_bare_s']:+.3f} s after "
        f"the floor's start, {out['stdlib_over_bare_mb']:+.1f} MB over its peak RSS; the "
        f"daemon's own code: {over_s - out['stdlib_over_bare_s']:+.3f} s",
        f"peak RSS: recorder run {out['peak_rss_mb']:.1f} MB on a 1-minute file, the floor "
        f"{bare_mb:.1f} MB: {over_mb:+.1f} MB over the floor (target <= "
        f"{RSS_OVER_FLOOR_MB:g} MB: {'met' if over_mb <= RSS_OVER_FLOOR_MB else 'NOT met'})",
        f"the first start, which builds the graph and fills the cache: listening "
        f"{out['first_start_to_listening_s'] - bare_s:+.3f} s after the floor's start, peak RSS "
        f"{out['first_start_peak_rss_mb'] - bare_mb:+.1f} MB over the floor",
    ]


def _noise_then_request(path: Path, minutes: float) -> None:
    """`minutes` of low noise (about -64 dBFS), then a request (the wake word and a command),
    written a minute at a time."""
    rng = np.random.default_rng(1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        left = round(minutes * 60 * RATE)
        while left:
            n = min(left, 60 * RATE)
            w.writeframes(np.round(rng.normal(0.0, 20.0, n)).astype("<i2").tobytes())
            left -= n
        with wave.open(str(REPO / "tests" / "audio" / "jarvis_pause_command.wav")) as request:
            w.writeframes(request.readframes(request.getnframes()))


def length_rss(minutes: float = 38.0, model: str = "hey_jarvis") -> dict[str, float]:
    """Peak RSS of `recorder run --source file:` and `recorder score` on a 1-minute file and on
    a `minutes`-long one (low noise, then a request)."""
    recorder = Path(sys.executable).parent / "recorder"
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, length in (("short", 1.0), ("long", minutes)):
            path = Path(tmp) / f"{label}.wav"
            _noise_then_request(path, length)
            rec = str(Path(tmp) / f"rec_{label}")
            run = [str(recorder), "run", "--source", f"file:{path}", "--recordings", rec]
            out[f"run_{label}_peak_rss_mb"] = peak_rss_mb(run + ["--model", model])
            out[f"score_{label}_peak_rss_mb"] = peak_rss_mb(
                [str(recorder), "score", str(path), "--model", model]
            )
            path.unlink()
    out["long_minutes"] = minutes
    return out


def length_rss_lines(out: dict[str, float]) -> list[str]:
    return [
        f"peak RSS, 1 min against {out['long_minutes']:g} min of audio: "
        f"{command} {out[f'{command}_short_peak_rss_mb']:.1f} / "
        f"{out[f'{command}_long_peak_rss_mb']:.1f} MB "
        f"({out[f'{command}_long_peak_rss_mb'] - out[f'{command}_short_peak_rss_mb']:+.1f} MB; "
        "target within 5 MB)"
        for command in ("run", "score")
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the quiet-home audio")
    ap.add_argument("--speech-minutes", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--quiet-only", action="store_true", help="only the silent-room and quiet-home rows"
    )
    ap.add_argument(
        "--memory-only",
        action="store_true",
        help="only start-up and peak RSS against the floor, and peak RSS on a 1-minute file "
        "against a --long-minutes one",
    )
    ap.add_argument("--long-minutes", type=float, default=38.0)
    args = ap.parse_args()
    manifest = models.load_manifest()
    if args.memory_only:
        figures = {**startup_and_rss(manifest), **length_rss(args.long_minutes)}
        if args.json:
            print(json.dumps({k: round(v, 4) for k, v in figures.items()}, indent=2))
        else:
            print("\n".join(startup_and_rss_lines(figures) + length_rss_lines(figures)))
        return 0
    quiet = quiet_home(args.minutes)
    speech = continuous_speech(args.speech_minutes)
    out: dict[str, float] = {}

    def run(label: str, audio: np.ndarray, names: list[str], times=None, extra=None) -> None:
        ours = our_engine(manifest, names, gated=True)
        steps = {
            "ours": ours.process,
            "ungated": our_engine(manifest, names, gated=False).process,
            "openwakeword": their_model(manifest, names).predict,
            **(extra or {}),
        }
        for name, cpu in cpu_per_hour(steps, audio, times).items():
            out[f"{label}_{name}_cpu_s_per_h"] = cpu
        out[f"{label}_gate_open"] = ours.gate_open_frames / (len(audio) // FRAME)
        out[f"{label}_ratio"] = (
            out[f"{label}_ours_cpu_s_per_h"] / out[f"{label}_openwakeword_cpu_s_per_h"]
        )

    times: list[float] = []
    silent = np.clip(np.round(noise_bed(args.minutes * 60 / 6, 11)), -32768, 32767)
    run("silent_room", silent.astype(np.int16), ["hey_jarvis"])
    run("quiet_home", quiet, ["hey_jarvis"], times, micro_steps())
    out["frame_p50_ms"] = float(np.percentile(times, 50) * 1000)
    out["frame_p99_ms"] = float(np.percentile(times, 99) * 1000)
    out["frame_max_ms"] = float(np.max(times) * 1000)
    if args.quiet_only:
        print(json.dumps({k: round(v, 4) for k, v in out.items()}, indent=2))
        return 0
    run("speech", speech, ["hey_jarvis"], extra=micro_steps())
    one = our_engine(manifest, ["hey_jarvis"], gated=True)
    weights = classifier_weights_step(manifest, FOUR[1:])
    run("speech_four_models", speech, FOUR, extra={"one_model": one.process, "weights": weights})
    one_cpu = out["speech_four_models_one_model_cpu_s_per_h"]
    out["four_models_vs_one"] = out["speech_four_models_ours_cpu_s_per_h"] / one_cpu
    out["four_models_least_vs_one"] = 1 + out["speech_four_models_weights_cpu_s_per_h"] / one_cpu
    out.update(startup_and_rss(manifest))
    out.update(length_rss(args.long_minutes))
    out["mic_peak_rss_mb"] = mic_peak_rss_mb()
    out["micro_peak_rss_mb"] = micro_peak_rss_mb()
    if args.json:
        print(json.dumps({k: round(v, 4) for k, v in out.items()}, indent=2))
        return 0
    print(
        f"audio: silent room (the noise bed alone) {args.minutes / 6:g} min, quiet home "
        f"{args.minutes:g} min, continuous speech {args.speech_minutes:g} min"
    )
    print(
        f"{'case':<22}{'ours (gated)':>14}{'ours ungated':>14}{'openWakeWord':>14}"
        f"{'ratio':>8}{'gate open':>11}"
    )
    for label in ("silent_room", "quiet_home", "speech", "speech_four_models"):
        print(
            f"{label:<22}{out[label + '_ours_cpu_s_per_h']:>12.1f} s"
            f"{out[label + '_ungated_cpu_s_per_h']:>12.1f} s"
            f"{out[label + '_openwakeword_cpu_s_per_h']:>12.1f} s"
            f"{out[label + '_ratio']:>8.2f}{out[label + '_gate_open']:>10.1%}"
        )
    print("(CPU seconds per hour of audio; ratio = ours gated / openWakeWord)")
    print(
        f"{'microWakeWord okay_nabu':<26}{'ours':>10}{'pymicro-wakeword':>18}{'ratio':>8}"
        f"{'vs openWakeWord':>17}"
    )
    for label in ("quiet_home", "speech"):
        o = out[f"{label}_micro_ours_cpu_s_per_h"]
        t = out[f"{label}_micro_pymicro_cpu_s_per_h"]
        w = out[f"{label}_openwakeword_cpu_s_per_h"]
        print(f"{label:<26}{o:>8.1f} s{t:>16.1f} s{o / t:>8.2f}{o / w:>16.2f}x")
    print(
        f"four models / one model (ours, speech): {out['four_models_vs_one']:.2f}x; the least "
        f"it could be, one model and the three other classifiers' first-layer weights read "
        f"once a frame: {out['four_models_least_vs_one']:.2f}x (target <= 1.05x)"
    )
    print(
        f"per frame (ours, quiet home): p50 {out['frame_p50_ms']:.2f} ms, "
        f"p99 {out['frame_p99_ms']:.2f} ms, max {out['frame_max_ms']:.2f} ms"
    )
    print("\n".join(startup_and_rss_lines(out) + length_rss_lines(out)))
    print(
        f"peak RSS: recorder run on the microphone {out['mic_peak_rss_mb']:.1f} MB "
        f"(target <= 64 MB); with okay_nabu (microWakeWord) {out['micro_peak_rss_mb']:.1f} MB; "
        f"an openWakeWord process {out['openwakeword_peak_rss_mb']:.0f} MB"
    )
    print(
        "targets: quiet home <= 0.05x openWakeWord, continuous speech <= 0.15x, "
        "four models <= 1.05x one"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
