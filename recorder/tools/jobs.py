"""The per-file work of `score` and `tune`, spread over worker processes.

Each worker builds the daemon's engine once (`pipeline.build_engine`) and runs one file at a
time: for `score`, the daemon's own per-frame step (`pipeline.step`: engine, VAD, the real
machine), so the detections reported are the ones `recorder run --source file:...` makes; for
`tune`, the engine's scores alone. A progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import os
import queue as queue_mod
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from recorder.audio import FRAME_S, SAMPLE_RATE, read_wav, read_wav_info
from recorder.config import Config
from recorder.engines import WakeEngine
from recorder.errors import RecorderError
from recorder.machine import EndReason, WakeDetected
from recorder.pipeline import build_engine, build_machine, build_vad, build_verifiers, step
from recorder.seal import Unsealer, is_sealed
from recorder.sources import chunk
from recorder.verifier import WINDOW, features

PAD_S = 1.0
"""Silence before and after each positive clip (openWakeWord's convention)."""
REPORT_FRAMES = 125
"""Workers report their progress every this many frames (10 s of audio)."""


def find_wavs(paths: Iterable[Path]) -> list[Path]:
    """Files as given; directories searched for *.wav, recursively, sorted."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(
                f
                for f in p.rglob("*")
                if f.name.lower().endswith((".wav", ".wav.age")) and not f.is_dir()
            )
        else:
            found.append(p)  # an unreadable or missing file is skipped with its reason later
    return list(dict.fromkeys(found))


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


def _read(job: Job) -> np.ndarray:
    """A job's samples; a sealed recording is decrypted in memory with its identity."""
    path = Path(job.path)
    if not is_sealed(path):
        return read_wav(path)
    if job.identity is None:
        raise RecorderError(f"{path}: sealed; give --identity FILE")
    return read_wav(path, content=Unsealer(Path(job.identity)).read(path))


def _reason(path: str, e: Exception) -> str:
    text = str(e)
    return text[len(path) + 2 :] if text.startswith(f"{path}: ") else text


@dataclass
class Job:
    kind: str  # "score" (engine + VAD + machine), "positive" (padded clip), "negative"
    path: str
    identity: str | None = None
    """An age identity file, for a sealed recording (*.wav.age)."""


@dataclass
class Result:
    path: str
    skipped: str | None = None
    duration_s: float = 0.0
    scores: np.ndarray | None = None  # (frames, names) float64
    speech: np.ndarray | None = None  # (frames,) bool, score only
    detections: list[tuple[int, str, float]] = field(default_factory=list)
    peaks: dict[str, np.ndarray] | None = None
    """Positive clips: per wake word, the verifier features at its highest-scoring frame
    (engines with embeddings only), for training a verifier."""


class Cancelled(Exception):
    """The parent gave up (Ctrl-C, another worker failed): stop the file in progress."""


class Worker:
    """An engine (built once) and what a job needs to run the daemon's per-frame step."""

    def __init__(
        self,
        config: Config,
        engine: WakeEngine,
        report: Callable[[float], None],
        cancelled: Callable[[], bool] = lambda: False,
    ):
        self.config = config
        self.engine = engine
        self.verifiers = build_verifiers(config, engine)  # as the daemon applies them
        self.report = report
        self.cancelled = cancelled

    def run(self, job: Job) -> Result:
        try:
            samples = _read(job)
        except RecorderError as e:
            return Result(job.path, skipped=_reason(job.path, e))
        except MemoryError:  # read_wav takes a data chunk of size 0 for one of unknown length
            return Result(
                job.path,
                skipped="cannot be read (out of memory; a WAV whose data "
                "chunk declares 0 or 0xFFFFFFFF bytes?)",
            )
        except OSError as e:
            return Result(job.path, skipped=f"cannot be read ({e.strerror or e})")
        duration_s = len(samples) / SAMPLE_RATE
        if job.kind == "positive":
            pad = np.zeros(round(PAD_S * SAMPLE_RATE), dtype=np.int16)
            samples = np.concatenate([pad, samples, pad])
        if job.kind == "score":
            result = self._score(samples)
        else:
            peaks: dict[str, np.ndarray] | None = {} if job.kind == "positive" else None
            result = Result(job.path, scores=self._scores_only(samples, peaks), peaks=peaks)
        result.path, result.duration_s = job.path, duration_s
        return result

    def _fresh_engine(self) -> WakeEngine:
        """The engine as a newly started daemon has it: no audio heard, a new gate VAD."""
        self.engine.reset()
        return self.engine

    def _progress(self, index: int) -> None:
        if (index + 1) % REPORT_FRAMES == 0:
            self.report(REPORT_FRAMES * FRAME_S)
            if self.cancelled():
                raise Cancelled

    def _finish_progress(self, n_frames: int) -> None:
        if n_frames % REPORT_FRAMES:
            self.report((n_frames % REPORT_FRAMES) * FRAME_S)

    def _scores_only(
        self, samples: np.ndarray, peaks: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """The engine's scores, with each configured verifier applied: a frame it rejects
        scores 0, so it counts at no threshold (as the daemon, which verifies a frame once its
        score reaches the threshold, never counts it). `peaks` (when given, and the engine has
        embeddings) gets the verifier features at each wake word's highest-scoring frame."""
        engine = self._fresh_engine()
        names = list(engine.names)
        embeddings = engine.embeddings
        best = dict.fromkeys(names, -1.0)
        rows = []
        for frame in chunk(samples):
            scores = dict(engine.process(frame.samples))
            if peaks is not None and embeddings is not None:
                for n in names:
                    if scores[n] > best[n]:
                        best[n] = scores[n]
                        peaks[n] = features(embeddings(WINDOW))
            if self.verifiers and embeddings is not None:
                for n, v in self.verifiers.items():
                    if scores.get(n, 0.0) > 0.0 and not v.accepts(embeddings(WINDOW)):
                        scores[n] = 0.0
            rows.append([scores[n] for n in names])
            self._progress(frame.index)
        self._finish_progress(len(rows))
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))

    def _score(self, samples: np.ndarray) -> Result:
        """The daemon's step, frame by frame: engine, VAD, the real machine."""
        engine = self._fresh_engine()
        names = list(engine.names)
        vad = build_vad(self.config)
        machine = build_machine(self.config, engine)
        machine.start()
        rows, speech_flags, detections = [], [], []
        for frame in chunk(samples):
            analysis = step(machine, engine, vad, frame, self.verifiers)
            if analysis is None:  # muted or off: never for a file
                continue
            detections += [
                (e.frame_index, e.wake_word, e.score)
                for e in analysis.events
                if isinstance(e, WakeDetected)
            ]
            rows.append([analysis.scores[n] for n in names])
            speech_flags.append(analysis.speech)
            self._progress(frame.index)
        machine.finish(EndReason.EOF)
        self._finish_progress(len(rows))
        return Result(
            "",
            scores=np.array(rows, dtype=np.float64).reshape(len(rows), len(names)),
            speech=np.array(speech_flags, dtype=bool),
            detections=detections,
        )


