"""`recorder monitor`'s view, the same for the local pipeline and a daemon attached to: the
frames' records (`recorder.monitor_feed`) and the journal's records in, lines out.

On a terminal it redraws, once per 80 ms frame, the state, the VAD, a level bar (dBFS) and one
bar per wake word with its score, a peak hold and the threshold mark, with the last events
under them. Off a terminal (a pipe, the journal) it prints one line per second of audio with
each model's highest score of that second, the highest level and the speech frames, and one
line per event (a wake word, a saved or discarded request, mute, ...) as it comes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from recorder.human import printable

BAR = 40
PEAK_HOLD_S = 2.0
LEVEL_FLOOR_DBFS = -80.0
"""The level bar's empty end; its full end is 0 dBFS."""
NOTES = 3
"""Events shown under the bars on a terminal."""


def level_bar(dbfs: float, width: int = BAR, floor_dbfs: float = LEVEL_FLOOR_DBFS) -> str:
    """A level as a bar of `width` cells from `floor_dbfs` (empty) to 0 dBFS (full)."""
    share = (min(0.0, max(floor_dbfs, dbfs)) - floor_dbfs) / -floor_dbfs
    filled = round(share * width)
    return "[" + "=" * filled + " " * (width - filled) + "]"


def score_bar(score: float, peak: float, threshold: float, width: int = BAR) -> str:
    """A score as a bar of `width` cells, with its peak `^` and the threshold's mark `|`."""
    cells = [" "] * width
    for i in range(min(width, round(score * width))):
        cells[i] = "#"
    cells[min(width - 1, round(peak * width))] = "^" if peak > 0.001 else cells[0]
    mark = min(width - 1, round(threshold * width))
    cells[mark] = "|" if cells[mark] == " " else cells[mark]
    return "[" + "".join(cells) + "]"


def second_of(offset_s: float) -> int:
    """The whole second of audio in which the frame ending at `offset_s` starts."""
    return math.floor(offset_s - 0.08 + 1e-6)


@dataclass
class SecondMax:
    """Frames' records summed up per second of audio: each model's highest score, the highest
    level, the frames with speech and the state at the second's end."""

    second: int | None = None
    scores: dict[str, float] = field(default_factory=dict)
    level_dbfs: float = -math.inf
    frames: int = 0
    speech: int = 0
    state: str = ""

    def add(self, record: Mapping[str, Any]) -> str | None:
        """Take a frame's record; the line of the second it closes, if it starts another."""
        second = second_of(float(record["offset_s"]))
        line = self.flush() if self.second is not None and second != self.second else None
        self.second = second
        for name, score in record["scores"].items():
            self.scores[name] = max(score, self.scores.get(name, 0.0))
        self.level_dbfs = max(self.level_dbfs, float(record["level_dbfs"]))
        self.frames += 1
        self.speech += bool(record["speech"])
        self.state = str(record["state"])
        return line

    def flush(self) -> str | None:
        """The line of the second so far (None before any frame), and start afresh."""
        if self.second is None:
            return None
        span = f"{self.second}-{self.second + 1}"
        scores = " ".join(f"{n}={s:.3f}" for n, s in self.scores.items())
        line = (
            f"{span:>9} s  {self.state:<9}  speech {self.speech:>2}/{self.frames:<2}  "
            f"level max {self.level_dbfs:6.1f} dBFS  max {scores}"
        )
        self.second, self.scores, self.level_dbfs = None, {}, -math.inf
        self.frames = self.speech = 0
        return line


def record_text(record: Mapping[str, Any]) -> str | None:
    """A journal record as a line for people, without control characters (its text comes
    from the daemon: transcripts, reasons); None for a state change (the view shows it)."""
    text = _record_text(record)
    return None if text is None else printable(text)


def _record_text(record: Mapping[str, Any]) -> str | None:
    event = record.get("event")
    if event == "state":
        return None
    if event == "wake":
        score, at = record.get("score"), record.get("offset_s")
        score = f"{score:.3f}" if isinstance(score, float | int) else score
        return f"wake word {record.get('model')} detected (score {score}) at {at} s"
    if event == "saved":
        what = "would save (dry run)" if record.get("dry_run") else f"saved {record.get('id')}"
        return (
            f"{what}: {record.get('duration_s')} s from {record.get('source_offset_s')} s "
            f"({record.get('end_reason')}, wake word {record.get('wake_word')})"
        )
    fields = " ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in record.items()
        if k not in ("event", "seq", "time", "pid")
    )
    return f"{event} {fields}".rstrip()


@dataclass
class View:
    """The monitor's output: `frame` for each frame's record, `record` for each journal
    record, `note` for other lines (the local pipeline's warnings), `close` at the end."""

    out: TextIO
    tty: bool
    thresholds: dict[str, float] = field(default_factory=dict)
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=NOTES))
    seconds: SecondMax = field(default_factory=SecondMax)
    _peaks: dict[str, tuple[float, float]] = field(default_factory=dict)
    _drawn: int = 0
    _undrawn: list[str] = field(default_factory=list)
    """On a terminal: the notes since the last redraw."""

    def frame(self, record: Mapping[str, Any]) -> None:
        if "thresholds" in record:  # changed by a reload
            self.thresholds = dict(record["thresholds"])
        if not self.tty:
            self._print(self.seconds.add(record))
            return
        at = float(record["offset_s"])
        for name, score in record["scores"].items():
            peak, when = self._peaks.get(name, (0.0, -math.inf))
            if score >= peak or at - when >= PEAK_HOLD_S:
                self._peaks[name] = (score, at)
        self._draw(record)

    def record(self, record: Mapping[str, Any]) -> None:
        if record.get("event") == "stopped":
            self.close()  # the last second's line before the last event's
        text = record_text(record)
        if text is not None:
            self.note(text)

    def note(self, text: str) -> None:
        if self.tty:
            self.notes.append(text)
            self._undrawn.append(text)
        else:
            self._print(text)

    def close(self) -> None:
        """Off a terminal: the last second's line; on one, the notes no redraw showed."""
        if not self.tty:
            self._print(self.seconds.flush())
        for text in self._undrawn:
            self._print(f"  {text}")
        self._undrawn.clear()

    def _print(self, line: str | None) -> None:
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    def _draw(self, record: Mapping[str, Any]) -> None:
        scores: Mapping[str, float] = record["scores"]
        level = float(record["level_dbfs"])
        width = max([len("level"), *map(len, scores)])
        vad = "speech" if record["speech"] else "-"
        lines = [f"{record['offset_s']:8.2f} s   state: {record['state']:<9}  VAD: {vad}"]
        lines.append(f"{'level':>{width}} {level_bar(level)} {level:6.1f} dBFS")
        for name, score in scores.items():
            peak = self._peaks[name][0]
            bar = score_bar(score, peak, self.thresholds.get(name, 0.5))
            lines.append(f"{name:>{width}} {bar} {score:5.3f}  peak {peak:5.3f}")
        lines += [f"  {line}" for line in self.notes]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)
        self._undrawn.clear()
