"""`recorder score` and `recorder tune`: tools for choosing a wake word's threshold.

Both run the daemon's own pipeline, nothing else: the engine from `daemon.build_engine`
(with its speech gate when configured), webrtcvad at `[vad] aggressiveness`, and, for `score`,
the real state machine with `daemon.machine_settings`, stepped frame by frame exactly as the
daemon steps it, so the detections reported are the ones `recorder run --source file:...` makes.

Files are spread over worker processes (one file at a time per worker, each worker builds its
engine once); a progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from recorder import config as config_mod
from recorder.audio import FRAME_S, SAMPLE_RATE, frames_to_s, read_wav_info, s_to_frames
from recorder.config import Config
from recorder.errors import RecorderError

PAD_S = 1.0
"""Silence before and after each positive clip (openWakeWord's convention)."""
REPORT_FRAMES = 125
"""Workers report their progress every this many frames (10 s of audio)."""
MAX_PLOT_FILES = 12

DEFAULT_THRESHOLDS = "0.05:0.95:0.05"
DEFAULT_PATIENCE = "1,2,3"
MAX_GRID_THRESHOLDS = 1000


# --- command line -----------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    p.add_argument("--jobs", type=_positive_int, metavar="N",
                   help="worker processes, one file each at a time (default: every core, "
                   f"here {os.cpu_count() or 1})")


def add_parsers(sub: Any) -> None:
    """Register `score` and `tune` on the `recorder` command's subparsers."""
    sc = sub.add_parser(
        "score", help="per-frame wake-word scores and detections of WAV files",
        description="Run the daemon's engine, VAD and state machine over WAV files (directories "
        "are searched for *.wav) and report per-frame scores, each model's peak and the "
        "detections the daemon would make at the configured threshold, patience and refractory "
        "period. Unreadable files are skipped with their reason.")
    sc.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR")
    _add_common(sc)
    sc.add_argument("--model", action="append", metavar="NAME_OR_PATH",
                    help="wake-word model; repeat for several (overrides [wake] models)")
    sc.add_argument("--threshold", type=float, help="detection threshold for every model, 0-1")
    out = sc.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print one JSON object with every file's frames, peaks and detections")
    out.add_argument("--csv", type=Path, metavar="PATH",
                     help="write per-frame rows (file, time_s, one column per score, speech) to "
                     "PATH ('-': standard output)")
    sc.add_argument("--plot", type=Path, metavar="PATH.png",
                    help=f"draw each file's score timeline (first {MAX_PLOT_FILES} files) with "
                    "the thresholds and the speech regions; needs matplotlib")

    tu = sub.add_parser(
        "tune", help="false rejects and false accepts over a threshold x patience grid",
        description="Score positive clips (each from a fresh engine, with 1 s of silence "
        "before and after) and negative recordings (each streamed as one continuous input) "
        "once, then evaluate every threshold and patience: a positive is detected when the "
        "score reaches the threshold on PATIENCE consecutive 80 ms frames; every detection "
        "onset in the negatives, at least [wake] refractory_s apart, is a false accept. "
        "Recommends the lowest false-reject rate whose false accepts per hour stay within "
        "--max-fa-per-hour; ties go to the higher threshold, then to the lower patience.")
    tu.add_argument("--positives", nargs="+", type=Path, required=True, metavar="DIR_OR_FILE",
                    help="clips that each hold the wake word once")
    tu.add_argument("--negatives", nargs="+", type=Path, required=True, metavar="DIR_OR_FILE",
                    help="recordings without the wake word")
    _add_common(tu)
    tu.add_argument("--model", metavar="NAME_OR_PATH[:CLASS]",
                    help="the one wake word to tune (default: the first of [wake] models); "
                    "a multi-class model needs MODEL:CLASS")
    tu.add_argument("--thresholds", default=DEFAULT_THRESHOLDS, metavar="START:STOP:STEP",
                    help=f"thresholds to try, both ends included (default {DEFAULT_THRESHOLDS})")
    tu.add_argument("--patience", default=DEFAULT_PATIENCE, metavar="N,N,...",
                    help=f"patience values to try, in frames (default {DEFAULT_PATIENCE})")
    tu.add_argument("--max-fa-per-hour", type=float, default=0.5, metavar="RATE",
                    help="false accepts per hour the recommended point may have (default 0.5); "
                    "among those, the lowest false-reject rate wins, ties going to the higher "
                    "threshold and then to the lower patience")
    tu.add_argument("--json", action="store_true", help="print one JSON object")
    tu.add_argument("--plot", type=Path, metavar="PATH.png",
                    help="draw the DET curve (false-reject rate against false accepts per hour, "
                    "one line per patience); needs matplotlib")