_WORKER: Worker | None = None

_WORKER_ERROR: str | None = None


def _init_worker(config: Config, progress: Any, cancel: Any) -> None:
    global _WORKER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    try:
        _WORKER = Worker(config, build_engine(config), progress.put, cancel.is_set)
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

    def __init__(
        self,
        total_s: float,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        min_wall_s: float = 0.5,
    ):
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
        if (
            self.enabled
            and now - self.started >= self.min_wall_s
            and (now - self._last_draw >= 0.1 or not self.drawn)
        ):
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        total = max(self.total_s, self.done_s)
        filled = round(self.WIDTH * self.done_s / total) if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return (
            f"[{bar}] {self.done_s:8.1f} / {total:.1f} s audio  "
            f"{self.done_s / elapsed:6.1f}x realtime"
        )

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


def run_jobs(
    config: Config, engine: WakeEngine, jobs: Sequence[Job], n_jobs: int, progress: Progress
) -> list[Result]:
    """Every job's result, in order; in this process for one job or --jobs 1, otherwise on
    min(n_jobs, len(jobs)) spawned workers, one file at a time each, longest files first."""
    workers = min(n_jobs, len(jobs))
    if workers <= 1:
        local = Worker(config, engine, progress.add)
        return [local.run(job) for job in jobs]
    # imported here, not at the top: `recorder run` loads this module and needs no pool
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")  # fresh processes: nothing of onnxruntime is forked
    reports, cancel = ctx.Queue(), ctx.Event()
    order = sorted(range(len(jobs)), key=lambda i: -estimate_s(Path(jobs[i].path)))
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(config, reports, cancel)
    )
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
