"""Microphones that do not deliver 16 kHz mono: 48 kHz stereo through the real ALSA path.

The virtual microphone serves 48 kHz stereo with a wake-word request on one channel and other
speech on the other; the daemon opens it at that format, keeps the configured channel and
resamples it to 16 kHz. The reference is the same request given at 16 kHz at the same place in
the stream, scored by the same engine.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import AUDIO, RATE, SCENES, read_pcm, recordings, run_recorder
from harness import mic_daemon
from virtual_mic import VirtualMic

from recorder.audio import resample
from recorder.engines import OpenWakeWordEngine
from recorder.models import resolve_wake_model
from recorder.sources.mic import FormatError, MicFormat, OpenFormat, _negotiate

MIC_RATE = 48000
UP = MIC_RATE // RATE
SCORE_TOLERANCE = 0.05


def upsample(samples: np.ndarray) -> np.ndarray:
    """16 kHz int16 to 48 kHz int16 (band-limited), as a 48 kHz microphone would hear it."""
    up = resample(samples.astype(np.float64) / 32768.0, RATE, MIC_RATE)
    return np.clip(np.round(up * 32768.0), -32768, 32767).astype(np.int16)


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    n = max(len(left), len(right))
    out = np.zeros((n, 2), dtype=np.int16)
    out[: len(left), 0], out[: len(right), 1] = left, right
    return out


def engine_scores(manifest, samples: np.ndarray) -> list[float]:
    """hey_jarvis's score on every 80 ms frame of a 16 kHz stream (ungated engine)."""
    engine = OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [resolve_wake_model(manifest, "hey_jarvis")],
    )
    return [
        engine.process(samples[i : i + 1280])["hey_jarvis"]
        for i in range(0, len(samples) - 1279, 1280)
    ]


def best_lag(saved: np.ndarray, reference: np.ndarray, around: int, span: int = 64) -> tuple:
    """(lag, correlation) of `saved` against reference[around + lag:], best within +-span."""
    best = (0, -1.0)
    x = saved.astype(np.float64)
    for lag in range(-span, span + 1):
        start = around + lag
        if start < 0 or start + len(x) > len(reference):
            continue
        y = reference[start : start + len(x)].astype(np.float64)
        c = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9))
        if c > best[1]:
            best = (lag, c)
    return best


@pytest.mark.parametrize("speech_channel", [1, 0])
def test_48k_stereo_keeps_the_configured_channel_and_scores_like_16k(
    tmp_path, manifest, speech_channel
):
    request = read_pcm(AUDIO / "jarvis_pause_command.wav")
    other = read_pcm(AUDIO / "command_without_wake.wav")  # speech, no wake word
    times = SCENES["jarvis_pause_command"]
    pair = (upsample(other), upsample(request))
    played = stereo(*(pair if speech_channel == 1 else pair[::-1]))
    config = f"device_rate = {MIC_RATE}\ndevice_channels = 2\nchannel = {speech_channel}\n"
    with (
        VirtualMic(tmp_path, rate=MIC_RATE, channels=2) as mic,
        mic_daemon(mic, tmp_path, audio_config=config) as d,
    ):
        d.wait_state("listening")
        start = mic.play(played)
        d.wait_for(
            "a saved request", lambda: any(d.rec.glob("*.json")), len(played) / MIC_RATE + 10
        )
        d.terminate()
        assert d.returncode == 0, d.log()
        log = d.log()
    saved = recordings(d.rec)
    assert len(saved) == 1, log
    meta, samples = saved[0]
    assert (meta["device_rate"], meta["device_channels"], meta["channel"]) == (
        MIC_RATE,
        2,
        speech_channel,
    )
    assert (meta["sample_rate"], meta["channels"]) == (RATE, 1)
    assert meta["end_reason"] == "silence", meta
    assert "opened at 48000 Hz 2 channels" in log, log

    # The 16 kHz stream the daemon heard starts with the fed stream (start is a multiple of 3).
    assert start % UP == 0
    offset16 = start // UP
    stream16 = np.concatenate(
        [np.zeros(offset16, dtype=np.int16), request, np.zeros(RATE * 2, dtype=np.int16)]
    )
    other16 = np.concatenate(
        [np.zeros(offset16, dtype=np.int16), other, np.zeros(RATE * 2, dtype=np.int16)]
    )
    at = round(meta["source_offset_s"] * RATE)
    lag, corr = best_lag(samples, stream16, at)
    assert corr > 0.98, (lag, corr)  # the request's channel, resampled cleanly
    assert abs(lag) <= 32, lag  # the resampler's delay: a few samples
    assert best_lag(samples, other16, at)[1] < 0.3  # not the other channel
    # Complete: from inside the wake phrase to past the end of the command.
    first_s = (at + lag - offset16) / RATE
    last_s = first_s + len(samples) / RATE
    assert times["wake"][0] <= first_s < times["wake"][1], first_s
    assert last_s >= times["command"][1], (last_s, times["command"])

    # The wake-word score the daemon detected with equals the 16 kHz reference's at that frame.
    reference = np.concatenate([np.zeros(max(0, -lag), dtype=np.int16), stream16[max(0, lag) :]])
    scores = engine_scores(manifest, reference)
    frame = round(meta["wake_offset_s"] / 0.08) - 1
    print(
        f"channel {speech_channel}: correlation {corr:.5f} at lag {lag}; score "
        f"{meta['score']} vs {scores[frame]:.4f} at 16 kHz"
    )
    assert abs(meta["score"] - scores[frame]) <= SCORE_TOLERANCE, (meta["score"], scores[frame])


