"""End to end: `recorder run` with microWakeWord's "Okay Nabu", alone and beside openWakeWord,
on a file and through the real microphone path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import AUDIO, REPO, SCENES, read_pcm, recordings, run_recorder
from harness import check_slice, check_wake_then_command, locate, mic_daemon
from virtual_mic import VirtualMic

pytest.importorskip("pymicro_wakeword", reason="needs pymicro-wakeword (wakeword-recorder[micro])")

RATE = 16000
NABU_CLIPS = REPO / "tests" / "fixtures" / "microwakeword"  # people saying "Okay Nabu"


def run_file(scene: str, rec, *models: str):
    args = [a for m in models for a in ("--model", m)]
    proc = run_recorder(
        "run", "--source", f"file:{AUDIO / scene}.wav", "--recordings", str(rec), *args
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


def check_requests(scene: str, recs: list, wake_words: list[str]) -> None:
    """Each request is a bit-exact slice of the scene that starts inside its wake phrase
    (never before it) and holds its whole command."""
    source, marks = read_pcm(AUDIO / f"{scene}.wav"), SCENES[scene]
    phrases = [("wake", "command"), ("wake2", "command2")][: len(recs)]
    assert len(recs) == len(wake_words) == len([p for p in phrases if p[0] in marks])
    for (meta, samples), (wake, command), word in zip(recs, phrases, wake_words, strict=True):
        start_s, end_s = check_slice(meta, samples, source)
        assert marks[wake][0] <= start_s <= marks[command][0], (scene, wake, start_s)
        assert end_s >= marks[command][1], (scene, command, end_s)
        assert meta["wake_word"] == word and meta["end_reason"] == "silence"
        # each model's own threshold: microWakeWord's "strictly above its cutoff"
        assert meta["threshold"] == (0.5 if word == "hey_jarvis" else math.nextafter(0.85, 1))


@pytest.mark.parametrize("scene", ["nabu_pause_command", "speech_then_nabu", "nabu_two_requests"])
def test_okay_nabu_requests_are_saved_whole_and_nothing_before(tmp_path, scene):
    run_file(scene, tmp_path, "okay_nabu")
    recs = recordings(tmp_path)
    check_requests(scene, recs, ["okay_nabu"] * len(recs))
    assert len(recs) == (2 if scene == "nabu_two_requests" else 1)


def test_okay_nabu_and_hey_jarvis_share_the_audio_and_the_state_machine(tmp_path):
    proc = run_file("nabu_and_jarvis", tmp_path, "okay_nabu", "hey_jarvis")
    check_requests("nabu_and_jarvis", recordings(tmp_path), ["okay_nabu", "hey_jarvis"])
    log = proc.stderr.decode()
    assert "wake word okay_nabu detected" in log and "wake word hey_jarvis detected" in log


def test_nothing_is_saved_without_okay_nabu(tmp_path):
    run_file("command_without_wake", tmp_path, "okay_nabu", "micro:hey_mycroft")
    assert list(tmp_path.iterdir()) == []


def test_score_and_dry_run_with_both_engines(tmp_path):
    scene = AUDIO / "nabu_and_jarvis.wav"
    proc = run_recorder("score", "--json", "--model", "okay_nabu", "--model", "hey_jarvis", scene)
    assert proc.returncode == 0, proc.stderr.decode()
    [result] = json.loads(proc.stdout)["files"]
    found = sorted((d["wake_word"], d["time_s"]) for d in result["detections"])
    assert [w for w, _ in found] == ["hey_jarvis", "okay_nabu"]
    marks = SCENES["nabu_and_jarvis"]
    assert marks["wake"][0] < dict(found)["okay_nabu"] < marks["command"][0] + 0.5
    dry = run_recorder(
        "run", "--dry-run", "--source", f"file:{scene}", "--model", "okay_nabu",
        "--recordings", str(tmp_path / "rec"),
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr.decode()
    assert dry.stderr.decode().count("dry run: would save") == 1
    assert not (tmp_path / "rec").exists()
    config = tmp_path / "activations.toml"
    config.write_text(f'[wake]\nsave_activations = "{tmp_path / "act"}"\n')
    kept = run_recorder(
        "run", "--config", config, "--source", f"file:{scene}", "--model", "okay_nabu",
        "--recordings", str(tmp_path / "rec2"),
    )  # fmt: skip
    assert kept.returncode == 0, kept.stderr.decode()
    [(meta, samples)] = recordings(tmp_path / "act")
    assert meta["wake_word"] == "okay_nabu" and len(samples) > 0


def test_okay_nabu_through_the_microphone_is_saved_bit_exact(tmp_path):
    audio, marks = read_pcm(AUDIO / "nabu_and_jarvis.wav"), SCENES["nabu_and_jarvis"]
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path, "--model", "okay_nabu") as d:
        d.wait_state("listening")
        start = mic.play(audio)
        d.wait_for(
            "two recordings",
            lambda: len(list(d.rec.glob("*.json"))) == 2,
            marks["duration_s"] + 15,
        )
        d.terminate()
        log = d.log()
        assert d.returncode == 0, log
        recs = recordings(d.rec)
    assert [m["wake_word"] for m, _ in recs] == ["okay_nabu", "hey_jarvis"], log
    for (meta, samples), (wake, command) in zip(
        recs, [("wake", "command"), ("wake2", "command2")], strict=True
    ):
        first_s = (locate(mic, meta, samples) - start) / RATE  # in the scene's own time
        assert marks[wake][0] <= first_s <= marks[command][0], (wake, first_s, log)
        assert first_s + len(samples) / RATE >= marks[command][1], (command, log)
        assert meta["source"] == "mic:virtualmic" and np.asarray(samples).dtype == np.int16


@pytest.mark.parametrize("clip", ["okay_nabu_1.wav", "okay_nabu_2.wav"])
def test_real_human_okay_nabu_followed_by_a_command(tmp_path, clip):
    meta = check_wake_then_command(tmp_path, NABU_CLIPS / clip, "nabu_pause_command", "okay_nabu")
    assert meta["wake_word"] == "okay_nabu"


def test_tune_with_a_micro_model_on_real_clips():
    """The real "Okay Nabu" clips against a stream of Hey Jarvis requests."""
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
