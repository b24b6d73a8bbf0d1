"""End to end: the real `recorder run` on real and synthesized audio with the real models."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, SCENES, oww_fixture, read_pcm, recordings, run_recorder, write_pcm
from harness import Daemon, check_slice, check_wake_then_command

RATE = 16000
SIDE_KEYS = {
    "id",
    "audio_file",
    "wake_word",
    "score",
    "started_at",
    "duration_s",
    "sample_rate",
    "end_reason",
    "source_offset_s",
    "wake_offset_s",
}


def run_file(path: Path, rec: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = run_recorder(
        "run",
        "--source",
        f"file:{path}",
        "--recordings",
        str(rec),
        "--model",
        "hey_jarvis",
        "--model",
        "alexa",
        *extra,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


@pytest.mark.parametrize(
    "scene",
    [
        "jarvis_pause_command",
        "jarvis_runon_command",
        "alexa_command",
        "speech_then_wake",
        "jarvis_long_command",
    ],
)
def test_request_after_wake_word_is_saved_whole_and_nothing_before(tmp_path, scene):
    marks = SCENES[scene]
    run_file(AUDIO / f"{scene}.wav", tmp_path)
    recs = recordings(tmp_path)
    assert len(recs) == 1
    meta, samples = recs[0]
    assert set(meta) >= SIDE_KEYS
    start_s, end_s = check_slice(meta, samples, read_pcm(AUDIO / f"{scene}.wav"))
    wake_start, wake_end = marks["wake"]
    assert start_s >= wake_start  # never a sample from before the wake phrase
    assert start_s <= marks["command"][0]  # the command's first syllable is kept
    assert end_s >= marks["command"][1]  # ... and its last
    assert meta["end_reason"] == "silence"
    assert wake_end <= meta["wake_offset_s"] <= wake_end + 0.7
    assert meta["sample_rate"] == RATE and meta["wake_word"] in ("hey_jarvis", "alexa")
    assert meta["audio_file"] == f"{meta['id']}.wav"
    assert datetime.fromisoformat(meta["started_at"]).utcoffset().total_seconds() == 0


def test_two_requests_in_one_stream(tmp_path):
    source = read_pcm(AUDIO / "two_requests.wav")
    run_file(AUDIO / "two_requests.wav", tmp_path)
    recs = recordings(tmp_path)
    assert len(recs) == 2
    marks = SCENES["two_requests"]
    spans = [check_slice(m, s, source) for m, s in recs]
    assert marks["wake"][0] <= spans[0][0] and spans[0][1] >= marks["command"][1]
    assert spans[0][1] <= marks["wake2"][0]  # the first ends before the second wake word
    assert marks["wake2"][0] <= spans[1][0] <= marks["command2"][0]
    assert spans[1][1] >= marks["command2"][1]
    names = sorted(p.name for p in tmp_path.glob("*.wav"))
    assert names == [f"{m['id']}.wav" for m, _ in recs]  # names sort by time
    assert recs[0][0]["started_at"] < recs[1][0]["started_at"]


@pytest.mark.parametrize(
    "path",
    [
        AUDIO / "jarvis_bare.wav",
        AUDIO / "command_without_wake.wav",
        oww_fixture("hey_jane.wav"),
        oww_fixture("negative_reference.wav"),
        oww_fixture("turn_on_the_office_lights_test_clip.wav"),
    ],
    ids=lambda p: p.stem,
)
def test_nothing_is_saved_without_a_request_after_a_wake_word(tmp_path, path):
    proc = run_file(path, tmp_path)
    assert list(tmp_path.iterdir()) == []
    if path.stem == "jarvis_bare":
        assert b"wake word hey_jarvis detected" in proc.stderr
        assert b"no_speech" in proc.stderr


@pytest.mark.parametrize(
    "clip, model", [("alexa_test.wav", "alexa"), ("hey_mycroft_test.wav", "hey_mycroft")]
)
def test_real_human_wake_words_followed_by_a_command(tmp_path, clip, model):
    meta = check_wake_then_command(tmp_path, oww_fixture(clip), "jarvis_pause_command", model)
    assert meta["wake_word"] == model and meta["score"] >= 0.5


def test_stream_ending_mid_request_is_saved_with_reason_eof(tmp_path):
    source = read_pcm(AUDIO / "jarvis_long_command.wav")
    cut = source[: int(6.0 * RATE) + 123]  # ends mid-sentence, not on a frame boundary
    path = write_pcm(tmp_path / "cut.wav", cut)
    run_file(path, tmp_path / "rec")
    [(meta, samples)] = recordings(tmp_path / "rec")
    assert meta["end_reason"] == "eof"
    start_s, end_s = check_slice(meta, samples, cut)
    assert end_s == pytest.approx(len(cut) / RATE)  # every last sample, no padding


def test_max_length(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[vad]\nmax_length_s = 2.0\n")
    run_file(AUDIO / "jarvis_long_command.wav", tmp_path / "rec", "--config", str(config))
    [(meta, samples)] = recordings(tmp_path / "rec")
    assert meta["end_reason"] == "max_length"
    assert len(samples) == 25 * 1280  # 2.0 s in 80 ms frames


def test_stdin_source_gives_the_same_recording_as_the_file(tmp_path):
    path = AUDIO / "jarvis_pause_command.wav"
    run_file(path, tmp_path / "file")
    proc = run_recorder(
        "run",
        "--source",
        "stdin",
        "--recordings",
        str(tmp_path / "stdin"),
        "--model",
        "hey_jarvis",
        "--model",
        "alexa",
        input=read_pcm(path).tobytes(),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    [(a, sa)], [(b, sb)] = recordings(tmp_path / "file"), recordings(tmp_path / "stdin")
    assert np.array_equal(sa, sb)
    assert a["source_offset_s"] == b["source_offset_s"] and a["audio_sha256"] == b["audio_sha256"]


def test_other_formats_are_converted_not_misread(tmp_path):
    x = read_pcm(AUDIO / "jarvis_pause_command.wav").astype(np.float64)
    up = np.interp(np.arange(len(x) * 3) / 3, np.arange(len(x)), x)  # 48 kHz
    stereo = np.round(np.stack([up, up], axis=1)).astype("<i2").reshape(-1)
    path = write_pcm(tmp_path / "48k.wav", stereo, 48000, 2)
    run_file(path, tmp_path / "rec")
    [(meta, samples)] = recordings(tmp_path / "rec")
    c0, c1 = SCENES["jarvis_pause_command"]["command"]
    assert meta["source_offset_s"] <= c0 and meta["source_offset_s"] + meta["duration_s"] >= c1


def test_list_shows_the_recordings(tmp_path):
    run_file(AUDIO / "two_requests.wav", tmp_path)
    proc = run_recorder("list", "--recordings", str(tmp_path), "--json")
    listed = json.loads(proc.stdout)
    assert [m["id"] for m in listed] == [m["id"] for m, _ in recordings(tmp_path)]
    text = run_recorder("list", "--recordings", str(tmp_path)).stdout.decode().splitlines()
    header, *rows, totals = text
    assert header.split()[:2] == ["ID", "TIME"] and totals.startswith("2 recordings, ")
    assert len(rows) == 2 and all("hey_jarvis" in line for line in rows)
    assert [line.split()[0] for line in rows] == [m["id"] for m in listed]


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr.decode()
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recorder: error:"), lines
    return lines[0]


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    clip = str(AUDIO / "jarvis_pause_command.wav")
    (tmp / "broken.toml").write_text("[wake\nthreshold = 0.5\n")
    (tmp / "unknown.toml").write_text("[vad]\nsilence = 0.8\n")
    (tmp / "range.toml").write_text("[wake]\nthreshold = 1.5\n")
    (tmp / "type.toml").write_text('[vad]\nmax_length_s = "long"\n')
    (tmp / "notwav.wav").write_text("hello")
    (tmp / "fake.onnx").write_bytes(b"\x08\x01junk")
    (tmp / "file").write_text("")
    f = f"file:{clip}"
    return [
        (["--config", str(tmp / "broken.toml"), "--source", f], "broken.toml"),
        (["--config", str(tmp / "unknown.toml"), "--source", f], "silence"),
        (["--config", str(tmp / "range.toml"), "--source", f], "threshold"),
        (["--config", str(tmp / "type.toml"), "--source", f], "max_length_s"),
        (["--config", str(tmp / "missing.toml"), "--source", f], "missing.toml"),
        (["--threshold", "1.5", "--source", f], "threshold"),
        (["--threshold", "abc", "--source", f], "threshold"),
        (["--model", "hey_nobody", "--source", f], "hey_nobody"),
        (["--model", str(tmp / "fake.onnx"), "--source", f], "fake.onnx"),
        (["--model", str(tmp / "absent.onnx"), "--source", f], "absent.onnx"),
        (["--source", f"file:{tmp / 'notwav.wav'}"], "notwav.wav"),
        (["--source", f"file:{tmp / 'nothere.wav'}"], "nothere.wav"),
        (["--source", "tape:1"], "tape:1"),
        (["--source", f, "--recordings", str(tmp / "file")], str(tmp / "file")),
        (["--source", f, "--bogus"], "--bogus"),
    ]


def test_bad_input_exits_2_with_one_line_naming_the_culprit(tmp_path):
    for args, culprit in _bad_inputs(tmp_path):
        rec = tmp_path / "rec"
        args = (
            ["run", *args] if "--recordings" in args else ["run", "--recordings", str(rec), *args]
        )
        line = _one_error_line(run_recorder(*args))
        assert culprit in line, (args, line)
        assert not any(rec.glob("*.wav")), args


def test_missing_or_corrupt_model_files(tmp_path, manifest):
    models = tmp_path / "models"
    models.mkdir()
    for p in manifest.directory.iterdir():
        (models / p.name).write_bytes(p.read_bytes())
    env = {"RECORDER_MODELS_DIR": str(models)}
    args = [
        "run",
        "--source",
        f"file:{AUDIO / 'jarvis_bare.wav'}",
        "--recordings",
        str(tmp_path / "rec"),
        "--model",
        "hey_jarvis",
    ]
    (models / "hey_jarvis_v0.1.onnx").unlink()
    line = _one_error_line(run_recorder(*args, env=env))
    assert "hey_jarvis" in line and "missing" in line and "models fetch" in line
    (models / "hey_jarvis_v0.1.onnx").write_bytes(b"corrupted")
    line = _one_error_line(run_recorder(*args, env=env))
    assert "hash mismatch" in line
    proc = run_recorder("models", "list", env=env)
    assert re.search(r"hey_jarvis .*CC-BY-NC-SA-4.0 +hash mismatch", proc.stdout.decode())
    assert re.search(r"alexa .*CC-BY-NC-SA-4.0 +ok", proc.stdout.decode())


def _hook(tmp_path: Path, body: str) -> Path:
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)
    return hook


def test_indicator_command_sees_every_state_before_anything_is_saved(tmp_path):
    rec = tmp_path / "rec"
    log = tmp_path / "states.log"
    hook = _hook(
        tmp_path,
        f'echo "$RECORDER_PREVIOUS_STATE $RECORDER_STATE $1 $(ls {rec} | grep -c wav)" >> {log}\n',
    )
    run_file(AUDIO / "jarvis_pause_command.wav", rec, "--indicator-command", str(hook))
    assert log.read_text().splitlines() == [
        "off listening listening 0",
        "listening recording recording 0",  # shown before any audio was written
        "recording listening listening 1",
        "listening off off 1",
    ]


@pytest.mark.parametrize(
    "body, why",
    [
        ('[ "$1" = recording ] && exit 3\nexit 0\n', "exited 3"),
        ('[ "$1" = recording ] && sleep 5\nexit 0\n', "timed out"),
    ],
)
def test_failed_indicator_discards_the_request(tmp_path, body, why):
    rec = tmp_path / "rec"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[indicator]\ncommand = "{_hook(tmp_path, body)}"\ntimeout_s = 0.5\n'
        f'state_file = "{tmp_path / "state"}"\n'
    )
    proc = run_file(AUDIO / "jarvis_pause_command.wav", rec, "--config", str(config))
    assert list(rec.iterdir()) == []
    err = proc.stderr.decode()
    assert why in err and "discarding the request" in err
    assert "state recording -> error" in err and "state error -> listening" in err


def test_unwritable_state_file_fails_closed_unless_not_required(tmp_path):
    rec = tmp_path / "rec"
    config = tmp_path / "c.toml"
    base = f'[indicator]\nstate_file = "{tmp_path / "no" / "such" / "dir" / "state"}"\n'
    config.write_text(base)
    run_file(AUDIO / "jarvis_pause_command.wav", rec, "--config", str(config))
    assert list(rec.iterdir()) == []
    config.write_text(base + "required = false\n")
    run_file(AUDIO / "jarvis_pause_command.wav", rec, "--config", str(config))
    assert len(recordings(rec)) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_request_in_progress_and_exits_quickly(tmp_path, sig):
    scene = "jarvis_long_command"
    state = tmp_path / "state.txt"
    config = tmp_path / "c.toml"
    config.write_text(f'[indicator]\nstate_file = "{state}"\n')
    source = f"file:{AUDIO / f'{scene}.wav'}"
    command_s = SCENES[scene]["command"]
    with Daemon(
        tmp_path, "--config", str(config), "--realtime", source=source, state_file=state
    ) as d:
        d.wait_state("recording", 15)
        d.wait_audio(command_s[0] + 1.5)  # 1.5 s into the command
        took = d.terminate(sig)
        assert took < 1.0, d.log()
        assert d.returncode == 0, d.log()
    [(meta, samples)] = recordings(d.rec)
    assert meta["end_reason"] == "shutdown"
    _, end_s = check_slice(meta, samples, read_pcm(AUDIO / f"{scene}.wav"))
    assert end_s < command_s[1]  # cut by the signal
    assert state.read_text() == "off\n"
