"""`recorder tune`: false rejects and false accepts over a threshold x patience grid.

Positive clips are scored each from a fresh engine with PAD_S of silence on each side; negative
recordings are streamed whole. Every (threshold, patience) is then evaluated from those scores
with the machine's own rules (patience, refractory period), computed once: the false accepts
with the detector grid the daemon's calibration counts with (`onsets.Onsets`), and their rate's
upper bound with the same exact Poisson bound as `recorder calibrate`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recorder import onsets
from recorder.audio import s_to_frames
from recorder.config import Config
from recorder.engines import WakeEngine
from recorder.errors import RecorderError
from recorder.pipeline import build_engine
from recorder.tools.jobs import PAD_S, Job, Progress, Result, estimate_s, find_wavs, run_jobs
from recorder.tools.options import (
    add_common,
    add_identity,
    check_plot,
    identity_arg,
    jobs_arg,
    load_config,
)
from recorder.tools.report import TuneRow, emit, report_skipped, tune_table

DEFAULT_THRESHOLDS = "0.05:0.95:0.05"

DEFAULT_PATIENCE = "1,2,3"

MAX_GRID_THRESHOLDS = 1000


def add_parser(sub: Any) -> None:
    """Register `tune` on the `recorder` command's subparsers."""
    tu = sub.add_parser(
        "tune",
        help="false rejects and false accepts over a threshold x patience grid",
        description="Score positive clips (each from a fresh engine, with 1 s of silence "
        "before and after) and negative recordings (each streamed as one continuous input) "
        "once, then evaluate every threshold and patience: a positive is detected when the "
        "score reaches the threshold on PATIENCE consecutive 80 ms frames; every detection "
        "onset in the negatives, at least [wake] refractory_s apart, is a false accept (counted "
        "as the daemon's calibration counts them). Recommends the lowest false-reject rate "
        "whose false accepts per hour, at the 95 % upper bound (exact Poisson, as `recorder "
        "calibrate`), stay within --max-fa-per-hour; ties go to the higher threshold, then to "
        "the lower patience. Recommends nothing, and says why, when the negatives are too "
        "short for even zero false accepts to show that.",
    )
    _add_clips(tu)
    add_common(tu)
    add_identity(tu)
    _add_grid(tu)
    tu.add_argument("--json", action="store_true", help="print one JSON object")
    tu.add_argument(
        "--plot",
        type=Path,
        metavar="PATH.png",
        help="draw the DET curve (false-reject rate against false accepts per hour, "
        "one line per patience); needs matplotlib",
    )


def _add_clips(tu: argparse.ArgumentParser) -> None:
    """--positives and --negatives."""
    tu.add_argument(
        "--positives",
        nargs="+",
        type=Path,
        required=True,
        metavar="DIR_OR_FILE",
        help="clips that each hold the wake word once",
    )
    tu.add_argument(
        "--negatives",
        nargs="+",
        type=Path,
        required=True,
        metavar="DIR_OR_FILE",
        help="recordings without the wake word",
    )


def _add_grid(tu: argparse.ArgumentParser) -> None:
    """The wake word tuned, the grid of thresholds and patience values, the false-accept
    budget."""
    tu.add_argument(
        "--model",
        metavar="NAME_OR_PATH[:CLASS]",
        help="the one wake word to tune (default: the first of [wake] models); "
        "a multi-class model needs MODEL:CLASS",
    )
    tu.add_argument(
        "--thresholds",
        default=DEFAULT_THRESHOLDS,
        metavar="START:STOP:STEP",
        help=f"thresholds to try, both ends included (default {DEFAULT_THRESHOLDS})",
    )
    tu.add_argument(
        "--patience",
        default=DEFAULT_PATIENCE,
        metavar="N,N,...",
        help=f"patience values to try, in frames (default {DEFAULT_PATIENCE})",
    )
    tu.add_argument(
        "--max-fa-per-hour",
        type=float,
        default=0.5,
        metavar="RATE",
        help="false accepts per hour the recommended point may have at the 95 %% upper "
        "bound (default 0.5; needs at least 3.0 / RATE hours of negatives); among those, the "
        "lowest false-reject rate wins, ties going to the higher threshold and then to the "
        "lower patience",
    )


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
        raise RecorderError(
            f"--thresholds {text!r}: STOP - START must be a whole number of "
            f"STEPs ({steps:.3g} here), so that both ends are included"
        )
    if n + 1 > MAX_GRID_THRESHOLDS:
        raise RecorderError(
            f"--thresholds {text!r}: {n + 1} thresholds, at most {MAX_GRID_THRESHOLDS}"
        )
    values = [round(start + i * step, 10) for i in range(n + 1)]
    values[-1] = stop
    return values


