"""`recorder monitor`: a live terminal meter of the daemon's pipeline.

Runs exactly what `recorder run --dry-run` runs (nothing is saved) and redraws, once per 80 ms
frame (12.5 times a second), one bar per wake word with its score, a peak hold and the
threshold mark, plus the VAD and the recorder's state. A file source is paced in real time.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from recorder import daemon
from recorder.audio import Frame, s_to_frames
from recorder.config import Config
from recorder.machine import State
from recorder.mute import MuteSwitch
from recorder.pipeline import build_pipeline, thresholds
from recorder.sources import open_source

BAR = 40
PEAK_HOLD_S = 2.0


class _LastLines(logging.Handler):
    def __init__(self, n: int = 3):
        super().__init__()
        self.lines: deque[str] = deque(maxlen=n)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Meter:
    threshold_for: Callable[[str], float]
    out: TextIO
    tty: bool
    log_lines: _LastLines
    _peaks: dict[str, tuple[float, int]] = field(default_factory=dict)
    _drawn: int = 0

    def __call__(self, frame: Frame, scores: dict[str, float], speech: bool, state: State) -> None:
        hold = s_to_frames(PEAK_HOLD_S)
        for name, score in scores.items():
            peak, at = self._peaks.get(name, (0.0, -hold))
            if score >= peak or frame.index - at >= hold:
                self._peaks[name] = (score, frame.index)
        if not self.tty:  # a log-friendly line per second instead of a redraw
            if frame.index % 12 == 0:
                parts = " ".join(f"{n}={s:.2f}" for n, s in scores.items())
                self.out.write(
                    f"{frame.end_s:8.2f}s {state.value:<9} "
                    f"{'speech' if speech else '-':<6} {parts}\n"
                )
                self.out.flush()
            return
        width = max(len(n) for n in scores)
        lines = [
            f"{frame.end_s:8.2f} s   state: {state.value:<9}  VAD: {'speech' if speech else '-'}"
        ]
        for name, score in scores.items():
            lines.append(
                f"{name:>{width}} {self._bar(score, self._peaks[name][0], name)} "
                f"{score:5.3f}  peak {self._peaks[name][0]:5.3f}"
            )
        lines += [f"  {line}" for line in self.log_lines.lines]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def _bar(self, score: float, peak: float, name: str) -> str:
        cells = [" "] * BAR
        for i in range(min(BAR, round(score * BAR))):
            cells[i] = "#"
        cells[min(BAR - 1, round(peak * BAR))] = "^" if peak > 0.001 else cells[0]
        mark = min(BAR - 1, round(self.threshold_for(name) * BAR))
        cells[mark] = "|" if cells[mark] == " " else cells[mark]
        return "[" + "".join(cells) + "]"


def run(config: Config, out: TextIO = sys.stdout) -> int:
    """The daemon's pipeline in a dry run, with a meter watching every frame."""
    lines = _LastLines()
    root = logging.getLogger("recorder")
    root.addHandler(lines)
    root.setLevel(logging.INFO)
    root.propagate = False
    flags = daemon.Flags()
    flags.install()
    pipeline = build_pipeline(config, dry_run=True)
    source = open_source(config.audio.source, config.audio.realtime, audio=config.audio)
    try:
        meter = Meter(thresholds(config, pipeline.engine).__getitem__, out, out.isatty(), lines)
        d = daemon.build_daemon(
            config,
            source,
            MuteSwitch(config.base_dir),
            pipeline=pipeline,
            flags=flags,
            dry_run=True,
            observers=[meter],
        )
        d.run()
    finally:
        source.close()
    return 0
