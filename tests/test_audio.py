"""Reading WAV files: 16 kHz mono s16 bit-exact, others converted, unreadable ones refused."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from conftest import AUDIO, oww_fixture, read_pcm, write_pcm

from recorder.audio import FRAME_SAMPLES, BlockResampler, WavReader, read_wav, reframe, resample
from recorder.errors import RecorderError


def test_16k_mono_is_read_bit_exact():
    for path in [oww_fixture("alexa_test.wav"), AUDIO / "two_requests.wav"]:
        assert np.array_equal(read_wav(path), read_pcm(path))


def test_real_22k_stereo_chime_is_converted():
    path = oww_fixture("activation.wav")
    samples = read_wav(path)
    raw = path.read_bytes()
    channels, rate = struct.unpack("<HI", raw[22:28])
    assert (channels, rate) == (2, 22050)
    data_len = struct.unpack("<I", raw[raw.index(b"data") + 4 : raw.index(b"data") + 8])[0]
    n_in = data_len // 4
    assert len(samples) == n_in * 16000 // 22050
    assert samples.dtype == np.int16 and np.abs(samples).max() > 1000


@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 1), (8000, 1), (22050, 3)])
def test_other_rates_and_channels_are_resampled_faithfully(tmp_path, rate, channels):
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    data = np.round(np.repeat(tone[:, None], channels, axis=1) * 32767).astype("<i2")
    path = write_pcm(tmp_path / "tone.wav", data.reshape(-1), rate, channels)
    got = read_wav(path).astype(np.float64) / 32768
    assert len(got) == 16000
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(got[100:-100] - ref[100:-100]).max() < 2e-3


def _wav_header(fmt_tag: int, channels: int, rate: int, bits: int, n_bytes: int) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + n_bytes)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", n_bytes)
    )


@pytest.mark.parametrize(
    "tag, bits, encode",
    [
        (3, 32, lambda x: x.astype("<f4").tobytes()),
        (1, 8, lambda x: np.round(x * 127 + 128).astype(np.uint8).tobytes()),
        (
            1,
            24,
            lambda x: b"".join(
                int(round(v * 8388607)).to_bytes(3, "little", signed=True) for v in x
            ),
        ),
    ],
)
def test_float_8_and_24_bit_pcm(tmp_path, tag, bits, encode):
    x = 0.25 * np.sin(2 * np.pi * 300 * np.arange(1600) / 16000)
    body = encode(x)
    path = tmp_path / "x.wav"
    path.write_bytes(_wav_header(tag, 1, 16000, bits, len(body)) + body)
    got = read_wav(path).astype(np.float64) / 32768
    assert np.abs(got - x).max() < (1 / 100 if bits == 8 else 1e-4)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a WAV file"),
        (b"ID3\x03\x00 this is an mp3", "not a WAV file"),
        (_wav_header(7, 1, 8000, 8, 100) + bytes(100), "unsupported WAV encoding"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "no audio data"),
    ],
)
def test_unreadable_files_are_refused_by_name(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(RecorderError, match=message) as e:
        read_wav(path)
    assert str(path) in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(RecorderError, match="no such file"):
        read_wav(tmp_path / "nope.wav")
    with pytest.raises(RecorderError, match="is a directory"):
        read_wav(tmp_path)


def test_resample_rejects_aliasing():
    rate = 48000
    x = np.sin(2 * np.pi * 12000 * np.arange(rate) / rate)  # above the 8 kHz output Nyquist
    assert np.abs(resample(x, rate, 16000)[200:-200]).max() < 1e-3


def test_streamed_wav_with_unknown_length_reads_to_the_end(tmp_path):
    x = (np.arange(3200) % 500).astype("<i2")
    for declared in (0, 0xFFFFFFFF):
        head = bytearray(_wav_header(1, 1, 16000, 16, len(x) * 2))
        head[-4:] = struct.pack("<I", declared)
        path = tmp_path / "s.wav"
        path.write_bytes(bytes(head) + x.tobytes())
        assert np.array_equal(read_wav(path), x)


@pytest.mark.parametrize(
    "rate, channels, tag, bits",
    [(16000, 1, 1, 16), (44100, 2, 1, 16), (48000, 1, 3, 32), (22050, 3, 1, 24), (8000, 1, 1, 8)],
)
def test_blocks_of_any_size_give_the_same_samples(tmp_path, rate, channels, tag, bits):
    """The samples do not depend on how much of the file is read at a time: a long file read in
    blocks is the same as a short one read whole (resampling included, sample for sample)."""
    rng = np.random.default_rng(rate + channels)
    n = int(rate * 0.2) + 3
    if tag == 3:
        body = rng.normal(0, 0.3, n * channels).astype("<f4").tobytes()
    else:
        body = rng.integers(0, 256, n * channels * bits // 8, dtype=np.uint8).tobytes()
    path = tmp_path / "x.wav"
    path.write_bytes(_wav_header(tag, channels, rate, bits, len(body)) + body + b"\x01")
    whole = read_wav(path)
    assert len(whole) == (n if rate == 16000 else int(n * 16000 / rate))
    frame_bytes = channels * bits // 8
    for block_bytes in (frame_bytes * 7, 1000, 4096, len(body)):
        with WavReader(path, block_bytes=block_bytes) as reader:
            blocks = list(reader.blocks())
            again = list(reader.blocks())  # each call reads from the start
        assert np.array_equal(np.concatenate(blocks), whole), block_bytes
        assert np.array_equal(np.concatenate(again), whole)
        assert all(b.dtype == np.int16 for b in blocks)


def test_block_resampler_matches_resample_sample_for_sample():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 0.3, 6011)
    for rate in (8000, 22050, 44100, 48000, 96000):
        whole = resample(x, rate, 16000)
        for size in (3, 997, 4096, len(x)):
            r = BlockResampler(rate, 16000)
            parts = [r.push(x[i : i + size]) for i in range(0, len(x), size)] + [r.finish()]
            assert np.array_equal(np.concatenate(parts), whole), (rate, size)


def test_reframe_cuts_blocks_of_any_size_into_numbered_frames():
    samples = np.arange(FRAME_SAMPLES * 3 + 5, dtype=np.int16)
    sizes = [1, FRAME_SAMPLES - 1, 2 * FRAME_SAMPLES + 3, 1]
    blocks = np.split(samples, np.cumsum(sizes)[:-1])
    frames = list(reframe(blocks, first_index=2))
    assert [f.index for f in frames] == [2, 3, 4, 5]
    assert [len(f.samples) for f in frames] == [FRAME_SAMPLES] * 3 + [5]
    assert np.array_equal(np.concatenate([f.samples for f in frames]), samples)
    assert all(f.samples.base is None for f in frames)  # a kept frame holds no block


def test_a_header_that_cannot_be_read_is_refused_on_opening(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    with pytest.raises(RecorderError, match="no audio data"):
        WavReader(path)


def test_a_float_wav_with_signalling_nans_reads_as_silence_without_a_warning(tmp_path):
    snan = struct.pack("<I", 0x7FA00000)  # float32 NaN whose cast to float64 raises "invalid"
    data = snan * 4 + struct.pack("<f", 0.5) * 4 + struct.pack("<f", float("inf"))
    fmt = struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32)
    path = tmp_path / "nan.wav"
    path.write_bytes(
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples = read_wav(path)
    assert samples.tolist() == [0] * 4 + [16384] * 4 + [32767]