def parse_patience(text: str) -> list[int]:
    try:
        values = sorted({int(p) for p in text.split(",")})
    except ValueError:
        raise RecorderError(
            f"--patience {text!r}: use whole numbers separated by commas, e.g. 1,2,3"
        ) from None
    if not values or values[0] < 1 or values[-1] > 100:
        raise RecorderError(f"--patience {text!r}: each value must be 1 to 100 frames")
    return values


def run_min(scores: np.ndarray, patience: int) -> np.ndarray:
    """Element i: the lowest score of frames i - patience + 1 .. i (the frames before the
    first `patience - 1` are left out); >= t exactly where the machine's count of consecutive
    frames at or above t reaches `patience`."""
    if len(scores) < patience:
        return np.empty(0)
    return np.lib.stride_tricks.sliding_window_view(scores, patience).min(axis=1)


def evaluate(
    positives: Sequence[np.ndarray],
    negatives: Sequence[np.ndarray],
    negative_s: float,
    thresholds: Sequence[float],
    patiences: Sequence[int],
    refractory_frames: int,
) -> list[TuneRow]:
    """Every (threshold, patience) from per-frame scores computed once."""
    hours = negative_s / 3600.0
    grid = onsets.Onsets(thresholds, patiences, refractory_frames)
    false_accepts = sum(
        (onsets.count(s, thresholds, patiences, refractory_frames) for s in negatives),
        start=np.zeros_like(grid.counts),
    )
    best = {p: np.array([run_min(s, p).max(initial=-np.inf) for s in positives]) for p in patiences}
    rows = []
    for k, t in enumerate(thresholds):
        for p in patiences:
            frr = float(np.mean(best[p] < t)) if len(best[p]) else 0.0
            fa = int(false_accepts[grid.patiences.index(p), k])
            rows.append(
                TuneRow(
                    t, p, frr, fa, fa / hours if hours > 0 else 0.0, onsets.upper_rate(fa, hours)
                )
            )
    return rows


def recommend(
    rows: Sequence[TuneRow], max_fa_per_hour: float, negative_hours: float
) -> tuple[TuneRow | None, str | None]:
    """The lowest false-reject rate among the rows whose false accepts per hour, at the upper
    bound, are within `max_fa_per_hour`; ties: the higher threshold, then the lower patience.
    None, with the reason, otherwise: first, negatives too short for even zero false accepts
    to show the limit."""
    floor = onsets.upper_rate(0, negative_hours)
    if floor is None or floor > max_fa_per_hour:
        need = onsets.exposure_needed(max_fa_per_hour)
        return None, (
            f"the negatives are too short: {negative_hours * 60:.1f} min; at least "
            f"{need:.1f} h are needed before even zero false accepts show at most "
            f"{max_fa_per_hour:g} per hour at {onsets.CONFIDENCE:.0%} confidence"
        )
    ok = [
        r
        for r in rows
        if r.false_accepts_per_hour_upper is not None
        and r.false_accepts_per_hour_upper <= max_fa_per_hour
    ]
    best = min(ok, key=lambda r: (r.false_reject_rate, -r.threshold, r.patience), default=None)
    if best is None:
        return None, (
            f"no point's {onsets.CONFIDENCE:.0%} upper bound is within {max_fa_per_hour:g} "
            "false accepts per hour"
        )
    return best, None


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
            raise RecorderError(
                f"{value} is a multi-class model: tune one class with --model "
                f"MODEL:CLASS, one of {', '.join(names)}"
            )
        return names[0]
    for n in names:
        if ":" in n and n.split(":", 1)[1] == cls:
            return n
    classes = ", ".join(n.split(":", 1)[1] for n in names if ":" in n) or "none"
    raise RecorderError(f"--model {value}: no class {cls!r} (classes: {classes})")