def load_config(args: argparse.Namespace, models: Sequence[str] | None = None) -> Config:
    """The config file, with --model and --threshold applied as `recorder run` applies them."""
    cfg = config_mod.load(args.config)
    wake = cfg.wake
    if models:
        wake = dataclasses.replace(wake, models=tuple(models))
    threshold = getattr(args, "threshold", None)
    if threshold is not None:
        wake = dataclasses.replace(wake, threshold=threshold, per_model={
            k: dataclasses.replace(v, threshold=None) for k, v in wake.per_model.items()})
    return config_mod.validate(dataclasses.replace(cfg, wake=wake), "command line")


def parse_thresholds(text: str) -> list[float]:
    """`START:STOP:STEP` (both ends included) or one number, each threshold in (0, 1]."""
    usage = "use START:STOP:STEP with both ends included, e.g. 0.05:0.95:0.05"
    parts = text.split(":")
    if len(parts) not in (1, 3):
        raise RecorderError(f"--thresholds {text!r}: {usage}")
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise RecorderError(f"--thresholds {text!r}: not a number; {usage}") from None
    if not all(math.isfinite(n) for n in numbers):
        raise RecorderError(f"--thresholds {text!r}: {usage}")
    start, stop, step = numbers if len(numbers) == 3 else (numbers[0], numbers[0], 1.0)
    if not 0 < start <= 1 or not 0 < stop <= 1:
        raise RecorderError(f"--thresholds {text!r}: thresholds must be above 0 and at most 1")
    if stop < start:
        raise RecorderError(f"--thresholds {text!r}: STOP is below START")
    if step <= 0:
        raise RecorderError(f"--thresholds {text!r}: STEP must be above 0")
    steps = (stop - start) / step
    n = round(steps)
    if abs(steps - n) > 1e-6 * max(1.0, steps):
        raise RecorderError(f"--thresholds {text!r}: STOP - START must be a whole number of "
                            f"STEPs ({steps:.3g} here), so that both ends are included")
    if n + 1 > MAX_GRID_THRESHOLDS:
        raise RecorderError(f"--thresholds {text!r}: {n + 1} thresholds, at most "
                            f"{MAX_GRID_THRESHOLDS}")
    values = [round(start + i * step, 10) for i in range(n + 1)]
    values[-1] = stop
    return values


def parse_patience(text: str) -> list[int]:
    try:
        values = sorted({int(p) for p in text.split(",")})
    except ValueError:
        raise RecorderError(f"--patience {text!r}: use whole numbers separated by commas, "
                            "e.g. 1,2,3") from None
    if not values or values[0] < 1 or values[-1] > 100:
        raise RecorderError(f"--patience {text!r}: each value must be 1 to 100 frames")
    return values


# --- inputs -----------------------------------------------------------------------------------
def find_wavs(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories searched for *.wav, recursively, sorted."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() == ".wav"
                            and not f.is_dir())
        else:
            found.append(p)  # an unreadable or missing file is skipped with its reason later
    seen: set[Path] = set()
    return [f for f in found if not (f in seen or seen.add(f))]


