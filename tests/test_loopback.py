"""The playback reference read beside the microphone: multi-channel WAV files, interleaved
stdin and a device's blocks keep two channels; without a reference nothing changes."""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest
from conftest import AUDIO, read_pcm, write_pcm

from recorder.audio import FRAME_SAMPLES, Frame, read_wav
from recorder.config import AudioConfig
from recorder.errors import RecorderError
from recorder.sources import FileSource, StdinSource, open_source
from recorder.sources.loopback import Pair
from recorder.sources.mic_format import FormatError, MicFormat, OpenFormat, Reframer, negotiate


def never() -> bool:
    return False


def three_channels() -> np.ndarray:
    """(n, 3): speech, a tone, the speech reversed."""
    speech = read_pcm(AUDIO / "jarvis_bare.wav")
    t = np.arange(len(speech))
    tone = np.round(3000 * np.sin(2 * np.pi * 440 * t / 16000)).astype(np.int16)
    return np.stack([speech, tone, speech[::-1]], axis=1)


def joined(frames: list[Frame], reference: bool = False) -> np.ndarray:
    return np.concatenate([f.reference if reference else f.samples for f in frames])


def test_a_file_gives_its_microphone_and_reference_channels_bit_exact(tmp_path):
    data = three_channels()
    path = write_pcm(tmp_path / "three.wav", data.ravel(), channels=3)
    source = FileSource(path, pair=Pair(2, 1))
    frames = list(source.frames(never))
    assert np.array_equal(joined(frames), data[:, 2])
    assert np.array_equal(joined(frames, reference=True), data[:, 1])
    assert [len(f.samples) for f in frames] == [len(f.reference) for f in frames]
    assert source.info == {"channel": 2, "reference_channel": 1}


def test_without_a_reference_a_file_is_read_as_before(tmp_path):
    data = three_channels()
    path = write_pcm(tmp_path / "three.wav", data.ravel(), channels=3)
    source = open_source(f"file:{path}", audio=AudioConfig())
    frames = list(source.frames(never))
    assert all(f.reference is None for f in frames) and source.info == {}
    assert np.array_equal(joined(frames), read_wav(path))  # the channels averaged


def test_a_file_at_another_rate_converts_both_channels_as_a_mono_file(tmp_path):
    rng = np.random.default_rng(1)
    data = np.round(rng.standard_normal((48000 * 2, 2)) * 2000).astype(np.int16)
    path = write_pcm(tmp_path / "stereo48k.wav", data.ravel(), rate=48000, channels=2)
    frames = list(FileSource(path, pair=Pair(0, 1)).frames(never))
    for channel, reference in ((0, False), (1, True)):
        mono = write_pcm(tmp_path / f"mono{channel}.wav", data[:, channel], rate=48000)
        assert np.array_equal(joined(frames, reference), read_wav(mono))


def test_a_file_without_the_reference_channel_is_refused(tmp_path):
    path = write_pcm(tmp_path / "stereo.wav", three_channels()[:, :2].ravel(), channels=2)
    with pytest.raises(RecorderError, match=re.escape("need 3 channels, it has 2")):
        open_source(f"file:{path}", audio=AudioConfig(channel=0, reference_channel=2))


def test_stdin_splits_interleaved_channels():
    data = three_channels()[: FRAME_SAMPLES * 3 + 50]
    raw = data.tobytes()
    read_fd, write_fd = os.pipe()

    def writer() -> None:  # odd-sized writes: frames must not depend on how bytes arrive
        for i in range(0, len(raw), 1001):
            os.write(write_fd, raw[i : i + 1001])
        os.close(write_fd)

    threading.Thread(target=writer, daemon=True).start()
    source = StdinSource(read_fd, 3, Pair(0, 2))
    frames = [item for item in source.frames(never) if isinstance(item, Frame)]
    os.close(read_fd)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert np.array_equal(joined(frames), data[:, 0])
    assert np.array_equal(joined(frames, reference=True), data[:, 2])


