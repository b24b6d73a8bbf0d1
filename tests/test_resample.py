"""The microphone's reframer: channel selection and streaming resampling to 16 kHz.

Real recordings (openWakeWord's own test clips and the scenes), the real soxr resampler and
the real wake-word models; device blocks of the sizes PortAudio delivers, and odd ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AUDIO, RATE, oww_fixture, read_pcm

from recorder.audio import read_wav, resample
from recorder.engines import OpenWakeWordEngine
from recorder.models import resolve_wake_model
from recorder.sources.mic import OpenFormat, Reframer

SCORE_TOLERANCE = 0.05


def at_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """16 kHz int16 at another rate (band-limited), int16."""
    x = resample(samples.astype(np.float64) / 32768.0, RATE, rate)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def reframe(fmt: OpenFormat, device: np.ndarray, block: int) -> np.ndarray:
    r = Reframer(fmt)
    frames = [f for i in range(0, len(device), block) for f in r.push(device[i : i + block])]
    assert [f.index for f in frames] == list(range(len(frames)))
    assert all(len(f.samples) == 1280 and f.samples.dtype == np.int16 for f in frames)
    return np.concatenate([f.samples for f in frames])


def scores(manifest, name: str, samples: np.ndarray) -> np.ndarray:
    engine = OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [resolve_wake_model(manifest, name)],
    )
    return np.array(
        [engine.process(samples[i : i + 1280])[name] for i in range(0, len(samples) - 1279, 1280)]
    )


def test_16k_with_one_kept_channel_is_bit_exact():
    speech = read_pcm(AUDIO / "two_requests.wav")
    noise = np.random.default_rng(1).integers(-3000, 3000, len(speech)).astype(np.int16)
    device = np.column_stack([noise, speech, noise])
    out = reframe(OpenFormat(RATE, 3, 1), device, 1280)
    n = len(speech) // 1280 * 1280
    assert np.array_equal(out, speech[:n])


def test_mix_averages_the_channels():
    speech = read_pcm(AUDIO / "two_requests.wav")
    other = read_pcm(AUDIO / "alexa_command.wav")[: len(speech)]
    speech = speech[: len(other)]
    out = reframe(OpenFormat(RATE, 2, "mix"), np.column_stack([speech, other]), 1000)
    expected = np.round((speech.astype(np.float64) + other) / 2).astype(np.int16)
    assert np.abs(out.astype(int) - expected[: len(out)]).max() <= 1


@pytest.mark.parametrize(
    ("rate", "block"), [(48000, 3840), (44100, 3528), (48000, 1001), (22050, 777)]
)
def test_streamed_resampling_matches_whole_file_resampling(rate, block):
    """No clicks at block boundaries: streamed block by block equals resampled in one go."""
    # Half scale: the clip peaks near full scale, and the 48 kHz copy would clip.
    speech = read_wav(oww_fixture("hey_mycroft_test.wav")) // 2
    device = at_rate(speech, rate)
    out = reframe(OpenFormat(rate, 1, 0), device, block).astype(np.float64)
    whole = reframe(OpenFormat(rate, 1, 0), device, len(device)).astype(np.float64)
    n = min(len(out), len(whole))
    assert n >= len(speech) - 2 * 1280
    assert np.abs(out[:n] - whole[:n]).max() <= 1  # rounding only
    # And it is the original speech back below 6 kHz (both filters pass it unchanged;
    # above it the two anti-aliasing filters roll off): the error is far below the speech.
    ref, got = np.fft.rfft(speech[:n].astype(np.float64)), np.fft.rfft(out[:n])
    band = np.fft.rfftfreq(n, 1 / RATE) < 6000
    snr_db = 10 * np.log10(np.sum(np.abs(ref[band]) ** 2) / np.sum(np.abs(got - ref)[band] ** 2))
    assert snr_db > 40, snr_db


@pytest.mark.parametrize(
    ("clip", "model"),
    [
        ("alexa_test.wav", "alexa"),
        ("hey_mycroft_test.wav", "hey_mycroft"),
    ],
)
@pytest.mark.parametrize("rate", [48000, 44100])
def test_wake_word_scores_after_resampling_stay_within_tolerance(manifest, clip, model, rate):
    speech = read_wav(oww_fixture(clip))
    hum = (3000 * np.sin(2 * np.pi * 50 * np.arange(len(speech) * 3) / 48000)).astype(np.int16)
    device = np.column_stack([hum[: len(at_rate(speech, rate))], at_rate(speech, rate)])
    heard = reframe(OpenFormat(rate, 2, 1), device, round(rate * 0.08))
    ref = scores(manifest, model, speech[: len(heard)])
    got = scores(manifest, model, heard)
    assert ref.max() > 0.5  # the clip does wake its model
    diff = np.abs(got - ref)
    assert diff.max() <= SCORE_TOLERANCE, (diff.max(), int(diff.argmax()))