def estimate_s(path: Path) -> float:
    """The audio length from the WAV header (0 when it cannot be read): for the progress bar."""
    try:
        with open(path, "rb") as f:
            info = read_wav_info(f, str(path))
            size = os.fstat(f.fileno()).st_size
    except (OSError, RecorderError, struct.error):
        return 0.0
    frames = min(info.n_frames, (size - info.data_offset) // (info.sample_width * info.channels))
    return max(frames, 0) / info.sample_rate


def _reason(path: str, e: Exception) -> str:
    text = str(e)
    return text[len(path) + 2:] if text.startswith(f"{path}: ") else text


# --- the per-file work (in a worker or in this process) ---------------------------------------
@dataclass
class Job:
    kind: str  # "score" (engine + VAD + machine), "positive" (padded clip), "negative"
    path: str


@dataclass
class Result:
    path: str
    skipped: str | None = None
    duration_s: float = 0.0
    scores: np.ndarray | None = None  # (frames, names) float64
    speech: np.ndarray | None = None  # (frames,) bool, score only
    detections: list[tuple[int, str, float]] = field(default_factory=list)


class Cancelled(Exception):
    """The parent gave up (Ctrl-C, another worker failed): stop the file in progress."""


class Worker:
    """An engine (built once) and what a job needs to run the daemon's per-frame step."""

    def __init__(self, config: Config, engine: Any, report: Callable[[float], None],
                 cancelled: Callable[[], bool] = lambda: False):
        self.config = config
        self.engine = engine
        self.report = report
        self.cancelled = cancelled

    def run(self, job: Job) -> Result:
        from recorder.audio import read_wav

        try:
            samples = read_wav(Path(job.path))
        except RecorderError as e:
            return Result(job.path, skipped=_reason(job.path, e))
        except MemoryError:  # read_wav takes a data chunk of size 0 for one of unknown length
            return Result(job.path, skipped="cannot be read (out of memory; a WAV whose data "
                          "chunk declares 0 or 0xFFFFFFFF bytes?)")
        except OSError as e:
            return Result(job.path, skipped=f"cannot be read ({e.strerror or e})")
        duration_s = len(samples) / SAMPLE_RATE
        if job.kind == "positive":
            pad = np.zeros(round(PAD_S * SAMPLE_RATE), dtype=np.int16)
            samples = np.concatenate([pad, samples, pad])
        if job.kind == "score":
            result = self._score(samples)
        else:
            result = Result(job.path, scores=self._scores_only(samples))
        result.path, result.duration_s = job.path, duration_s
        return result

    def _fresh_engine(self) -> Any:
        """The engine as a newly started daemon has it: no audio heard, a new gate VAD."""
        from recorder.vad import gate_vad

        engine = self.engine
        if getattr(engine, "gate", None) is not None:
            engine.gate = gate_vad()
        engine.reset()
        return engine

    def _progress(self, index: int) -> None:
        if (index + 1) % REPORT_FRAMES == 0:
            self.report(REPORT_FRAMES * FRAME_S)
            if self.cancelled():
                raise Cancelled

    def _finish_progress(self, n_frames: int) -> None:
        if n_frames % REPORT_FRAMES:
            self.report((n_frames % REPORT_FRAMES) * FRAME_S)

    def _scores_only(self, samples: np.ndarray) -> np.ndarray:
        from recorder.sources import chunk

        engine = self._fresh_engine()
        names = list(engine.names)
        rows = []
        for frame in chunk(samples):
            scores = engine.process(frame.samples)
            rows.append([scores[n] for n in names])
            self._progress(frame.index)
        self._finish_progress(len(rows))
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))

    def _score(self, samples: np.ndarray) -> Result:
        """Daemon.step, frame by frame: engine, VAD, the real machine; WakeDetected collected."""
        from recorder import daemon
        from recorder.machine import EndReason, Machine, State, WakeDetected
        from recorder.sources import chunk
        from recorder.vad import WebRtcVad

        engine = self._fresh_engine()
        names = list(engine.names)
        vad = WebRtcVad(self.config.vad.aggressiveness)
        machine = Machine(daemon.machine_settings(self.config, names))
        machine.start()
        rows, speech_flags, detections = [], [], []
        for frame in chunk(samples):
            if machine.state in (State.MUTED, State.OFF):  # as Daemon.step; never for a file
                continue
            scores = engine.process(frame.samples)
            speech = vad.is_speech(frame.samples)
            for e in machine.step(frame, scores, speech):
                if isinstance(e, WakeDetected):
                    detections.append((e.frame_index, e.wake_word, e.score))
            rows.append([scores[n] for n in names])
            speech_flags.append(speech)
            self._progress(frame.index)
        machine.finish(EndReason.EOF)
        self._finish_progress(len(rows))
        return Result("", scores=np.array(rows, dtype=np.float64).reshape(len(rows), len(names)),
                      speech=np.array(speech_flags, dtype=bool), detections=detections)


