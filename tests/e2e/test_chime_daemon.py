"""Chimes: played through PortAudio on an ALSA virtual speaker (ALSA's `file` plugin writes what
is played into a file), while the daemon goes on processing and keeps the request whole."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, SCENES, read_pcm, recordings, run_recorder, tone, write_pcm
from harness import Daemon
from virtual_mic import VirtualMic

RATE = 16000

SCENE = "jarvis_pause_command"


def speaker_pcm(name: str, path: Path, numbered: bool = True) -> str:
    """An ALSA output device that writes what is played to `path`, as fast as it is given;
    `numbered`: a new file per stream (path, path.0001, ...)."""
    return (
        f'pcm.{name} {{\n    type file\n    slave.pcm "null"\n    file "{path}"\n'
        f'    format "raw"\n    truncate {"false" if numbered else "true"}\n}}\n'
    )


def chime_config(tmp_path: Path, device: str = "virtualspk", awake: float = 0.25) -> Path:
    """Chimes from files in other formats than the recorder's: read_wav converts them."""
    write_pcm(tmp_path / "awake.wav", tone(880, awake))
    write_pcm(tmp_path / "done.wav", tone(660, 0.2, 44100, 2), 44100, 2)
    config = tmp_path / "c.toml"
    config.write_text(
        '[indicator]\nawake_sound = "awake.wav"\ndone_sound = "done.wav"\n'
        f'chime_device = "{device}"\n'
    )
    return config


def played(out: Path, log: str) -> tuple[int, list[np.ndarray]]:
    """The device's rate (from the daemon's log) and each stream's samples (mono)."""
    m = re.search(r"chimes \(.*\) on '.*' at (\d+) Hz, (\d) channel", log)
    assert m, log
    rate, channels = int(m[1]), int(m[2])
    streams = []
    for path in sorted(out.parent.glob(out.name + "*")):
        data = np.fromfile(path, dtype="<i2")
        if len(data):  # the device check at start opens a stream that plays nothing
            frames = data.reshape(-1, channels)
            assert all(np.array_equal(frames[:, 0], frames[:, c]) for c in range(channels))
            streams.append(frames[:, 0])
    return rate, streams


def check_chime(
    out: np.ndarray, rate: int, chime: np.ndarray, freq: float, chime_rate: int = RATE
) -> None:
    """The same sound (mono `chime` at `chime_rate`) at the device's rate: duration, energy
    and pitch."""
    loud = np.flatnonzero(np.abs(out) > 200)
    span_s = (loud[-1] - loud[0] + 1) / rate
    chime = chime.astype(np.float64)
    chime_span = np.flatnonzero(np.abs(chime) > 200)
    assert span_s == pytest.approx((chime_span[-1] - chime_span[0] + 1) / chime_rate, abs=0.003)
    energy = np.sum(out.astype(np.float64) ** 2) / rate
    assert energy == pytest.approx(np.sum(chime**2) / chime_rate, rel=0.03)
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    assert np.fft.rfftfreq(len(out), 1 / rate)[np.argmax(spectrum)] == pytest.approx(freq, abs=8)


def check_request(meta: dict, samples: np.ndarray, source: np.ndarray, marks: dict) -> None:
    start = round(meta["source_offset_s"] * RATE)
    assert np.array_equal(samples, source[start : start + len(samples)])
    assert start / RATE <= marks["command"][0]  # the command is kept whole
    assert (start + len(samples)) / RATE >= marks["command"][1]
    assert meta["end_reason"] == "silence"


