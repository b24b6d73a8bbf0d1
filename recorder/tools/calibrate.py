"""`recorder calibrate`: false accepts per day in the owner's room (from the daemon's
calibration counters) beside false rejects for the owner's voice (from `recorder enroll`), with
an exact Poisson upper bound, and the threshold to use.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recorder import config as config_mod
from recorder.audio import FRAME_S
from recorder.calibration import THRESHOLDS, ModelCounts
from recorder.calibration import load as load_counts
from recorder.errors import RecorderError
from recorder.onsets import CONFIDENCE, exposure_needed, upper_rate
from recorder.tools import enroll
from recorder.tools.report import emit


def add_parser(sub: Any) -> None:
    """Register `calibrate` on the `recorder` command's subparsers."""
    ca = sub.add_parser(
        "calibrate",
        help="false accepts per day in this room, per threshold, and a threshold",
        description="Read the counters the daemon keeps with [wake] calibrate = true (or `run "
        "--calibrate`) and the owner's enrolled clips (`recorder enroll`), and print per model "
        "and threshold the hours observed, the activations (requests that were saved are "
        "counted apart), the false accepts per day and their 95 %% upper bound (exact Poisson), "
        "and the false rejects for the enrolled voice. Recommends the lowest threshold, at the "
        "configured patience, whose upper bound meets --target-fa-per-day; with enrolled clips, "
        "the lowest false-reject rate among the (threshold, patience) that meet it.",
    )
    ca.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML config file: the patience per model and [storage] state_dir "
        "(default: the config in force, as for every command; `recorder config path`)",
    )
    ca.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where the daemon keeps its counters (default: as for `recorder run`: "
        "$STATE_DIRECTORY, else [storage] state_dir, else ~/.local/state/recorder)",
    )
    ca.add_argument(
        "--target-fa-per-day",
        type=float,
        default=1.0,
        metavar="RATE",
        help="false accepts per day the recommended threshold may have, at the "
        "95 %% upper bound (default 1)",
    )
    ca.add_argument("--json", action="store_true", help="print one JSON object")


def hours_needed(target_per_day: float) -> float:
    """Hours heard after which zero activations show the target at the upper bound."""
    return 24.0 * exposure_needed(target_per_day)


def model_report(
    name: str, counts: ModelCounts, patience: int, enrolled: dict[str, Any] | None, target: float
) -> dict[str, Any]:
    rows = []
    for p, pc in sorted(counts.patience.items()):
        days = pc.frames * FRAME_S / 86400.0
        for k, t in enumerate(THRESHOLDS):
            fa = pc.activations[k]
            row: dict[str, Any] = {
                "threshold": t,
                "patience": p,
                "hours": days * 24.0,
                "activations": fa,
                "requests": pc.requests[k],
                "fa_per_day": fa / days if days > 0 else None,
                "fa_per_day_upper": upper_rate(fa, days),
            }
            if enrolled is not None and p in enrolled["detected"]:
                clips = enrolled["clips"]
                row["detected"] = enrolled["detected"][p][k]
                row["false_reject_rate"] = 1.0 - row["detected"] / clips if clips else None
            rows.append(row)
    hours = counts.frames * FRAME_S / 3600.0
    recommended, reason = recommend(rows, patience, enrolled is not None, target, hours)
    return {
        "hours": hours,
        "patience": patience,
        "enrolled_clips": enrolled["clips"] if enrolled else None,
        "thresholds": rows,
        "recommended": recommended,
        "reason": reason,
    }