_WORKER: Worker | None = None
_WORKER_ERROR: str | None = None


def _init_worker(config: Config, progress: Any, cancel: Any) -> None:
    global _WORKER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        from recorder import daemon

        _WORKER = Worker(config, daemon.build_engine(config), progress.put, cancel.is_set)
    except Exception as e:  # reported with the first job: a raising initializer loses it
        _WORKER_ERROR = f"{type(e).__name__}: {e}"


def _run_job(job: Job) -> Result:
    if _WORKER is None:
        raise RuntimeError(f"worker could not start: {_WORKER_ERROR}")
    return _WORKER.run(job)


class Progress:
    """`[#####-----]  42.0 / 120.0 s audio  35.1x realtime` on stderr, only on a terminal and
    only once the work has taken `min_wall_s`."""

    WIDTH = 30

    def __init__(self, total_s: float, stream: TextIO | None = None,
                 enabled: bool | None = None, min_wall_s: float = 0.5):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total_s = max(total_s, 0.0)
        self.done_s = 0.0
        self.min_wall_s = min_wall_s
        self.started = time.monotonic()
        self._last_draw = 0.0
        self.drawn = False

    def add(self, seconds: float) -> None:
        self.done_s += seconds
        now = time.monotonic()
        if self.enabled and now - self.started >= self.min_wall_s \
                and (now - self._last_draw >= 0.1 or not self.drawn):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        total = max(self.total_s, self.done_s)
        filled = round(self.WIDTH * self.done_s / total) if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return (f"[{bar}] {self.done_s:8.1f} / {total:.1f} s audio  "
                f"{self.done_s / elapsed:6.1f}x realtime")

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self.drawn = True
        self.stream.write("\r" + self.line(now))
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def run_jobs(config: Config, engine: Any, jobs: Sequence[Job], n_jobs: int,
             progress: Progress) -> list[Result]:
    """Every job's result, in order; in this process for one job or --jobs 1, otherwise on
    min(n_jobs, len(jobs)) spawned workers, one file at a time each, longest files first."""
    workers = min(n_jobs, len(jobs))
    if workers <= 1:
        local = Worker(config, engine, progress.add)
        return [local.run(job) for job in jobs]
    ctx = mp.get_context("spawn")  # fresh processes: nothing of onnxruntime is forked
    reports, cancel = ctx.Queue(), ctx.Event()
    order = sorted(range(len(jobs)), key=lambda i: -estimate_s(Path(jobs[i].path)))
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(config, reports, cancel))
    try:
        pending = {i: pool.submit(_run_job, jobs[i]) for i in order}
        while True:
            try:
                progress.add(reports.get(timeout=0.05))
                continue
            except queue_mod.Empty:
                pass
            if all(f.done() for f in pending.values()):
                break
        while True:  # reports still in flight
            try:
                progress.add(reports.get_nowait())
            except queue_mod.Empty:
                break
        try:
            return [pending[i].result() for i in range(len(jobs))]
        except (BrokenProcessPool, RuntimeError) as e:
            raise RecorderError(f"a worker process failed: {e or type(e).__name__}") from None
    finally:
        cancel.set()  # workers still busy (after Ctrl-C or a failure) stop within 10 s of audio
        pool.shutdown(wait=True, cancel_futures=True)


def _jobs_arg(args: argparse.Namespace) -> int:
    return args.jobs or os.cpu_count() or 1


def _emit(text: str) -> None:
    """Print to stdout; a reader that went away (`| head`) is not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _report_skipped(skipped: Sequence[Result]) -> None:
    for r in skipped:
        print(f"recorder: skipped {r.path}: {r.skipped}", file=sys.stderr)


def _check_plot(args: argparse.Namespace) -> None:
    """Before any audio is processed: matplotlib is there and the PNG's directory exists."""
    if args.plot is None:
        return
    from recorder import plots

    plots.require_matplotlib()
    parent = args.plot.expanduser().resolve().parent
    if not parent.is_dir():
        raise RecorderError(f"--plot {args.plot}: no such directory {parent}")