def column_of(result: Result, column: int) -> np.ndarray:
    assert result.scores is not None
    return result.scores[:, column]


def cmd_tune(args: argparse.Namespace) -> int:
    thresholds = parse_thresholds(args.thresholds)
    patiences = parse_patience(args.patience)
    if not (math.isfinite(args.max_fa_per_hour) and args.max_fa_per_hour > 0):
        raise RecorderError(f"--max-fa-per-hour {args.max_fa_per_hour}: must be above 0")
    config, cls = choose_model(load_config(args), args.model)
    check_plot(args)
    positives, negatives = _find_clips(args)
    engine = build_engine(config)
    name = pick_name(engine.names, cls, args.model or config.wake.models[0])
    column = list(engine.names).index(name)
    pos, neg, skipped = _score_clips(args, config, engine, positives, negatives)
    negative_s = sum(r.duration_s for r in neg)
    rows = evaluate(
        [column_of(r, column) for r in pos],
        [column_of(r, column) for r in neg],
        negative_s,
        thresholds,
        patiences,
        s_to_frames(config.wake.refractory_s),
    )
    best, reason = recommend(rows, args.max_fa_per_hour, negative_s / 3600)
    result = {
        "model": name,
        "positives": len(pos),
        "negative_hours": negative_s / 3600,
        "confidence": onsets.CONFIDENCE,
        "rows": [r.as_dict() for r in rows],
        "recommended": best.as_dict() if best else None,
        "reason": reason,
        "skipped": [{"path": r.path, "reason": r.skipped} for r in skipped],
    }
    if args.json:
        emit(json.dumps(result) + "\n")
    else:
        emit(tune_table(result, args.max_fa_per_hour, config.wake.refractory_s) + "\n")
    if args.plot is not None:
        from recorder.tools import plots

        plots.det_curve(args.plot, name, rows, best, args.max_fa_per_hour)
    return 0


def _find_clips(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """The positive and the negative WAV files; none of either kind is an error."""
    positives, negatives = find_wavs(args.positives), find_wavs(args.negatives)
    for what, found, given in (
        ("positive", positives, args.positives),
        ("negative", negatives, args.negatives),
    ):
        if not found:
            raise RecorderError(f"no {what} WAV files in {', '.join(map(str, given))}")
    return positives, negatives


def _score_clips(
    args: argparse.Namespace,
    config: Config,
    engine: WakeEngine,
    positives: Sequence[Path],
    negatives: Sequence[Path],
) -> tuple[list[Result], list[Result], list[Result]]:
    """Every file scored (in --jobs workers): the positives and the negatives read, and the
    files skipped (reported); none read of either kind is an error."""
    jobs = [Job("positive", str(p), identity_arg(args)) for p in positives] + [
        Job("negative", str(p), identity_arg(args)) for p in negatives
    ]
    progress = Progress(
        sum(estimate_s(p) + 2 * PAD_S for p in positives) + sum(estimate_s(p) for p in negatives)
    )
    try:
        results = run_jobs(config, engine, jobs, jobs_arg(args), progress)
    finally:
        progress.close()
    skipped = [r for r in results if r.skipped is not None]
    report_skipped(skipped)
    pos = [r for r, j in zip(results, jobs, strict=True) if j.kind == "positive" and not r.skipped]
    neg = [r for r, j in zip(results, jobs, strict=True) if j.kind == "negative" and not r.skipped]
    if not pos:
        raise RecorderError("no positive clip could be read")
    if not neg:
        raise RecorderError("no negative recording could be read")
    return pos, neg, skipped