def test_stdin_with_a_reference_needs_its_channel_count():
    with pytest.raises(RecorderError, match="set \\[audio\\] device_channels"):
        open_source("stdin", audio=AudioConfig(channel=0, reference_channel=1))
    with pytest.raises(RecorderError, match="need 3 channels, it has 2"):
        open_source("stdin", audio=AudioConfig(device_channels=2, reference_channel=2))


@pytest.mark.parametrize("rate", [16000, 48000])
def test_a_device_gives_the_reference_beside_the_channel_it_kept(rate):
    rng = np.random.default_rng(2)
    blocks = [np.round(rng.standard_normal((rate // 10, 4)) * 3000).astype(np.int16)]
    blocks *= 8
    paired = Reframer(OpenFormat(rate, 4, 1, Pair(1, 3)))
    mic_only = Reframer(OpenFormat(rate, 4, 1))
    reference_only = Reframer(OpenFormat(rate, 4, 3))
    frames = [f for b in blocks for f in paired.push(b)]
    assert np.array_equal(joined(frames), joined([f for b in blocks for f in mic_only.push(b)]))
    expected = joined([f for b in blocks for f in reference_only.push(b)])
    assert np.array_equal(joined(frames, reference=True), expected)
    assert paired.index == len(frames) and paired.position == mic_only.position


class FourChannels48k:
    """The device edge of sounddevice for a ReSpeaker-like array: 48 kHz, 2 or 4 channels."""

    def check_input_settings(self, device, samplerate, channels, dtype):
        if samplerate != 48000 or channels not in (2, 4):
            raise ValueError("Invalid sample rate / channel count")


ARRAY = {"name": "respeaker-4mic", "max_input_channels": 4, "default_samplerate": 48000.0}


def test_a_device_is_opened_with_the_channels_the_reference_needs():
    want = MicFormat(channel=0, pair=Pair(0, 3))
    fmt = negotiate(FourChannels48k(), 3, ARRAY, want)
    assert fmt == OpenFormat(48000, 4, 0, Pair(0, 3))
    assert fmt.info == {
        "device_rate": 48000,
        "device_channels": 4,
        "channel": 0,
        "reference_channel": 3,
    }
    too_few = MicFormat(channels=2, channel=0, pair=Pair(0, 3))
    with pytest.raises(FormatError, match="need 4 channels, it has 2"):
        negotiate(FourChannels48k(), 3, ARRAY, too_few)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"channel": 1, "reference_channel": 1}, "must be another one, got channel = 1"),
        ({"channel": "mix", "reference_channel": 1}, "got channel = 'mix'"),
        ({"echo_canceller": "speex"}, "echo_canceller: must be one of linear, webrtc"),
    ],
)
def test_a_reference_on_the_microphones_channel_is_refused(keys, message):
    with pytest.raises(RecorderError, match=re.escape(message)):
        AudioConfig(**keys)


def test_doctor_measures_the_reference_and_finds_it_silent(tmp_path):
    from recorder import doctor
    from recorder.config import Config

    data = three_channels()
    path = write_pcm(tmp_path / "three.wav", data.ravel(), channels=3)
    audio = AudioConfig(source=f"file:{path}", channel=0, reference_channel=1)
    samples, reference = doctor._record(Config(audio=audio), 1.0)
    assert np.array_equal(samples, data[: len(samples), 0])
    assert reference is not None and np.array_equal(reference, data[: len(samples), 1])
    [playing] = doctor._check_reference(Config(audio=audio), reference)
    assert playing.ok and playing.name == "reference" and "channel 1: level" in playing.detail
    [silent] = doctor._check_reference(Config(audio=audio), np.zeros(16000, dtype=np.int16))
    assert not silent.ok and "(silence)" in silent.detail and "play something" in silent.fix
    assert doctor._check_reference(Config(), None) == []  # no reference configured