# --- score ------------------------------------------------------------------------------------
def score_json(results: Sequence[Result], names: Sequence[str]) -> dict[str, Any]:
    files = []
    for r in results:
        if r.skipped is not None:
            continue
        assert r.scores is not None and r.speech is not None
        peaks = {}
        for k, name in enumerate(names):
            column = r.scores[:, k]
            i = int(np.argmax(column)) if len(column) else -1
            peaks[name] = {"score": round(float(column[i]), 6) if i >= 0 else 0.0,
                           "time_s": round(frames_to_s(i + 1), 2) if i >= 0 else None}
        files.append({
            "path": r.path,
            "duration_s": round(r.duration_s, 4),
            "peaks": peaks,
            "detections": [{"wake_word": w, "score": round(s, 6),
                            "time_s": round(frames_to_s(i + 1), 2)} for i, w, s in r.detections],
            "frames": [{"time_s": round(frames_to_s(i + 1), 2),
                        "scores": {n: round(float(v), 6) for n, v in zip(names, row,
                                                                          strict=True)},
                        "speech": bool(sp)}
                       for i, (row, sp) in enumerate(zip(r.scores, r.speech, strict=True))],
        })
    return {"files": files,
            "skipped": [{"path": r.path, "reason": r.skipped} for r in results
                        if r.skipped is not None]}


def write_csv(out: TextIO, results: Sequence[Result], names: Sequence[str]) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["file", "time_s", *names, "speech"])
    for r in results:
        if r.skipped is not None:
            continue
        assert r.scores is not None and r.speech is not None
        for i, (row, sp) in enumerate(zip(r.scores, r.speech, strict=True)):
            w.writerow([r.path, f"{frames_to_s(i + 1):.2f}", *(f"{v:.6f}" for v in row),
                        int(sp)])


def score_table(results: Sequence[Result], names: Sequence[str], config: Config) -> str:
    data = score_json([r for r in results if r.skipped is None], names)["files"]
    width = max([len("file"), *(len(f["path"]) for f in data)])
    nw = max(len("wake word"), *(len(n) for n in names))
    lines = [f"{'file':<{width}}  {'duration':>9}  {'wake word':<{nw}}  threshold  patience  "
             f"{'peak':>6}  {'at':>8}  detections"]
    for f in data:
        for k, name in enumerate(names):
            peak = f["peaks"][name]
            at = f"{peak['time_s']:.2f} s" if peak["time_s"] is not None else "-"
            times = [d["time_s"] for d in f["detections"] if d["wake_word"] == name]
            det = f"{len(times)}" + (f" at {', '.join(f'{t:.2f}' for t in times)} s"
                                     if times else "")
            head = (f"{f['path']:<{width}}  {f['duration_s']:7.2f} s" if k == 0
                    else f"{'':<{width}}  {'':>9}")
            lines.append(f"{head}  {name:<{nw}}  {config.wake.threshold_for(name):9.3f}  "
                         f"{config.wake.patience_for(name):8d}  {peak['score']:6.3f}  "
                         f"{at:>8}  {det}")
    return "\n".join(lines)


def cmd_score(args: argparse.Namespace) -> int:
    from recorder import daemon

    config = load_config(args, args.model)
    _check_plot(args)
    if args.csv is not None and str(args.csv) != "-":
        parent = args.csv.expanduser().resolve().parent
        if not parent.is_dir():
            raise RecorderError(f"--csv {args.csv}: no such directory {parent}")
    paths = find_wavs(args.paths)
    if not paths:
        raise RecorderError(f"no WAV files in {', '.join(map(str, args.paths))}")
    engine = daemon.build_engine(config)
    names = list(engine.names)
    progress = Progress(sum(estimate_s(p) for p in paths))
    try:
        results = run_jobs(config, engine, [Job("score", str(p)) for p in paths],
                           _jobs_arg(args), progress)
    finally:
        progress.close()
    skipped = [r for r in results if r.skipped is not None]
    scored = [r for r in results if r.skipped is None]
    _report_skipped(skipped)
    if not scored:
        raise RecorderError(f"no file could be scored ({len(skipped)} skipped)")
    if args.json:
        _emit(json.dumps(score_json(results, names)) + "\n")
    elif args.csv is not None and str(args.csv) == "-":
        buf = io.StringIO()
        write_csv(buf, scored, names)
        _emit(buf.getvalue())
    else:
        if args.csv is not None:
            buf = io.StringIO()
            write_csv(buf, scored, names)
            try:
                args.csv.expanduser().write_text(buf.getvalue())
            except OSError as e:
                raise RecorderError(f"--csv {args.csv}: cannot write ({e.strerror})") from None
        _emit(score_table(scored, names, config) + "\n")
    if args.plot is not None:
        from recorder import plots

        plots.score_timelines(args.plot, scored, names,
                              {n: config.wake.threshold_for(n) for n in names})
    return 0