def test_chimes_play_while_the_request_is_kept_whole(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(speaker_pcm("virtualspk", tmp_path / "out.raw"))
    config = chime_config(tmp_path)
    proc = run_recorder(
        "run",
        "--config",
        str(config),
        "--source",
        f"file:{AUDIO / f'{SCENE}.wav'}",
        "--model",
        "hey_jarvis",
        "--recordings",
        str(tmp_path / "rec"),
        env={"HOME": str(home)},
    )
    log = proc.stderr.decode()
    assert proc.returncode == 0, log
    [(meta, samples)] = recordings(tmp_path / "rec")
    check_request(meta, samples, read_pcm(AUDIO / f"{SCENE}.wav"), SCENES[SCENE])
    assert meta["chime_offset_s"] == meta["wake_offset_s"]  # started by the detecting frame
    assert meta["chime_duration_s"] == 0.25
    rate, (awake, done) = played(tmp_path / "out.raw", log)  # in this order, nothing else
    check_chime(awake, rate, tone(880, 0.25), 880)
    check_chime(done, rate, tone(660, 0.2, 44100), 660, 44100)
    assert "WARNING" not in log


def test_a_hung_output_device_holds_up_nothing(tmp_path):
    """The speaker's file is a pipe nobody reads: the chime thread blocks in its write once
    the pipe is full, for good. The daemon still processes, saves and exits at once."""
    home = tmp_path / "home"
    home.mkdir()
    fifo = tmp_path / "speaker.fifo"
    os.mkfifo(fifo)
    (home / ".asoundrc").write_text(speaker_pcm("stuckspk", fifo, numbered=False))
    config = chime_config(tmp_path, "stuckspk", awake=3.0)  # 3 s: more than a pipe holds
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # opening for writing never blocks
    try:
        t0 = time.monotonic()
        proc = run_recorder(
            "run",
            "--config",
            str(config),
            "--source",
            f"file:{AUDIO / f'{SCENE}.wav'}",
            "--model",
            "hey_jarvis",
            "--recordings",
            str(tmp_path / "rec"),
            env={"HOME": str(home)},
            timeout=30,
        )
        took = time.monotonic() - t0
    finally:
        os.close(fd)
    log = proc.stderr.decode()
    assert proc.returncode == 0, log
    [(meta, samples)] = recordings(tmp_path / "rec")
    check_request(meta, samples, read_pcm(AUDIO / f"{SCENE}.wav"), SCENES[SCENE])
    assert meta["chime_offset_s"] == meta["wake_offset_s"]
    assert "the output device 'stuckspk' takes no audio" in log
    # a daemon held up by the chime would never exit (timeout=30 kills it); the bound leaves
    # room for a loaded machine
    assert took < 20, log


def test_the_microphone_records_through_the_chime(tmp_path):
    """A live microphone and the chimes at once: what is saved is the fed stream, bit-exact,
    command whole, with the chime's place in the same time base."""
    audio, marks = read_pcm(AUDIO / f"{SCENE}.wav"), SCENES[SCENE]
    config = chime_config(tmp_path)
    state_file = tmp_path / "state.txt"
    config.write_text(config.read_text() + f'state_file = "{state_file}"\n')
    with VirtualMic(tmp_path) as mic:
        mic.asoundrc.write_text(
            mic.asoundrc.read_text() + speaker_pcm("virtualspk", tmp_path / "out.raw")
        )
        with Daemon(
            tmp_path,
            "--config",
            str(config),
            source="mic:virtualmic",
            env=mic.env,
            state_file=state_file,
        ) as d:
            assert d.state() == "listening", d.log()
            start = mic.play(audio)
            d.wait_for("a saved request", lambda: any(d.rec.glob("*.json")), len(audio) / RATE + 10)
            d.stop()
    log = d.log()
    [(meta, samples)] = recordings(d.rec)
    offset = round(meta["source_offset_s"] * RATE)
    assert np.array_equal(samples, mic.fed[offset : offset + len(samples)]), log
    check_request({**meta, "source_offset_s": (offset - start) / RATE}, samples, audio, marks)
    assert meta["chime_offset_s"] == meta["wake_offset_s"]
    assert meta["source_offset_s"] < meta["chime_offset_s"] < meta["source_offset_s"] + 1.0
    rate, (awake, done) = played(tmp_path / "out.raw", log)
    check_chime(awake, rate, tone(880, 0.25), 880)


NO_PORTAUDIO = """import sys

class _NoPortAudio:
    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")

sys.meta_path.insert(0, _NoPortAudio())
"""


def test_start_errors_and_no_portaudio_needed_without_chimes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asoundrc").write_text(speaker_pcm("virtualspk", tmp_path / "out.raw"))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_PORTAUDIO)
    clip = f"file:{AUDIO / 'jarvis_bare.wav'}"
    config = chime_config(tmp_path)
    good = config.read_text()
    cases = [
        (
            good.replace("awake.wav", "missing.wav"),
            {},
            f"awake_sound: {tmp_path / 'missing.wav'}: no such file",
        ),
        (good.replace("done.wav", "c.toml"), {}, f"done_sound: {tmp_path / 'c.toml'}: not a WAV"),
        (
            good.replace('"virtualspk"', '"nospeaker"'),
            {},
            "chime_device: No output device matching 'nospeaker'",
        ),
        (good, {"PYTHONPATH": str(site)}, "chimes need the PortAudio library"),
    ]
    for text, env, message in cases:
        config.write_text(text)
        proc = run_recorder(
            "run",
            "--config",
            str(config),
            "--source",
            clip,
            "--recordings",
            str(tmp_path / "rec"),
            env={"HOME": str(home), **env},
        )
        lines = proc.stderr.decode().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, lines
        assert lines[0].startswith("recorder: error: [indicator] ") and message in lines[0]
    config.write_text("[indicator]\n")  # no chime: PortAudio is not needed for a file
    proc = run_recorder(
        "run",
        "--config",
        str(config),
        "--source",
        clip,
        "--recordings",
        str(tmp_path / "rec"),
        env={"PYTHONPATH": str(site)},
    )
    assert proc.returncode == 0, proc.stderr.decode()
