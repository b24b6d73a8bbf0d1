"""`recorder enroll`: the owner's own wake-word clips, scored with the daemon's engine.

Each clip (a WAV file, or a few seconds taken live from a source and held only in memory) is
scored as `recorder tune` scores a positive: from a fresh engine with PAD_S of silence on each
side; it counts as detected at (threshold, patience) when the score reaches the threshold on
`patience` consecutive frames. The counts per (threshold, patience), never the audio, are kept in
the state directory as `enrollment.json` for `recorder calibrate`; enrolling a model again
replaces its counts. For openWakeWord models the verifier features of each clip's
highest-scoring frame (192 numbers, no audio) are kept beside them in `enrollment.npz`: the
positives `recorder verifier train` learns from.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recorder import config as config_mod
from recorder.audio import FRAME_S, SAMPLE_RATE, Frame, reframe
from recorder.calibration import PATIENCES, THRESHOLDS, write_atomic
from recorder.dirs import private_dir, read_file
from recorder.engines import WakeEngine
from recorder.errors import RecorderError
from recorder.pipeline import build_engine
from recorder.sources import open_source
from recorder.tools.jobs import PAD_S, Job, Progress, Worker, estimate_s, find_wavs, run_jobs
from recorder.tools.options import add_common, jobs_arg, load_config
from recorder.tools.report import emit, report_skipped
from recorder.tools.tune import choose_model, parse_patience, pick_name, run_min
from recorder.verifier import FEATURE_DIM

FILE_NAME = "enrollment.json"
FEATURES_FILE = "enrollment.npz"
FORMAT = "recorder-enrollment"
VERSION = 1


def add_parser(sub: Any) -> None:
    """Register `enroll` on the `recorder` command's subparsers."""
    en = sub.add_parser(
        "enroll",
        help="score the owner's wake-word clips for `recorder calibrate`",
        description="Score clips of the owner saying the wake word, each from a fresh engine "
        "with 1 s of silence before and after, and report per threshold and patience how many "
        "would be detected. The counts (no audio) are kept in the state directory for "
        "`recorder calibrate`; enrolling a model again replaces its counts.",
    )
    en.add_argument(
        "clip_files",
        nargs="*",
        type=Path,
        metavar="CLIP",
        help="WAV files (or directories of them), each holding the wake word once",
    )
    add_common(en)
    en.add_argument(
        "--model",
        metavar="NAME_OR_PATH[:CLASS]",
        help="the wake word (default: the first of [wake] models)",
    )
    en.add_argument(
        "--source",
        help="take the clips live instead: mic, mic:NAME, stdin or "
        "file:PATH, cut into --clips windows of --clip-s seconds",
    )
    en.add_argument(
        "--clips",
        dest="n_clips",
        type=int,
        default=10,
        metavar="N",
        help="live clips to take from --source (default 10)",
    )
    en.add_argument(
        "--clip-s", type=float, default=3.0, metavar="S", help="seconds per live clip (default 3)"
    )
    en.add_argument(
        "--patience",
        metavar="N,N,...",
        help="patience values to count (default 1,2,3 and the configured one)",
    )
    en.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the counts are kept (as for `recorder run`)",
    )
    en.add_argument("--json", action="store_true", help="print one JSON object")


def best_runs(scores: np.ndarray, patiences: Sequence[int]) -> dict[int, float]:
    """Per patience, the highest score held on `patience` consecutive frames."""
    return {p: float(run_min(scores, p).max(initial=-np.inf)) for p in patiences}


def detected_counts(
    bests: Sequence[dict[int, float]], patiences: Sequence[int]
) -> dict[int, list[int]]:
    """Per patience, per threshold of the grid: clips whose best run reaches it."""
    return {p: [sum(b[p] >= t for b in bests) for t in THRESHOLDS] for p in patiences}