# --- tune -------------------------------------------------------------------------------------
def run_min(scores: np.ndarray, patience: int) -> np.ndarray:
    """Element i: the lowest score of frames i - patience + 1 .. i (the frames before the
    first `patience - 1` are left out); >= t exactly where the machine's count of consecutive
    frames at or above t reaches `patience`."""
    if len(scores) < patience:
        return np.empty(0)
    return np.lib.stride_tricks.sliding_window_view(scores, patience).min(axis=1)


def count_onsets(candidates: np.ndarray, refractory_frames: int) -> int:
    """Detections among the frames flagged in `candidates`, as the machine's refractory rule
    allows them: each at least `refractory_frames` after the previous detection."""
    idx = np.flatnonzero(candidates)
    gap = max(refractory_frames, 1)
    count, i = 0, 0
    while i < len(idx):
        count += 1
        i = int(np.searchsorted(idx, idx[i] + gap, side="left"))
    return count


@dataclass(frozen=True)
class TuneRow:
    threshold: float
    patience: int
    false_reject_rate: float
    false_accepts: int
    false_accepts_per_hour: float

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "patience": self.patience,
                "false_reject_rate": self.false_reject_rate, "false_accepts": self.false_accepts,
                "false_accepts_per_hour": self.false_accepts_per_hour}


def evaluate(positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray],
             negative_s: float, thresholds: Sequence[float], patiences: Sequence[int],
             refractory_frames: int) -> list[TuneRow]:
    """Every (threshold, patience) from per-frame scores computed once."""
    hours = negative_s / 3600.0
    rows = []
    by_patience = {}
    for p in patiences:
        best = np.array([run_min(s, p).max(initial=-np.inf) for s in positives])
        by_patience[p] = (best, [run_min(s, p) for s in negatives])
    for t in thresholds:
        for p in patiences:
            best, mins = by_patience[p]
            frr = float(np.mean(best < t)) if len(best) else 0.0
            fa = sum(count_onsets(m >= t, refractory_frames) for m in mins)
            rows.append(TuneRow(t, p, frr, fa, fa / hours if hours > 0 else 0.0))
    return rows


def recommend(rows: Sequence[TuneRow], max_fa_per_hour: float) -> TuneRow | None:
    """The lowest false-reject rate within the false-accept budget; ties: the higher threshold,
    then the lower patience."""
    ok = [r for r in rows if r.false_accepts_per_hour <= max_fa_per_hour]
    return min(ok, key=lambda r: (r.false_reject_rate, -r.threshold, r.patience), default=None)


def choose_model(config: Config, model: str | None) -> tuple[Config, str | None]:
    """The config with only the model to tune, and the class asked for (`model:class`)."""
    value = model or config.wake.models[0]
    base, cls = value, None
    if ":" in value and not Path(value).exists():
        base, _, cls = value.partition(":")
        if not base or not cls:
            raise RecorderError(f"--model {value!r}: use NAME, PATH or MODEL:CLASS")
    return dataclasses.replace(config, wake=dataclasses.replace(config.wake, models=(base,))), cls


def pick_name(names: Sequence[str], cls: str | None, value: str) -> str:
    if cls is None:
        if len(names) > 1:
            raise RecorderError(f"{value} is a multi-class model: tune one class with --model "
                                f"MODEL:CLASS, one of {', '.join(names)}")
        return names[0]
    for n in names:
        if ":" in n and n.split(":", 1)[1] == cls:
            return n
    classes = ", ".join(n.split(":", 1)[1] for n in names if ":" in n) or "none"
    raise RecorderError(f"--model {value}: no class {cls!r} (classes: {classes})")


