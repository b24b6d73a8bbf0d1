"""`recorder score`: per-frame scores, peaks and detections of WAV files."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

from recorder.errors import RecorderError
from recorder.pipeline import build_engine, thresholds
from recorder.tools.jobs import Job, Progress, estimate_s, find_wavs, run_jobs
from recorder.tools.options import (
    add_common,
    add_identity,
    add_wake_flags,
    check_plot,
    identity_arg,
    jobs_arg,
    load_config,
)
from recorder.tools.report import emit, report_skipped, score_json, score_table, write_csv

MAX_PLOT_FILES = 12


def add_parser(sub: Any) -> None:
    """Register `score` on the `recorder` command's subparsers."""
    sc = sub.add_parser(
        "score",
        help="per-frame wake-word scores and detections of WAV files",
        description="Run the daemon's engine, VAD and state machine over WAV files (directories "
        "are searched for *.wav) and report per-frame scores, each model's peak and the "
        "detections the daemon would make at the configured threshold, patience and refractory "
        "period. Unreadable files are skipped with their reason.",
    )
    sc.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="FILE_OR_DIR",
        help="WAV files, or directories searched for *.wav",
    )
    add_common(sc)
    add_identity(sc)
    add_wake_flags(sc)
    out = sc.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with every file's frames, peaks and detections",
    )
    out.add_argument(
        "--csv",
        type=Path,
        metavar="PATH",
        help="write per-frame rows (file, time_s, one column per score, speech) to "
        "PATH ('-': standard output)",
    )
    sc.add_argument(
        "--plot",
        type=Path,
        metavar="PATH.png",
        help=f"draw each file's score timeline (first {MAX_PLOT_FILES} files) with "
        "the thresholds and the speech regions; needs matplotlib",
    )


def cmd_score(args: argparse.Namespace) -> int:
    config = load_config(args, args.model)
    check_plot(args)
    if args.csv is not None and str(args.csv) != "-":
        parent = args.csv.expanduser().resolve().parent
        if not parent.is_dir():
            raise RecorderError(f"--csv {args.csv}: no such directory {parent}")
    paths = find_wavs(args.paths)
    if not paths:
        raise RecorderError(f"no WAV files in {', '.join(map(str, args.paths))}")
    engine = build_engine(config)
    names = list(engine.names)
    progress = Progress(sum(estimate_s(p) for p in paths))
    try:
        results = run_jobs(
            config,
            engine,
            [Job("score", str(p), identity_arg(args)) for p in paths],
            jobs_arg(args),
            progress,
        )
    finally:
        progress.close()
    skipped = [r for r in results if r.skipped is not None]
    scored = [r for r in results if r.skipped is None]
    report_skipped(skipped)
    if not scored:
        raise RecorderError(f"no file could be scored ({len(skipped)} skipped)")
    if args.json:
        emit(json.dumps(score_json(results, names)) + "\n")
    elif args.csv is not None and str(args.csv) == "-":
        buf = io.StringIO()
        write_csv(buf, scored, names)
        emit(buf.getvalue())
    else:
        if args.csv is not None:
            buf = io.StringIO()
            write_csv(buf, scored, names)
            try:
                args.csv.expanduser().write_text(buf.getvalue())
            except OSError as e:
                raise RecorderError(f"--csv {args.csv}: cannot write ({e.strerror})") from None
        emit(score_table(scored, names, config, thresholds(config, engine)) + "\n")
    if args.plot is not None:
        from recorder.tools import plots

        plots.score_timelines(args.plot, scored, names, thresholds(config, engine))
    return 0