def clip_scores(
    config: Any, engine: Any, column: int, samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """One clip scored as `tune` scores a positive (fresh engine, silence on each side), and
    the verifier features at its highest-scoring frame (None without embeddings)."""
    pad = np.zeros(round(PAD_S * SAMPLE_RATE), dtype=np.int16)
    peaks: dict[str, np.ndarray] = {}
    worker = Worker(config, engine, lambda _s: None)
    scores = worker._scores_only(reframe([pad, samples, pad]), peaks)
    name = list(engine.names)[column]
    return scores[:, column], peaks.get(name)


def load_features(state_dir: Path) -> dict[str, np.ndarray]:
    """{model: feature rows of its enrolled clips} (none yet: empty)."""
    path = state_dir / FEATURES_FILE
    try:
        data = read_file(path, "enrollment features")
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            out = {k: f[k].astype(np.float32) for k in f.files}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RecorderError(f"enrollment features {path}: not readable ({e})") from None
    if any(v.ndim != 2 or v.shape[1] != FEATURE_DIM for v in out.values()):
        raise RecorderError(f"enrollment features {path}: arrays of the wrong shape")
    return out


def save_features(state_dir: Path, name: str, rows: list[np.ndarray]) -> None:
    """Replace `name`'s enrolled features (a model without embeddings: removed)."""
    kept = load_features(state_dir)
    kept.pop(name, None)
    if rows:
        kept[name] = np.array(rows, dtype=np.float32)
    buf = io.BytesIO()
    np.savez(buf, **kept)  # type: ignore[arg-type]
    path = state_dir / FEATURES_FILE
    try:
        write_atomic(path, buf.getvalue())
    except OSError as e:
        raise RecorderError(f"enrollment features {path}: {e.strerror or e}") from None


def live_clips(spec: str, n: int, clip_s: float) -> list[np.ndarray]:
    """`n` windows of `clip_s` seconds from a source, held in memory; a prompt before each."""
    source = open_source(spec)
    per_clip = max(1, int(clip_s / FRAME_S + 1e-9))  # whole frames, at most clip_s
    clips: list[np.ndarray] = []
    current: list[np.ndarray] = []
    print(f"say the wake word once in each of {n} windows of {clip_s:g} s", file=sys.stderr)
    try:
        print(f"clip 1/{n}: now", file=sys.stderr)
        for item in source.frames(lambda: len(clips) >= n):
            if not isinstance(item, Frame):
                continue
            current.append(item.samples)
            if len(current) == per_clip:
                clips.append(np.concatenate(current))
                current = []
                if len(clips) < n:
                    print(f"clip {len(clips) + 1}/{n}: now", file=sys.stderr)
            if len(clips) >= n:
                break
    finally:
        source.close()
    if len(clips) < n:
        raise RecorderError(
            f"--source {spec}: ended after {len(clips)} of {n} clips "
            f"({len(clips) * per_clip * FRAME_S:.1f} s)"
        )
    return clips


def load(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The enrolled models: {name: {"clips": n, "detected": {patience: [count per threshold]}}}."""
    path = state_dir / FILE_NAME
    where = f"enrollment file {path}"
    try:
        data = json.loads(read_file(path, "enrollment file"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecorderError(f"{where}: cannot be read ({e})") from None
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or data.get("version") != VERSION
        or data.get("thresholds") != list(THRESHOLDS)
        or not isinstance(data.get("models"), dict)
    ):
        raise RecorderError(f"{where}: not a recorder enrollment file of version {VERSION}")
    out = {}
    for name, m in data["models"].items():
        try:
            clips = int(m["clips"])
            detected = {int(p): [int(c) for c in counts] for p, counts in m["detected"].items()}
        except (KeyError, TypeError, ValueError):
            raise RecorderError(f"{where}: models.{name}: needs clips and detected") from None
        if any(
            len(c) != len(THRESHOLDS) or min(c) < 0 or max(c) > clips for c in detected.values()
        ):
            raise RecorderError(f"{where}: models.{name}: detected counts out of range")
        out[name] = {"clips": clips, "detected": detected}
    return out


def save(state_dir: Path, name: str, clips: int, detected: dict[int, list[int]]) -> Path:
    private_dir(state_dir, "state directory")
    models = load(state_dir)
    models[name] = {"clips": clips, "detected": detected}
    data = {
        "format": FORMAT,
        "version": VERSION,
        "thresholds": list(THRESHOLDS),
        "models": {
            n: {
                "clips": m["clips"],
                "detected": {str(p): c for p, c in sorted(m["detected"].items())},
            }
            for n, m in sorted(models.items())
        },
    }
    path = state_dir / FILE_NAME
    try:
        write_atomic(path, json.dumps(data, indent=1) + "\n")
    except OSError as e:
        raise RecorderError(f"enrollment file {path}: {e.strerror or e}") from None
    return path


def table(name: str, clips: int, detected: dict[int, list[int]]) -> str:
    patiences = sorted(detected)
    lines = [
        f"model {name}: {clips} clip(s) of the owner's voice; detected per threshold and patience",
        "threshold" + "".join(f"  {'patience ' + str(p):>11}" for p in patiences),
    ]
    for k, t in enumerate(THRESHOLDS):
        lines.append(
            f"{t:9.2f}" + "".join(f"  {f'{detected[p][k]}/{clips}':>11}" for p in patiences)
        )
    return "\n".join(lines)


def cmd_enroll(args: argparse.Namespace) -> int:
    if args.clip_files and args.source:
        raise RecorderError("enroll: give CLIP files or --source, not both")
    if not args.clip_files and not args.source:
        raise RecorderError("enroll: give CLIP files (WAV) or --source to record them live")
    config, cls = choose_model(load_config(args), args.model)
    value = args.model or config.wake.models[0]
    engine = build_engine(config)
    name = pick_name(engine.names, cls, value)
    column = list(engine.names).index(name)
    patiences = (
        parse_patience(args.patience)
        if args.patience
        else sorted({*PATIENCES, config.wake.patience_for(name)})
    )
    if args.source:
        scores, peaks = _live_scores(args, config, engine, column)
    else:
        scores, peaks = _file_scores(args, config, engine, column)
    detected = detected_counts([best_runs(s, patiences) for s in scores], patiences)
    state_dir = args.state_dir or config_mod.state_dir(config)
    path = save(state_dir, name, len(scores), detected)
    save_features(state_dir, name, peaks)
    if args.json:
        emit(
            json.dumps(
                {
                    "model": name,
                    "clips": len(scores),
                    "thresholds": list(THRESHOLDS),
                    "detected": {str(p): c for p, c in detected.items()},
                    "file": str(path),
                }
            )
            + "\n"
        )
    else:
        emit(table(name, len(scores), detected) + f"\nkept in {path}\n")
    return 0


def _live_scores(
    args: argparse.Namespace, config: config_mod.Config, engine: WakeEngine, column: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The scores of each clip taken live from --source, and the verifier features of those
    with them."""
    if not 1 <= args.n_clips <= 1000:
        raise RecorderError(f"--clips {args.n_clips}: must be 1 to 1000")
    if not 0.5 <= args.clip_s <= 30:
        raise RecorderError(f"--clip-s {args.clip_s:g}: must be 0.5 to 30 seconds")
    source = config_mod.with_overrides(config, source=args.source).audio.source
    scored = [
        clip_scores(config, engine, column, c)
        for c in live_clips(source, args.n_clips, args.clip_s)
    ]
    return [s for s, _ in scored], [f for _, f in scored if f is not None]


def _file_scores(
    args: argparse.Namespace, config: config_mod.Config, engine: WakeEngine, column: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The scores of each clip file read (in --jobs workers; those skipped are reported), and
    the verifier features of those with them."""
    paths = find_wavs(args.clip_files)
    if not paths:
        raise RecorderError(f"no WAV files in {', '.join(map(str, args.clip_files))}")
    progress = Progress(sum(estimate_s(p) + 2 * PAD_S for p in paths))
    try:
        results = run_jobs(
            config, engine, [Job("positive", str(p)) for p in paths], jobs_arg(args), progress
        )
    finally:
        progress.close()
    report_skipped([r for r in results if r.skipped is not None])
    read = [r for r in results if r.skipped is None and r.scores is not None]
    scores = [r.scores[:, column] for r in read if r.scores is not None]
    name = list(engine.names)[column]
    peaks = [r.peaks[name] for r in read if r.peaks and name in r.peaks]
    if not scores:
        raise RecorderError("no clip could be read")
    return scores, peaks