def tune_table(result: dict[str, Any], max_fa: float, refractory_s: float) -> str:
    rows, rec = result["rows"], result["recommended"]
    patiences = sorted({r["patience"] for r in rows})
    thresholds = sorted({r["threshold"] for r in rows})
    cell = {(r["threshold"], r["patience"]): r for r in rows}
    lines = [f"model {result['model']}: {result['positives']} positive clip(s), "
             f"{result['negative_hours'] * 60:.2f} min of negative audio, refractory "
             f"{refractory_s:g} s",
             "FRR: false-reject rate; FA/h: false accepts per hour; * the recommended point",
             "",
             "threshold" + "".join(f"  {'patience ' + str(p):^19}" for p in patiences),
             " " * 9 + "".join(f"  {'FRR':>7} {'FA/h':>10} " for _ in patiences)]
    for t in thresholds:
        parts = []
        for p in patiences:
            r = cell[(t, p)]
            mark = "*" if rec and (rec["threshold"], rec["patience"]) == (t, p) else " "
            parts.append(f"  {r['false_reject_rate']:7.3f} {r['false_accepts_per_hour']:10.2f}"
                         f"{mark}")
        lines.append(f"{t:9.3f}" + "".join(parts))
    lines.append("")
    if rec:
        lines.append(f"recommended: threshold {rec['threshold']:g}, patience {rec['patience']}: "
                     f"false-reject rate {rec['false_reject_rate']:.3f}, "
                     f"{rec['false_accepts']} false accept(s) = "
                     f"{rec['false_accepts_per_hour']:.2f} per hour (limit {max_fa:g})")
    else:
        lines.append(f"recommended: none; no point has at most {max_fa:g} false accepts per hour")
    return "\n".join(lines)


def cmd_tune(args: argparse.Namespace) -> int:
    from recorder import daemon

    thresholds = parse_thresholds(args.thresholds)
    patiences = parse_patience(args.patience)
    if not (math.isfinite(args.max_fa_per_hour) and args.max_fa_per_hour >= 0):
        raise RecorderError(f"--max-fa-per-hour {args.max_fa_per_hour}: must be 0 or more")
    config, cls = choose_model(load_config(args), args.model)
    _check_plot(args)
    positives, negatives = find_wavs(args.positives), find_wavs(args.negatives)
    for what, found, given in (("positive", positives, args.positives),
                               ("negative", negatives, args.negatives)):
        if not found:
            raise RecorderError(f"no {what} WAV files in {', '.join(map(str, given))}")
    engine = daemon.build_engine(config)
    name = pick_name(engine.names, cls, args.model or config.wake.models[0])
    column = list(engine.names).index(name)
    jobs = [Job("positive", str(p)) for p in positives] + \
        [Job("negative", str(p)) for p in negatives]
    progress = Progress(sum(estimate_s(p) + 2 * PAD_S for p in positives)
                        + sum(estimate_s(p) for p in negatives))
    try:
        results = run_jobs(config, engine, jobs, _jobs_arg(args), progress)
    finally:
        progress.close()
    skipped = [r for r in results if r.skipped is not None]
    _report_skipped(skipped)
    pos = [r for r, j in zip(results, jobs, strict=True) if j.kind == "positive" and not r.skipped]
    neg = [r for r, j in zip(results, jobs, strict=True) if j.kind == "negative" and not r.skipped]
    if not pos:
        raise RecorderError("no positive clip could be read")
    if not neg:
        raise RecorderError("no negative recording could be read")
    negative_s = sum(r.duration_s for r in neg)
    refractory = s_to_frames(config.wake.refractory_s)
    rows = evaluate([r.scores[:, column] for r in pos], [r.scores[:, column] for r in neg],
                    negative_s, thresholds, patiences, refractory)
    best = recommend(rows, args.max_fa_per_hour)
    result = {"model": name, "positives": len(pos), "negative_hours": negative_s / 3600,
              "rows": [r.as_dict() for r in rows],
              "recommended": best.as_dict() if best else None,
              "skipped": [{"path": r.path, "reason": r.skipped} for r in skipped]}
    if args.json:
        _emit(json.dumps(result) + "\n")
    else:
        _emit(tune_table(result, args.max_fa_per_hour, config.wake.refractory_s) + "\n")
    if args.plot is not None:
        from recorder import plots

        plots.det_curve(args.plot, name, rows, best, args.max_fa_per_hour)
    return 0
