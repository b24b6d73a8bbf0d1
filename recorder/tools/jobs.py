"""The per-file work of `score` and `tune`, spread over worker processes.

Each worker builds the daemon's engine once (`pipeline.build_engine`) and runs one file at a
time: for `score`, the daemon's own per-frame step (`pipeline.step`: engine, VAD, the real
machine), so the detections reported are the ones `recorder run --source file:...` makes; for
`tune`, the engine's scores alone. A progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import itertools
import os
import queue as queue_mod
import signal
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from recorder.audio import FRAME_S, SAMPLE_RATE, Frame, WavReader, read_wav_info, reframe
from recorder.config import Config
from recorder.engines import WakeEngine
from recorder.errors import RecorderError
from recorder.machine import EndReason, WakeDetected
from recorder.pipeline import build_engine, build_machine, build_vad, build_verifiers, step
from recorder.seal import Unsealer, is_sealed
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


def _open(job: Job) -> WavReader:
    """A job's file, opened for reading in blocks; a sealed recording (one the daemon saved, at
    most [recording] max_length_s long) is decrypted in memory with its identity."""
    path = Path(job.path)
    if not is_sealed(path):
        return WavReader(path)
    if job.identity is None:
        raise RecorderError(f"{path}: sealed; give --identity FILE")
    return WavReader(path, content=Unsealer(Path(job.identity)).read(path))


class _ReadFailed(Exception):
    """The file could not be read to its end; the message is the reason it is skipped."""


class _CountedBlocks:
    """A reader's blocks of samples, counted as they go by; a read that fails part way
    raises _ReadFailed."""

    def __init__(self, reader: WavReader, path: str):
        self.reader, self.path = reader, path
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            for block in self.reader.blocks():
                self.samples += len(block)
                yield block
        except RecorderError as e:
            raise _ReadFailed(_reason(self.path, e)) from None


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


class _Rows:
    """Per-frame scores as they come, 8 bytes a score (a list of lists of floats takes about
    twelve times that): a long file's scores stay small."""

    def __init__(self, columns: int):
        self.columns = columns
        self._values = array("d")

    def add(self, row: Iterable[float]) -> None:
        self._values.extend(row)

    def __len__(self) -> int:
        return len(self._values) // self.columns

    def array(self) -> np.ndarray:
        """(frames, columns) float64."""
        return np.array(self._values, dtype=np.float64).reshape(len(self), self.columns)


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
            reader = _open(job)
        except RecorderError as e:
            return Result(job.path, skipped=_reason(job.path, e))
        except OSError as e:
            return Result(job.path, skipped=f"cannot be read ({e.strerror or e})")
        with reader:
            try:
                return self._run(job, reader)
            except _ReadFailed as e:
                return Result(job.path, skipped=str(e))

    def _run(self, job: Job, reader: WavReader) -> Result:
        """The job on the file's frames, read a block at a time."""
        counted = _CountedBlocks(reader, job.path)
        blocks: Iterable[np.ndarray] = counted
        if job.kind == "positive":
            pad = np.zeros(round(PAD_S * SAMPLE_RATE), dtype=np.int16)
            blocks = itertools.chain([pad], counted, [pad])
        if job.kind == "score":
            result = self._score(reframe(blocks))
        else:
            peaks: dict[str, np.ndarray] | None = {} if job.kind == "positive" else None
            result = Result(job.path, scores=self._scores_only(reframe(blocks), peaks), peaks=peaks)
        result.path, result.duration_s = job.path, counted.samples / SAMPLE_RATE
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
        self, frames: Iterable[Frame], peaks: dict[str, np.ndarray] | None = None
    ) -> np.ndarray:
        """The engine's scores, with each configured verifier applied: a frame it rejects
        scores 0, so it counts at no threshold (as the daemon, which verifies a frame once its
        score reaches the threshold, never counts it). `peaks` (when given, and the engine has
        embeddings) gets the verifier features at each wake word's highest-scoring frame."""
        engine = self._fresh_engine()
        names = list(engine.names)
        embeddings = engine.embeddings
        best = dict.fromkeys(names, -1.0)
        rows = _Rows(len(names))
        for frame in frames:
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
            rows.add(scores[n] for n in names)
            self._progress(frame.index)
        self._finish_progress(len(rows))
        return rows.array()

    def _score(self, frames: Iterable[Frame]) -> Result:
        """The daemon's step, frame by frame: engine, VAD, the real machine."""
        engine = self._fresh_engine()
        names = list(engine.names)
        vad = build_vad(self.config)
        machine = build_machine(self.config, engine)
        machine.start()
        rows, speech_flags = _Rows(len(names)), array("b")
        detections: list[tuple[int, str, float]] = []
        for frame in frames:
            analysis = step(machine, engine, vad, frame, self.verifiers)
            if analysis is None:  # muted or off: never for a file
                continue
            detections += [
                (e.frame_index, e.wake_word, e.score)
                for e in analysis.events
                if isinstance(e, WakeDetected)
            ]
            rows.add(analysis.scores[n] for n in names)
            speech_flags.append(1 if analysis.speech else 0)
            self._progress(frame.index)
        machine.finish(EndReason.EOF)
        self._finish_progress(len(rows))
        return Result(
            "",
            scores=rows.array(),
            speech=np.frombuffer(speech_flags, dtype=np.int8).astype(bool),
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
