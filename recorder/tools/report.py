"""The reports of `score` and `tune`: JSON, CSV and text tables, and the tuning grid's rows."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from recorder.audio import frames_to_s
from recorder.config import Config
from recorder.tools.jobs import Result


def emit(text: str) -> None:
    """Print to stdout; a reader that went away (`| head`) is not an error."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def report_skipped(skipped: Sequence[Result]) -> None:
    for r in skipped:
        print(f"recorder: skipped {r.path}: {r.skipped}", file=sys.stderr)


def _summary(r: Result, names: Sequence[str]) -> dict[str, Any]:
    """A scored file's path, duration, each model's peak and the detections."""
    assert r.scores is not None
    peaks = {}
    for k, name in enumerate(names):
        column = r.scores[:, k]
        i = int(np.argmax(column)) if len(column) else -1
        peaks[name] = {
            "score": round(float(column[i]), 6) if i >= 0 else 0.0,
            "time_s": round(frames_to_s(i + 1), 2) if i >= 0 else None,
        }
    return {
        "path": r.path,
        "duration_s": round(r.duration_s, 4),
        "peaks": peaks,
        "detections": [
            {"wake_word": w, "score": round(s, 6), "time_s": round(frames_to_s(i + 1), 2)}
            for i, w, s in r.detections
        ],
    }


def score_json(results: Sequence[Result], names: Sequence[str]) -> dict[str, Any]:
    files = []
    for r in results:
        if r.skipped is not None:
            continue
        assert r.scores is not None and r.speech is not None
        files.append(
            {
                **_summary(r, names),
                "frames": [
                    {
                        "time_s": round(frames_to_s(i + 1), 2),
                        "scores": {n: round(float(v), 6) for n, v in zip(names, row, strict=True)},
                        "speech": bool(sp),
                    }
                    for i, (row, sp) in enumerate(zip(r.scores, r.speech, strict=True))
                ],
            }
        )
    return {
        "files": files,
        "skipped": [
            {"path": r.path, "reason": r.skipped} for r in results if r.skipped is not None
        ],
    }


def write_csv(out: TextIO, results: Sequence[Result], names: Sequence[str]) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["file", "time_s", *names, "speech"])
    for r in results:
        if r.skipped is not None:
            continue
        assert r.scores is not None and r.speech is not None
        for i, (row, sp) in enumerate(zip(r.scores, r.speech, strict=True)):
            w.writerow([r.path, f"{frames_to_s(i + 1):.2f}", *(f"{v:.6f}" for v in row), int(sp)])


def score_table(
    results: Sequence[Result], names: Sequence[str], config: Config, thresholds: dict[str, float]
) -> str:
    data = [_summary(r, names) for r in results if r.skipped is None]  # no per-frame rows
    width = max([len("file"), *(len(f["path"]) for f in data)])
    nw = max(len("wake word"), *(len(n) for n in names))
    lines = [
        f"{'file':<{width}}  {'duration':>9}  {'wake word':<{nw}}  threshold  patience  "
        f"{'peak':>6}  {'at':>8}  detections"
    ]
    for f in data:
        for k, name in enumerate(names):
            peak = f["peaks"][name]
            at = f"{peak['time_s']:.2f} s" if peak["time_s"] is not None else "-"
            times = [d["time_s"] for d in f["detections"] if d["wake_word"] == name]
            det = f"{len(times)}" + (
                f" at {', '.join(f'{t:.2f}' for t in times)} s" if times else ""
            )
            head = (
                f"{f['path']:<{width}}  {f['duration_s']:7.2f} s"
                if k == 0
                else f"{'':<{width}}  {'':>9}"
            )
            lines.append(
                f"{head}  {name:<{nw}}  {thresholds[name]:9.3f}  "
                f"{config.wake.patience_for(name):8d}  {peak['score']:6.3f}  "
                f"{at:>8}  {det}"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class TuneRow:
    threshold: float
    patience: int
    false_reject_rate: float
    false_accepts: int
    false_accepts_per_hour: float
    false_accepts_per_hour_upper: float | None = None
    """The rate's 95 % upper bound (exact Poisson, as `recorder calibrate`'s); None without
    negative audio."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "patience": self.patience,
            "false_reject_rate": self.false_reject_rate,
            "false_accepts": self.false_accepts,
            "false_accepts_per_hour": self.false_accepts_per_hour,
            "false_accepts_per_hour_upper": self.false_accepts_per_hour_upper,
        }


def tune_table(result: dict[str, Any], max_fa: float, refractory_s: float) -> str:
    rows, rec = result["rows"], result["recommended"]
    patiences = sorted({r["patience"] for r in rows})
    thresholds = sorted({r["threshold"] for r in rows})
    cell = {(r["threshold"], r["patience"]): r for r in rows}
    lines = [
        f"model {result['model']}: {result['positives']} positive clip(s), "
        f"{result['negative_hours'] * 60:.2f} min of negative audio, refractory "
        f"{refractory_s:g} s",
        "FRR: false-reject rate; FA/h: false accepts per hour; FA/h<=: its "
        f"{result['confidence']:.0%} upper bound; * the recommended point",
        "",
        "threshold" + "".join(f"  {'patience ' + str(p):^29}" for p in patiences),
        " " * 9 + "".join(f"  {'FRR':>7} {'FA/h':>9} {'FA/h<=':>9} " for _ in patiences),
    ]
    for t in thresholds:
        parts = []
        for p in patiences:
            r = cell[(t, p)]
            mark = "*" if rec and (rec["threshold"], rec["patience"]) == (t, p) else " "
            up = r["false_accepts_per_hour_upper"]
            parts.append(
                f"  {r['false_reject_rate']:7.3f} {r['false_accepts_per_hour']:9.2f} "
                + (f"{up:9.2f}" if up is not None else f"{'-':>9}")
                + mark
            )
        lines.append(f"{t:9.3f}" + "".join(parts))
    lines.append("")
    if rec:
        lines.append(
            f"recommended: threshold {rec['threshold']:g}, patience {rec['patience']}: "
            f"false-reject rate {rec['false_reject_rate']:.3f}, "
            f"{rec['false_accepts']} false accept(s) = "
            f"{rec['false_accepts_per_hour']:.2f} per hour, at most "
            f"{rec['false_accepts_per_hour_upper']:.2f} at {result['confidence']:.0%} "
            f"confidence (limit {max_fa:g})"
        )
    else:
        lines.append(f"recommended: none ({result['reason']})")
    return "\n".join(lines)
