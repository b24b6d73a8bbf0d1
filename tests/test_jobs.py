"""The progress bar of `score` and `tune`, and reading their files."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from conftest import write_pcm

from recorder.audio import WavReader
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


def test_a_read_that_fails_part_way_is_the_files_reason_to_be_skipped(tmp_path):
    path = write_pcm(tmp_path / "x.wav", np.zeros(16000, dtype=np.int16))
    reader = WavReader(path, block_bytes=4096)
    counted = jobs._CountedBlocks(reader, str(path))
    blocks = iter(counted)
    assert len(next(blocks)) == 2048 and counted.samples == 2048
    reader.close()  # the file gone from under the reader: its next read fails
    with pytest.raises(jobs._ReadFailed, match=r"^cannot read \("):
        next(blocks)
