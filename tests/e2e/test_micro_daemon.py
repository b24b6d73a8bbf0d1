"""End to end with microWakeWord: `recorder run` on "Okay Nabu" scenes, from a file and from the
virtual microphone, alone and beside openWakeWord models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import AUDIO, REPO, SCENES, read_pcm, recordings, run_recorder, write_pcm
from test_daemon import check_slice
from test_mic import locate
from virtual_mic import VirtualMic
from virtual_mic import mic_daemon as daemon

pytest.importorskip("pymicro_wakeword", reason="needs recorder[micro]")

RATE = 16000
NABU_CLIPS = REPO / "tests" / "fixtures" / "microwakeword"


def run_file(path, rec, *models: str, extra: tuple[str, ...] = ()):
    flags = [a for m in models for a in ("--model", m)]
    proc = run_recorder("run", "--source", f"file:{path}", "--recordings", str(rec), *flags, *extra)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


@pytest.mark.parametrize("scene", ["nabu_pause_command", "nabu_runon_command", "speech_then_nabu"])
def test_okay_nabu_request_is_saved_whole_and_nothing_before(tmp_path, scene):
    marks = SCENES[scene]
    run_file(AUDIO / f"{scene}.wav", tmp_path, "okay_nabu")
    [(meta, samples)] = recordings(tmp_path)
    start_s, end_s = check_slice(meta, samples, read_pcm(AUDIO / f"{scene}.wav"))
    assert marks["wake"][0] <= start_s <= marks["command"][0]
    assert end_s >= marks["command"][1]
    assert meta["end_reason"] == "silence" and meta["wake_word"] == "okay_nabu"
    assert meta["score"] > 0.85  # above the model's own cutoff
    assert marks["wake"][1] <= meta["wake_offset_s"] <= marks["wake"][1] + 0.7


def test_both_engines_in_one_run_share_the_stream(tmp_path):
    """Hey Jarvis (openWakeWord) and Okay Nabu (microWakeWord) requests in one stream: each is
    saved once, under its own wake word, and the two do not wake each other."""
    jarvis = read_pcm(AUDIO / "two_requests.wav")
    nabu = read_pcm(AUDIO / "nabu_two_requests.wav")
    stream = np.concatenate([jarvis, nabu])
    path = write_pcm(tmp_path / "both.wav", stream)
    run_file(path, tmp_path / "rec", "hey_jarvis", "okay_nabu", "micro:hey_jarvis")
    recs = recordings(tmp_path / "rec")
    words = [m["wake_word"] for m, _ in recs]
    assert words == ["hey_jarvis", "hey_jarvis", "okay_nabu", "okay_nabu"], words
    offset = len(jarvis) / RATE
    spans = [check_slice(m, s, stream) for m, s in recs]
    for (start_s, end_s), (scene, base, wake, command) in zip(
        spans,
        [
            ("two_requests", 0.0, "wake", "command"),
            ("two_requests", 0.0, "wake2", "command2"),
            ("nabu_two_requests", offset, "wake", "command"),
            ("nabu_two_requests", offset, "wake2", "command2"),
        ],
        strict=True,
    ):
        marks = SCENES[scene]
        assert base + marks[wake][0] <= start_s <= base + marks[command][0], (scene, wake)
        assert end_s >= base + marks[command][1], (scene, command)


@pytest.mark.parametrize("clip", ["okay_nabu_1.wav", "okay_nabu_2.wav"])
def test_real_human_okay_nabu_followed_by_a_command(tmp_path, clip):
    wake = read_pcm(NABU_CLIPS / clip)
    scene = read_pcm(AUDIO / "nabu_pause_command.wav")
    c0, c1 = SCENES["nabu_pause_command"]["command"]
    command = scene[int(c0 * RATE) - 800 : int(c1 * RATE) + 800]
    quiet = scene[:RATE]  # the scene's noise bed before its wake word
    stream = np.concatenate([quiet, quiet, wake, quiet[:4000], command, quiet, quiet])
    path = write_pcm(tmp_path / "stream.wav", stream)
    run_file(path, tmp_path / "rec", "okay_nabu")
    [(meta, samples)] = recordings(tmp_path / "rec")
    start_s, end_s = check_slice(meta, samples, stream)
    command_start = 2.0 + (len(wake) + 4000) / RATE
    assert 2.0 <= start_s <= command_start
    assert end_s >= command_start + len(command) / RATE - 0.05
    assert meta["wake_word"] == "okay_nabu"


def test_dry_run_score_and_tune_with_a_micro_model(tmp_path):
    path = AUDIO / "nabu_pause_command.wav"
    proc = run_file(path, tmp_path / "rec", "okay_nabu", extra=("--dry-run",))
    assert b"wake word okay_nabu detected" in proc.stderr
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir())
    scored = run_recorder("score", "--model", "okay_nabu", "--json", str(path))
    assert scored.returncode == 0, scored.stderr.decode()
    assert b'"wake_word": "okay_nabu"' in scored.stdout
    # the real "Okay Nabu" clips against a stream of Hey Jarvis requests
    tuned = run_recorder(
        "tune",
        "--model",
        "okay_nabu",
        "--positives",
        str(NABU_CLIPS),
        "--negatives",
        str(AUDIO / "two_requests.wav"),
        "--thresholds",
        "0.85",
        "--patience",
        "1",
        "--json",
    )
    assert tuned.returncode == 0, tuned.stderr.decode()
    [row] = json.loads(tuned.stdout)["rows"]
    assert row["false_reject_rate"] == 0.0 and row["false_accepts"] == 0


def test_okay_nabu_through_the_mic_is_saved_bit_exact(tmp_path):
    audio, times = read_pcm(AUDIO / "nabu_pause_command.wav"), SCENES["nabu_pause_command"]
    with VirtualMic(tmp_path) as mic, daemon(mic, tmp_path, "--model", "okay_nabu") as d:
        d.wait_state("listening")
        start = mic.play(audio)
        d.wait_for("recording", lambda: any(d.rec_dir.glob("*.json")), times["duration_s"] + 10)
        d.terminate()
        log = d.log()
        assert d.proc.returncode == 0, log
        [(meta, samples)] = recordings(d.rec_dir)
        assert meta["wake_word"] == "okay_nabu" and meta["end_reason"] == "silence", log
        assert "audio lost" not in log, log
        offset = locate(mic, meta, samples)
        first_s = (offset - start) / RATE
        last_s = first_s + len(samples) / RATE
        assert times["wake"][0] <= first_s <= times["command"][0], (first_s, log)
        assert last_s >= times["command"][1], (last_s, log)