def recommend(
    rows: Sequence[dict[str, Any]], patience: int, voices: bool, target: float, hours: float
) -> tuple[dict[str, Any] | None, str | None]:
    """Without enrolled clips: the lowest threshold at the configured patience whose upper
    bound meets the target. With them: the lowest false-reject rate among the rows that meet
    it (ties: the lower threshold, then the lower patience). None, with the reason, otherwise."""
    need = hours_needed(target)
    ok = [r for r in rows if r["fa_per_day_upper"] is not None and r["fa_per_day_upper"] <= target]
    if voices:
        ok = [r for r in ok if r.get("false_reject_rate") is not None]
        best = min(
            ok, key=lambda r: (r["false_reject_rate"], r["threshold"], r["patience"]), default=None
        )
    else:
        best = min(
            (r for r in ok if r["patience"] == patience), key=lambda r: r["threshold"], default=None
        )
    if best is not None:
        return best, None
    if hours < need:
        return None, (
            f"too few hours observed: {hours:.1f} h; at least {need:.1f} h of "
            f"listening are needed before even zero activations show at most "
            f"{target:g} false accept(s) per day at {CONFIDENCE:.0%} confidence"
        )
    return None, (
        f"no threshold's {CONFIDENCE:.0%} upper bound is within {target:g} false "
        f"accept(s) per day" + ("" if voices else f" at patience {patience}")
    )


def build(
    counts: dict[str, ModelCounts],
    enrolled: dict[str, dict[str, Any]],
    config: config_mod.Config,
    target: float,
    state_dir: Path,
) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "target_fa_per_day": target,
        "confidence": CONFIDENCE,
        "models": {
            name: model_report(name, c, config.wake.patience_for(name), enrolled.get(name), target)
            for name, c in sorted(counts.items())
        },
    }


def text(result: dict[str, Any]) -> str:
    lines = [
        f"counters in {result['state_dir']}; target {result['target_fa_per_day']:g} false "
        f"accept(s) per day at the {result['confidence']:.0%} upper bound"
    ]
    for name, m in result["models"].items():
        voices = m["enrolled_clips"] is not None
        lines += [
            "",
            f"model {name}: {m['hours']:.2f} h heard"
            + (
                f", {m['enrolled_clips']} enrolled clip(s)"
                if voices
                else ", no enrolled clips (`recorder enroll`)"
            ),
            "requests: activations that became saved requests (not counted as false)",
            f"{'threshold':>9} {'patience':>8} {'activations':>11} {'requests':>8} "
            f"{'FA/day':>8} {'FA/day<=':>9}" + (f" {'FRR':>6}" if voices else ""),
        ]
        rec = m["recommended"]
        for r in m["thresholds"]:
            if not voices and r["patience"] != m["patience"]:
                continue
            fa = "-" if r["fa_per_day"] is None else f"{r['fa_per_day']:.2f}"
            up = "-" if r["fa_per_day_upper"] is None else f"{r['fa_per_day_upper']:.2f}"
            frr = r.get("false_reject_rate")
            mark = (
                "*"
                if rec is not None
                and (rec["threshold"], rec["patience"]) == (r["threshold"], r["patience"])
                else ""
            )
            lines.append(
                f"{r['threshold']:9.2f} {r['patience']:8d} {r['activations']:11d} "
                f"{r['requests']:8d} {fa:>8} {up:>9}"
                + ((f" {frr:6.3f}" if frr is not None else f" {'-':>6}") if voices else "")
                + mark
            )
        if rec is not None:
            lines.append(
                f"recommended: threshold {rec['threshold']:g}, patience "
                f"{rec['patience']} (at most {rec['fa_per_day_upper']:.2f} false "
                "accepts per day"
                + (f", false-reject rate {rec['false_reject_rate']:.3f}" if voices else "")
                + ")"
            )
        else:
            lines.append(f"recommended: none ({m['reason']})")
    if not result["models"]:
        lines.append(
            "no counters yet: run the daemon with --calibrate ([wake] calibrate = "
            "true) with this state directory"
        )
    return "\n".join(lines)


def cmd_calibrate(args: argparse.Namespace) -> int:
    target = args.target_fa_per_day
    if not (math.isfinite(target) and target > 0):
        raise RecorderError(f"--target-fa-per-day {target:g}: must be above 0")
    config = config_mod.load(config_mod.locate(args.config))
    state_dir = args.state_dir or config_mod.state_dir(config)
    result = build(load_counts(state_dir), enroll.load(state_dir), config, target, state_dir)
    if args.json:
        emit(json.dumps(result) + "\n")
    else:
        emit(text(result) + "\n")
    return 0
