"""The progress bar of `score` and `tune`."""

from __future__ import annotations

import io
import re

from recorder.tools import jobs


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = jobs.Progress(120.0, stream, min_wall_s=0.0)
        for _ in range(12):
            bar.add(10.0)
        bar.close()
    assert pipe.getvalue() == ""
    last = tty.getvalue().rstrip("\n").split("\r")[-1]
    assert re.search(r"\[#{30}\]\s+120\.0 / 120\.0 s audio\s+[0-9.]+x realtime", last), last
