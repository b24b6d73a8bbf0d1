"""End to end: a device that plays music, recorded with its loopback channel, through
`recorder run`.

The scenes (scripts/make_echo_audio.py) are stereo WAVs: channel 0 the microphone (a real
person's "Alexa" and a command, the music's echo through a room 5 dB above them), channel 1 the
reference; or the device itself playing a real "Alexa" with nobody in the room.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
from conftest import AUDIO, recordings, run_recorder
from harness import mic_daemon
from virtual_mic import VirtualMic

RATE = 16000
ECHO = AUDIO / "echo"
MARKS = json.loads((ECHO / "echo.json").read_text())
REFERENCE = "[audio]\nreference_channel = 1\n"


def channels(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def run_scene(scene: str, tmp: Path, config: str, *args: str, **kw):
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{scene}.toml"
    path.write_text(config + '[wake]\nmodels = ["alexa"]\n')
    rec, state = tmp / "rec", tmp / "state"
    proc = run_recorder(
        "run",
        "--config",
        str(path),
        "--source",
        f"file:{ECHO / scene}.wav" if not args else args[0],
        "--recordings",
        str(rec),
        "--state-dir",
        str(state),
        **kw,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return recordings(rec) if rec.exists() else [], state, proc.stderr.decode()


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-9))


def test_a_request_over_the_devices_music_is_kept_whole_with_its_echo_cancelled(tmp_path):
    marks = MARKS["request_over_music"]
    [(meta, samples)], _, _ = run_scene("request_over_music", tmp_path, REFERENCE)
    start = meta["source_offset_s"]
    end = start + len(samples) / RATE
    assert marks["wake"][0] <= start <= marks["command"][0]
    assert marks["command"][1] <= end <= marks["command"][1] + 3.0  # whole, not overlong
    assert meta["end_reason"] == "silence"
    assert (meta["channel"], meta["reference_channel"], meta["echo_cancelled"]) == (0, 1, True)
    # the saved audio is the cancelled microphone: its music 10 dB down or more, and no trace
    # of the reference channel
    mic = channels(ECHO / "request_over_music.wav")[:, 0]
    at = round(start * RATE)
    kept = mic[at : at + len(samples)]
    tail = slice(len(samples) - RATE // 2, len(samples))  # after the command: music alone
    assert db(kept[tail]) - db(samples[tail]) > 10


def test_what_the_canceller_leaves_of_the_music_does_not_hold_the_request_open(tmp_path):
    """Music whose drums the canceller leaves enough of to sound like speech to webrtcvad (the
    request ran 4.6 s past the command before the residual echo's estimate): the request ends
    within 3 s of the command, whole."""
    marks = MARKS["request_late_in_music"]
    [(meta, samples)], _, _ = run_scene("request_late_in_music", tmp_path, REFERENCE)
    start = meta["source_offset_s"]
    end = start + len(samples) / RATE
    assert marks["wake"][0] <= start <= marks["command"][0]
    assert marks["command"][1] <= end <= marks["command"][1] + 3.0
    assert meta["end_reason"] == "silence"
    assert meta["echo_cancelled"] is True


def test_without_the_reference_the_music_hides_the_request(tmp_path):
    """The same file read as before (its channels averaged): the wake word is lost."""
    recs, _, _ = run_scene("request_over_music", tmp_path, "")
    marks = MARKS["request_over_music"]
    whole = [
        m
        for m, s in recs
        if m["source_offset_s"] <= marks["command"][0]
        and m["source_offset_s"] + len(s) / RATE >= marks["command"][1]
    ]
    assert whole == []


def test_a_wake_word_the_device_plays_records_nothing_and_the_journal_says_why(tmp_path):
    played = MARKS["played_wake_word"]["played_wake"]
    recs, state, err = run_scene("played_wake_word", tmp_path, REFERENCE)
    assert recs == []
    entries = [json.loads(line) for line in (state / "audit.log").read_text().splitlines()]
    ignored = [e for e in entries if e["event"] == "wake_ignored"]
    assert len(ignored) == 1, entries
    assert ignored[0]["model"] == "alexa" and ignored[0]["reason"] == "playback"
    assert played[0] <= ignored[0]["offset_s"] <= played[1] + 1.0
    assert not any(e["event"] in ("wake", "saved") for e in entries)
    assert "wake word alexa ignored" in err and "the playback explains it" in err


def test_without_the_reference_the_device_wakes_itself(tmp_path):
    recs, _, _ = run_scene("played_wake_word", tmp_path, "")
    assert len(recs) == 1


def test_stdin_with_interleaved_channels_gives_the_files_recording(tmp_path):
    data = channels(ECHO / "request_over_music.wav")
    [(a, sa)], _, _ = run_scene("request_over_music", tmp_path / "file", REFERENCE)
    config = REFERENCE + "device_channels = 2\n"
    [(b, sb)], _, _ = run_scene(
        "request_over_music", tmp_path / "stdin", config, "stdin", input=data.tobytes()
    )
    assert np.array_equal(sa, sb) and a["source_offset_s"] == b["source_offset_s"]
    assert b["echo_cancelled"] is True


def test_a_missing_aec_extra_and_a_reference_on_the_microphone_are_one_line_errors(tmp_path):
    shadow = tmp_path / "shadow" / "pywebrtc_audio"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not installed')\n")
    cases = [
        (REFERENCE + 'echo_canceller = "webrtc"\n', "pip install 'wakeword-recorder[aec]'"),
        ("[audio]\nreference_channel = 0\n", "the microphone's channel must be another one"),
    ]
    for config, message in cases:
        path = tmp_path / "bad.toml"
        path.write_text(config)
        proc = run_recorder(
            "run",
            "--config",
            str(path),
            "--source",
            f"file:{ECHO / 'played_wake_word.wav'}",
            "--recordings",
            str(tmp_path / "rec"),
            env={"PYTHONPATH": str(shadow.parent)},
        )
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, lines
        assert message in lines[0]
        assert not (tmp_path / "rec").exists()


def test_the_microphone_path_reads_the_loopback_channel_in_real_time(tmp_path):
    """The real sounddevice/PortAudio path: a two-channel virtual microphone (the microphone
    and the loopback, as a ReSpeaker array delivers them) fed the scene in real time."""
    marks = MARKS["request_over_music"]
    scene = channels(ECHO / "request_over_music.wav")
    config = "device_channels = 2\nchannel = 0\nreference_channel = 1\n"
    with (
        VirtualMic(tmp_path, channels=2) as mic,
        mic_daemon(mic, tmp_path, audio_config=config, model="alexa") as d,
    ):
        d.wait_state("listening")
        start = mic.play(scene)
        d.wait_for("a saved request", lambda: any(d.rec.glob("*.json")), len(scene) / RATE + 10)
        d.terminate()
        assert d.returncode == 0, d.log()
    [(meta, samples)] = recordings(d.rec)
    assert (meta["device_channels"], meta["channel"], meta["reference_channel"]) == (2, 0, 1)
    assert meta["echo_cancelled"] is True and meta["end_reason"] == "silence"
    begin = meta["source_offset_s"] - start / RATE  # in the scene's time
    end = begin + len(samples) / RATE
    assert marks["wake"][0] <= begin <= marks["command"][0]
    assert marks["command"][1] <= end <= marks["command"][1] + 3.0
