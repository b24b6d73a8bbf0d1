"""The file and stdin sources (the microphone has its own tests through the virtual mic)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, read_pcm, write_pcm

import recorder
from recorder.audio import FRAME_SAMPLES, Frame
from recorder.errors import RecorderError
from recorder.sources import FileSource, StdinSource, chunk, open_source, sample_path


def never() -> bool:
    return False


def test_chunk_numbers_80_ms_frames_and_keeps_the_tail():
    samples = np.arange(FRAME_SAMPLES * 2 + 7, dtype=np.int16)
    frames = list(chunk(samples, first_index=5))
    assert [f.index for f in frames] == [5, 6, 7]
    assert [len(f.samples) for f in frames] == [FRAME_SAMPLES, FRAME_SAMPLES, 7]
    assert np.array_equal(np.concatenate([f.samples for f in frames]), samples)


def test_a_file_source_gives_the_file_bit_exact_and_stops_when_asked(tmp_path):
    expected = read_pcm(AUDIO / "jarvis_bare.wav")
    source = open_source(f"file:{AUDIO / 'jarvis_bare.wav'}")
    assert isinstance(source, FileSource) and not source.live
    frames = list(source.frames(never))
    assert np.array_equal(np.concatenate([f.samples for f in frames]), expected)
    stop_after = iter(range(3))
    taken = list(source.frames(lambda: next(stop_after, None) is None))
    assert len(taken) == 3


def test_a_file_source_converts_other_formats(tmp_path):
    stereo = np.repeat(read_pcm(AUDIO / "jarvis_bare.wav")[:, None], 2, axis=1)
    path = write_pcm(tmp_path / "stereo.wav", stereo.ravel(), channels=2)
    frames = list(FileSource(path).frames(never))
    assert np.array_equal(
        np.concatenate([f.samples for f in frames]), read_pcm(AUDIO / "jarvis_bare.wav")
    )


def test_stdin_source_reframes_partial_reads_and_ends_at_eof():
    samples = read_pcm(AUDIO / "jarvis_bare.wav")[: FRAME_SAMPLES * 5 + 100]
    data = samples.tobytes()
    read_fd, write_fd = os.pipe()

    def writer() -> None:  # odd-sized writes: frames must not depend on how bytes arrive
        for i in range(0, len(data), 777):
            os.write(write_fd, data[i : i + 777])
        os.close(write_fd)

    threading.Thread(target=writer, daemon=True).start()
    source = StdinSource(read_fd)
    frames = [item for item in source.frames(never) if isinstance(item, Frame)]
    os.close(read_fd)
    assert source.live
    assert [f.index for f in frames] == list(range(6))
    assert np.array_equal(np.concatenate([f.samples for f in frames]), samples)


def test_stdin_source_ticks_while_no_audio_comes_and_stops_when_asked():
    read_fd, write_fd = os.pipe()
    ticks = 0

    def stop() -> bool:
        return ticks >= 2

    for item in StdinSource(read_fd).frames(stop):
        assert item is None  # nothing was written: only the idle tick
        ticks += 1
    os.close(read_fd)
    os.close(write_fd)
    assert ticks == 2


@pytest.mark.parametrize(
    "spec, message",
    [
        ("file:", "needs a path"),
        ("file:/no/such.wav", "no such file"),
        ("speaker", "unknown source 'speaker'"),
        ("stdin:x", "unknown source"),
        ("sample:x", "unknown source 'sample:x': use mic, .*, stdin or sample"),
    ],
)
def test_bad_source_specs_are_user_errors(spec, message):
    with pytest.raises(RecorderError, match=message):
        open_source(spec)


def test_file_and_stdin_sources_have_no_device_to_close_no_format_and_no_gaps():
    read_fd, write_fd = os.pipe()
    try:
        for source in (FileSource(AUDIO / "jarvis_bare.wav"), StdinSource(read_fd)):
            assert not source.closable and not source.closed
            source.set_closed(True)  # nothing to release: stays open
            assert not source.closed
            assert dict(source.info) == {} and list(source.gaps) == []
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_the_sample_source_is_the_recording_that_comes_with_the_package():
    source = open_source("sample")
    assert isinstance(source, FileSource) and source.path == sample_path()
    assert source.path.parent.parent / "__init__.py" == Path(recorder.__file__)
    samples = np.concatenate([f.samples for f in source.frames(never)])
    assert np.array_equal(samples, read_pcm(AUDIO / "speech_then_wake.wav"))
