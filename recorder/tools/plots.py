"""PNG plots for `recorder score` and `recorder tune`, drawn headless with matplotlib's Agg.

matplotlib is optional (`pip install 'wakeword-recorder[plot]'`) and imported only here, only when a
plot is asked for. No pyplot: a bare Figure renders with Agg and touches no display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recorder.audio import FRAME_S
from recorder.errors import RecorderError

if TYPE_CHECKING:
    from recorder.tools.jobs import Result
    from recorder.tools.report import TuneRow

MISSING = "plotting needs matplotlib: pip install 'wakeword-recorder[plot]'"
MAX_FILES = 12


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise RecorderError(MISSING) from None


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    try:
        fig.savefig(path.expanduser(), format="png", dpi=100)
    except OSError as e:
        raise RecorderError(f"--plot {path}: cannot write ({e.strerror or e})") from None


def score_timelines(
    path: Path, results: Sequence[Result], names: Sequence[str], thresholds: Mapping[str, float]
) -> None:
    """One subplot per file (the first MAX_FILES): each model's score over time, its threshold
    (dashed), its detections (dotted) and the frames webrtcvad took for speech (shaded)."""
    shown = list(results)[:MAX_FILES]
    fig = _figure(11, 0.6 + 2.3 * len(shown))
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    colors = [f"C{i % 10}" for i in range(len(names))]
    for ax, r in zip(axes, shown, strict=True):
        assert r.scores is not None and r.speech is not None
        t = (np.arange(len(r.scores)) + 1) * FRAME_S
        ax.fill_between(
            t,
            0,
            1,
            where=r.speech,
            step="pre",
            color="0.85",
            linewidth=0,
            transform=ax.get_xaxis_transform(),
            label="speech (VAD)",
        )
        shared = len({thresholds[n] for n in names}) == 1
        for k, name in enumerate(names):
            ax.plot(t, r.scores[:, k], color=colors[k], linewidth=1.2, label=name)
            ax.axhline(
                thresholds[name],
                color="0.4" if shared else colors[k],
                linestyle="--",
                linewidth=0.8,
            )
        for index, wake, _score in r.detections:
            ax.axvline(
                (index + 1) * FRAME_S,
                color=colors[list(names).index(wake)],
                linestyle=":",
                linewidth=1.2,
            )
        ax.set_xlim(0, max(len(r.scores) * FRAME_S, FRAME_S))
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("score")
        ax.set_title(
            f"{r.path} ({r.duration_s:.2f} s, {len(r.detections)} detection(s))",
            fontsize=9,
            loc="left",
        )
    axes[-1].set_xlabel("time (s, end of each 80 ms frame)")
    axes[0].legend(loc="upper right", fontsize=8, ncols=min(len(names) + 1, 4))
    note = f" (the first {MAX_FILES} of {len(results)} files)" if len(results) > MAX_FILES else ""
    fig.suptitle(
        "wake-word scores: dashed = threshold, dotted = detection, shaded = speech" + note,
        fontsize=10,
    )
    _save(fig, path)


def det_curve(
    path: Path, model: str, rows: Sequence[TuneRow], best: TuneRow | None, max_fa_per_hour: float
) -> None:
    """False-reject rate against false accepts per hour, one line per patience, the points
    ordered by threshold; the budget as a vertical line and the recommended point starred."""
    fig = _figure(8, 5.5)
    ax = fig.subplots()
    patiences = sorted({r.patience for r in rows})
    positive_fa = [r.false_accepts_per_hour for r in rows if r.false_accepts_per_hour > 0]
    for i, p in enumerate(patiences):
        line = sorted((r for r in rows if r.patience == p), key=lambda r: r.threshold)
        ax.plot(
            [r.false_accepts_per_hour for r in line],
            [r.false_reject_rate for r in line],
            marker="os^Dv<>p"[i % 8],
            markersize=max(7 - 1.5 * i, 3),
            fillstyle="none",
            linewidth=max(2.5 - 0.6 * i, 0.8),
            color=f"C{i % 10}",
            label=f"patience {p}",
        )
    if best is not None:
        ax.plot(
            [best.false_accepts_per_hour],
            [best.false_reject_rate],
            marker="*",
            markersize=16,
            color="crimson",
            linestyle="none",
            label=f"recommended: threshold {best.threshold:g}, patience {best.patience}",
        )
    ax.axvline(
        max_fa_per_hour,
        color="0.4",
        linestyle="--",
        linewidth=0.8,
        label=f"limit {max_fa_per_hour:g} FA/h (at the 95 % upper bound)",
    )
    linthresh = min([*positive_fa, max_fa_per_hour or 1.0, 1.0])
    ax.set_xscale("symlog", linthresh=linthresh)
    right = max([*positive_fa, max_fa_per_hour, linthresh])
    ax.set_xlim(-0.05 * linthresh, right * 1.5)  # the points at 0 FA/h stay visible
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false accepts per hour")
    ax.set_ylabel("false-reject rate")
    ax.set_title(f"DET curve: {model}")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
