"""The real microphone path (sounddevice -> PortAudio -> ALSA) of `recorder run`, end to end.

Audio reaches the daemon in real time through an ALSA virtual capture device (see
virtual_mic.py), so these tests exercise device lookup, the PortAudio stream and its callback
thread, signal handling while capturing, and what is saved from a live stream.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import AUDIO, SCENES, read_pcm, recordings, run_recorder
from harness import locate, mic_daemon
from virtual_mic import VirtualMic

RATE = 16000
EXIT_WITHIN_S = 2.0  # SIGTERM to exit


def scene(name: str) -> tuple[np.ndarray, dict]:
    return read_pcm(AUDIO / f"{name}.wav"), SCENES[name]


def test_devices_lists_the_virtual_mic(tmp_path):
    with VirtualMic(tmp_path) as mic:
        text = run_recorder("devices", env=mic.env, timeout=30)
        as_json = run_recorder("devices", "--json", env=mic.env, timeout=30)
    assert text.returncode == 0, text.stderr.decode()
    assert any("  virtualmic  (" in line for line in text.stdout.decode().splitlines()), (
        text.stdout.decode()
    )
    assert as_json.returncode == 0, as_json.stderr.decode()
    device = {d["name"]: d for d in json.loads(as_json.stdout)}.get("virtualmic")
    assert device is not None and device["channels"] >= 1, as_json.stdout.decode()


def test_request_through_the_mic_is_saved_bit_exact(tmp_path):
    audio, times = scene("jarvis_pause_command")
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path) as d:
        d.wait_state("listening")
        start = mic.play(audio)
        d.wait_for("a recording", lambda: any(d.rec.glob("*.json")), times["duration_s"] + 10)
        took = d.terminate()
        log = d.log()
        assert d.returncode == 0, log
        assert took < EXIT_WITHIN_S, log
        recs = recordings(d.rec)
        assert len(recs) == 1, log
        ((meta, samples),) = recs
        assert meta["end_reason"] == "silence"
        assert meta["wake_word"] == "hey_jarvis"
        assert meta["source"] == "mic:virtualmic"
        assert meta["sample_rate"] == RATE
        assert "audio lost" not in log, log

        offset = locate(mic, meta, samples)
        first_s = (offset - start) / RATE  # in the scene's own time
        last_s = first_s + len(samples) / RATE
        assert times["wake"][0] <= first_s <= times["command"][0], (first_s, log)
        assert last_s >= times["command"][1], (last_s, log)
        wake_s = meta["wake_offset_s"] - start / RATE
        assert times["wake"][1] <= wake_s <= times["wake"][1] + 1.0, (wake_s, log)


def test_sigterm_while_recording_saves_the_request(tmp_path):
    audio, times = scene("jarvis_long_command")
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path) as d:
        d.wait_state("listening")
        start = mic.play(audio)
        d.wait_state("recording", times["duration_s"])
        # The daemon's stream is the fed one from its start: 1.5 s into the command.
        d.wait_audio(start / RATE + times["command"][0] + 1.5, times["duration_s"])
        fed_at_signal = len(mic.fed)
        took = d.terminate()
        log = d.log()
        assert d.returncode == 0, log
        assert took < EXIT_WITHIN_S, log
        assert d.state() == "off", log
        recs = recordings(d.rec)
        assert len(recs) == 1, log
        ((meta, samples),) = recs
        assert meta["end_reason"] == "shutdown", log

        offset = locate(mic, meta, samples)
        first_s = (offset - start) / RATE
        last_s = first_s + len(samples) / RATE
        assert times["wake"][0] <= first_s <= times["command"][0], (first_s, log)
        # Cut by the signal: what was said up to it is kept, the rest of the command is not.
        assert times["command"][0] + 0.5 < last_s < times["command"][1], (last_s, log)
        lag_s = (fed_at_signal - (offset + len(samples))) / RATE
        assert -0.5 < lag_s < 1.0, (lag_s, log)


def test_no_input_device_is_one_line_exit_2(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    devices = run_recorder("devices", env=env, timeout=30)
    if devices.stdout.decode().strip() != "no audio input devices":
        pytest.skip(f"this machine has audio input devices: {devices.stdout.decode()!r}")
    proc = run_recorder(
        "run", "--model", "hey_jarvis", "--recordings", str(tmp_path / "rec"), env=env, timeout=60
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("recorder: error: no audio input device found"), err
    assert "recorder devices" in lines[0] and "--source file:" in lines[0], err