def test_devices_shows_rates_channels_and_the_config_line(tmp_path):
    with VirtualMic(tmp_path) as mic:
        text = run_recorder("devices", env=mic.env, timeout=60)
        as_json = run_recorder("devices", "--json", env=mic.env, timeout=60)
    assert text.returncode == 0, text.stderr.decode()
    out = text.stdout.decode()
    assert "rates (Hz): " in out and "16000" in out and "48000" in out, out
    assert '[audio] source = "mic:virtualmic"' in out, out
    device = {d["name"]: d for d in json.loads(as_json.stdout)}["virtualmic"]
    assert 16000 in device["rates"] and 48000 in device["rates"]
    assert 1 in device["channel_counts"] and 2 in device["channel_counts"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("device_rate = 0", "[audio] device_rate: must be at least 1000"),
        ('channel = "left"', '[audio] channel: must be a channel number from 0 to 63 or "mix"'),
        (
            "device_channels = 2\nchannel = 7",
            "[audio] channel = 7, but it is opened with 2 channel",
        ),
        ("device_channels = 500", "[audio] device_channels: must be at least 1 and at most 64"),
    ],
)
def test_bad_formats_are_one_line_exit_2_errors(tmp_path, config, message):
    with VirtualMic(tmp_path) as mic:
        (tmp_path / "bad.toml").write_text(f"[audio]\n{config}\n")
        proc = run_recorder(
            "run",
            "--config",
            str(tmp_path / "bad.toml"),
            "--source",
            "mic:virtualmic",
            "--recordings",
            str(tmp_path / "rec"),
            env=mic.env,
            timeout=60,
        )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recorder: error: "), err
    assert message in lines[0], err
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir())


class _StereoOnly48k:
    """The device edge of sounddevice for a ReSpeaker-like hw device: 48 kHz, 2 channels only
    (a real one cannot be served by ALSA's file plugin, which accepts any format)."""

    def check_input_settings(self, device, samplerate, channels, dtype):
        if (samplerate, channels) != (48000, 2):
            raise ValueError("Invalid sample rate / channel count")


HW = {"name": "seeed-2mic-voicecard", "max_input_channels": 2, "default_samplerate": 48000.0}


@pytest.mark.parametrize(
    ("want", "expected"),
    [
        (MicFormat(), OpenFormat(48000, 2, 0)),  # 16 kHz mono refused: default rate, all channels
        (MicFormat(channel="mix"), OpenFormat(48000, 2, "mix")),
        (MicFormat(rate=48000, channels=2, channel=1), OpenFormat(48000, 2, 1)),
    ],
)
def test_a_device_refusing_16k_mono_is_opened_at_a_format_it_accepts(want, expected):
    assert _negotiate(_StereoOnly48k(), 3, HW, want) == expected


@pytest.mark.parametrize(
    ("want", "message"),
    [
        (MicFormat(channels=4), "device_channels = 4, but it has 2 input channel(s)"),
        (MicFormat(channel=2), "channel = 2, but it is opened with 2 channel(s) (0 to 1)"),
    ],
)
def test_formats_that_cannot_fit_the_device_are_refused(want, message):
    with pytest.raises(FormatError, match=re.escape(message)):
        _negotiate(_StereoOnly48k(), 3, HW, want)
