"""Calibration end to end: a daemon counting activations on long negative audio, `recorder
calibrate` against `recorder tune`, restarts, what is written, and `recorder enroll`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, RATE, SCENES, oww_fixture, read_pcm, run_recorder, write_pcm
from harness import Daemon

from recorder.calibration import THRESHOLDS
from recorder.near_misses import MAX_PER_MODEL
from recorder.verifier import load as load_verifier

MODELS = ("weather", "hey_jarvis")


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recorder: error: "), lines
    return lines[0]


def music(seconds: float) -> np.ndarray:
    """Plucked notes of a little tune with an overtone: music-like tones."""
    t = np.arange(round(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    notes, step = [220.0, 277.2, 329.6, 440.0, 392.0, 349.2], round(0.4 * RATE)
    for i in range(0, len(t), step):
        f, seg = notes[(i // step) % len(notes)], t[i : i + step] - t[i]
        out[i : i + step] = np.sin(2 * np.pi * f * seg) * np.exp(-3 * seg) + 0.5 * np.sin(
            4 * np.pi * f * seg
        ) * np.exp(-4 * seg)
    return (out * 6000).astype(np.int16)


def negative_audio(repeats: int) -> np.ndarray:
    """Real speech without a shipped wake word (the weather model scores up to ~0.5 on it),
    louder and quieter as a TV would be, between tunes, over brown noise."""
    rng = np.random.default_rng(14)
    speech = [
        read_pcm(oww_fixture(n))
        for n in (
            "turn_on_the_office_lights_test_clip.wav",
            "negative_reference.wav",
            "hey_jane.wav",
        )
    ]
    parts = []
    for _ in range(repeats):
        for gain in (1.0, 0.6):
            for s in speech:
                parts += [np.clip(s * gain, -32768, 32767).astype(np.int16), music(3.0)]
    x = np.concatenate(parts).astype(np.float64)
    noise = np.cumsum(rng.normal(0, 1, len(x)))
    noise -= np.convolve(noise, np.ones(4000) / 4000, "same")
    return np.clip(x + 200 * noise / np.std(noise), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def negative_wav(tmp_path_factory) -> Path:
    return write_pcm(tmp_path_factory.mktemp("neg") / "room.wav", negative_audio(2))


def run_calibrating(
    source: str, state: Path, rec: Path, *flags: str, input: bytes | None = None
) -> subprocess.CompletedProcess:
    models = [a for m in MODELS for a in ("--model", m)]
    return ok(
        run_recorder(
            "run",
            "--source",
            source,
            *models,
            "--calibrate",
            "--state-dir",
            str(state),
            "--recordings",
            str(rec),
            *flags,
            input=input,
        )
    )


def calibrate_json(state: Path, *flags: str) -> dict:
    return json.loads(
        ok(run_recorder("calibrate", "--state-dir", str(state), "--json", *flags)).stdout
    )


def activations(report: dict, model: str) -> dict[tuple[float, int], int]:
    return {
        (r["threshold"], r["patience"]): r["activations"]
        for r in report["models"][model]["thresholds"]
    }


def tune_false_accepts(model: str, negatives: Path) -> tuple[dict[tuple[float, int], int], float]:
    proc = ok(
        run_recorder(
            "tune",
            "--model",
            model,
            "--positives",
            str(oww_fixture("alexa_test.wav")),
            "--negatives",
            str(negatives),
            "--thresholds",
            "0.05:0.95:0.05",
            "--patience",
            "1,2,3",
            "--jobs",
            "1",
            "--json",
        )
    )
    out = json.loads(proc.stdout)
    return (
        {(r["threshold"], r["patience"]): r["false_accepts"] for r in out["rows"]},
        out["negative_hours"],
    )


def test_calibrate_agrees_with_tune_and_persists_across_a_restart(tmp_path, negative_wav):
    state, rec = tmp_path / "state", tmp_path / "rec"
    # a threshold the negatives never reach: every frame is heard while listening
    run_calibrating(f"file:{negative_wav}", state, rec, "--threshold", "0.99")
    first = calibrate_json(state)
    assert not list(rec.glob("*.wav"))
    for model in MODELS:
        expected, hours = tune_false_accepts(model, negative_wav)
        got = activations(first, model)
        assert {k: got[k] for k in expected} == expected, model
        m = first["models"][model]
        assert m["hours"] == pytest.approx(hours, abs=0.08 / 3600)
        assert all(r["requests"] == 0 for r in m["thresholds"])
    weather = activations(first, "weather")
    assert weather[(0.05, 1)] >= 3 and len({weather[(t, 1)] for t in THRESHOLDS}) >= 3
    assert weather[(0.05, 1)] > weather[(0.05, 3)]

    # a restart, now streaming through stdin: the counts add up
    raw = read_pcm(negative_wav).tobytes()
    run_calibrating("stdin", state, rec, "--threshold", "0.99", input=raw)
    second = calibrate_json(state)
    for model in MODELS:
        assert second["models"][model]["hours"] == pytest.approx(
            2 * first["models"][model]["hours"], abs=0.08 / 3600
        )
        assert activations(second, model) == {
            k: 2 * v for k, v in activations(first, model).items()
        }
    row = next(
        r
        for r in second["models"]["weather"]["thresholds"]
        if (r["threshold"], r["patience"]) == (0.05, 1)
    )
    days = second["models"]["weather"]["hours"] / 24
    assert row["fa_per_day"] == pytest.approx(row["activations"] / days)
    assert row["fa_per_day_upper"] > row["fa_per_day"]
    assert second["models"]["weather"]["recommended"] is None
    assert "too few hours" in second["models"]["weather"]["reason"]


def scored(wav: Path, threshold: float) -> dict:
    """`recorder score` on one file with hey_jarvis at `threshold`: frames and detections."""
    proc = ok(
        run_recorder(
            "score", str(wav), "--model", "hey_jarvis", "--threshold", str(threshold), "--json"
        )
    )
    return json.loads(proc.stdout)["files"][0]


def test_calibrate_counts_what_tune_counts_whatever_the_operating_threshold_recorded(tmp_path):
    """A daemon at 0.3 records from hey_jarvis's first frame at 0.3 on; the frames where a
    daemon at 0.9 would have detected come after, while it records. The counts at every
    threshold and patience are still `tune`'s: activations plus requests (the saved requests'
    activations, counted apart) equal tune's false accepts on the same audio."""
    wake = read_pcm(AUDIO / "jarvis_bare.wav")  # no command: its request is discarded
    rest = np.concatenate(
        [
            read_pcm(AUDIO / "two_requests.wav"),  # two saved requests
            read_pcm(oww_fixture("turn_on_the_office_lights_test_clip.wav")),
            read_pcm(AUDIO / "speech_then_wake.wav"),
            read_pcm(oww_fixture("hey_jane.wav")),
        ]
    )
    head_frames = 42  # to the end of frame 41, past the first frame at 0.9
    head = wake[: head_frames * 1280]
    audio = write_pcm(tmp_path / "talk.wav", np.concatenate([wake, rest]))
    head_file = write_pcm(tmp_path / "head.wav", head)

    # the overlap: 0.9 first reached after the detection at 0.3...
    at_03 = scored(head_file, 0.3)
    detected_s = at_03["detections"][0]["time_s"]
    first_09_s = next(f["time_s"] for f in at_03["frames"] if f["scores"]["hey_jarvis"] >= 0.9)
    assert detected_s < first_09_s
    with Daemon(
        tmp_path / "d", "--model", "weather", "--threshold", "0.3", "--calibrate", log_states=True
    ) as d:
        d.feed(head.tobytes())
        # ...and heard by a daemon that has been recording since
        d.wait_state("recording")
        assert d.states() == ["listening", "recording"]
        d.feed(wake[len(head) :].tobytes() + rest.tobytes())
        d.end_input()
        assert d.wait_exit() == 0, d.log()
    assert len(list(d.rec.glob("*.wav"))) == 3, d.log()  # jarvis_bare's was discarded
    report = calibrate_json(d.state_dir)
    tuned = {}
    for model in MODELS:
        tuned[model], hours = tune_false_accepts(model, audio)
        m = report["models"][model]
        got = {
            (r["threshold"], r["patience"]): r["activations"] + r["requests"]
            for r in m["thresholds"]
        }
        assert {k: got[k] for k in tuned[model]} == tuned[model], model
        assert m["hours"] == pytest.approx(hours, abs=0.08 / 3600)  # the recorded time too
    row = {(r["threshold"], r["patience"]): r for r in report["models"]["hey_jarvis"]["thresholds"]}
    # above the operating threshold as at it: the discarded request's wake word (0.9 reached
    # only while recording) is an activation, the three saved requests' are requests
    for t in (0.3, 0.5, 0.9):
        assert (row[(t, 1)]["activations"], row[(t, 1)]["requests"]) == (1, 3), t
    assert tuned["hey_jarvis"][(0.9, 1)] == 4


def numbers(value: object) -> int:
    """How many numbers a decoded JSON value holds."""
    if isinstance(value, dict):
        return sum(numbers(v) for v in value.values())
    if isinstance(value, list):
        return sum(numbers(v) for v in value)
    return int(isinstance(value, int | float) and not isinstance(value, bool))


def files_under(*dirs: Path) -> set[Path]:
    return {p for d in dirs for p in d.rglob("*") if p.is_file()}


def test_nothing_but_the_counters_is_written(tmp_path, negative_wav):
    """No audio, no timeline: the files written are the counters, whose size does not grow
    with the audio heard, and the near misses' features (a bounded, unordered sample)."""
    home = Path(os.environ["XDG_STATE_HOME"]).parent
    short = write_pcm(tmp_path / "short.wav", read_pcm(negative_wav)[: 20 * RATE])
    sizes = {}
    for name, wav in (("short", short), ("long", negative_wav)):
        state, rec = tmp_path / f"state-{name}", tmp_path / f"rec-{name}"
        before = files_under(tmp_path, home)
        run_calibrating(f"file:{wav}", state, rec, "--threshold", "0.99")
        audit = {state / "audit.log", state / "audit.lock"}  # facts only: see test_audit.py
        assert files_under(tmp_path, home) - before - audit == {
            state / "calibration.json",
            state / "near-misses.npz",
        }
        with np.load(state / "near-misses.npz", allow_pickle=False) as f:
            assert set(f.files) == {f"{k}:{m}" for k in ("features", "seen") for m in MODELS}
            for m in MODELS:
                rows = f[f"features:{m}"]
                assert rows.ndim == 2 and rows.shape[1] == 192 and len(rows) <= MAX_PER_MODEL
                assert int(f[f"seen:{m}"]) >= len(rows)
        data = json.loads((state / "calibration.json").read_text())
        assert set(data) == {
            "format",
            "version",
            "frame_s",
            "thresholds",
            "refractory_frames",
            "models",
        }
        assert set(data["models"]) == set(MODELS)
        for m in data["models"].values():
            assert set(m) == {"frames", "patience"}
            for pc in m["patience"].values():
                assert set(pc) == {"frames", "activations", "requests"}
                assert all(isinstance(v, int) for v in pc["activations"] + pc["requests"])
        sizes[name] = (numbers(data), data["models"]["weather"]["frames"])
    assert sizes["short"][0] == sizes["long"][0]  # as many numbers for 20 s as for minutes
    assert sizes["long"][1] > 10 * sizes["short"][1]


def test_activations_that_became_saved_requests_are_counted_apart(tmp_path):
    state, rec = tmp_path / "state", tmp_path / "rec"
    run_calibrating(f"file:{AUDIO / 'two_requests.wav'}", state, rec)
    assert len(list(rec.glob("*.wav"))) == 2
    m = calibrate_json(state)["models"]["hey_jarvis"]
    row = {(r["threshold"], r["patience"]): r for r in m["thresholds"]}
    assert row[(0.5, 1)]["requests"] == 2 and row[(0.5, 1)]["activations"] == 0
    # above the operating threshold too: both wake words reach 0.95 while recording
    assert all(row[(t, 1)]["requests"] == 2 for t in THRESHOLDS)
    assert all(r["activations"] == 0 for r in m["thresholds"])
    # the recorded seconds are heard time too: every frame the engine scored
    heard_s = m["hours"] * 3600
    assert heard_s == pytest.approx(SCENES["two_requests"]["duration_s"], abs=0.08)


def wake_clips(tmp_path: Path) -> list[Path]:
    """The wake phrases cut out of the jarvis scenes (the owner's clips), and one near miss."""
    clips = []
    for scene in ("jarvis_bare", "jarvis_long_command", "two_requests", "speech_then_wake"):
        samples = read_pcm(AUDIO / f"{scene}.wav")
        for key in ("wake", "wake2"):
            if key in SCENES[scene]:
                a, b = SCENES[scene][key]
                cut = samples[round((a - 0.2) * RATE) : round((b + 0.3) * RATE)]
                clips.append(write_pcm(tmp_path / f"{scene}-{key}.wav", cut))
    clips.append(oww_fixture("hey_jane.wav"))
    return clips


def test_enroll_counts_tunes_detections_and_calibrate_shows_both(tmp_path, negative_wav):
    state = tmp_path / "state"
    clips = wake_clips(tmp_path)
    out = json.loads(
        ok(
            run_recorder(
                "enroll",
                "--model",
                "hey_jarvis",
                *map(str, clips),
                "--state-dir",
                str(state),
                "--jobs",
                "2",
                "--json",
            )
        ).stdout
    )
    assert out["clips"] == len(clips) == 6
    proc = ok(
        run_recorder(
            "tune",
            "--model",
            "hey_jarvis",
            "--positives",
            *map(str, clips),
            "--negatives",
            str(negative_wav),
            "--patience",
            "1,2,3",
            "--jobs",
            "2",
            "--json",
        )
    )
    for r in json.loads(proc.stdout)["rows"]:
        k = THRESHOLDS.index(r["threshold"])
        missed = len(clips) - out["detected"][str(r["patience"])][k]
        assert missed == round(r["false_reject_rate"] * len(clips))
    assert out["detected"]["1"][THRESHOLDS.index(0.5)] == 5  # all but the near miss

    run_calibrating(f"file:{negative_wav}", state, tmp_path / "rec", "--threshold", "0.99")
    report = calibrate_json(state, "--target-fa-per-day", "2000")
    m = report["models"]["hey_jarvis"]
    assert m["enrolled_clips"] == 6 and "enrolled_clips" in report["models"]["weather"]
    rows = m["thresholds"]
    assert all(
        r["false_reject_rate"]
        == pytest.approx(
            1 - out["detected"][str(r["patience"])][THRESHOLDS.index(r["threshold"])] / 6
        )
        for r in rows
    )
    meeting = [r for r in rows if r["fa_per_day_upper"] <= 2000]
    best = min(meeting, key=lambda r: (r["false_reject_rate"], r["threshold"], r["patience"]))
    assert m["recommended"] == best
    text = ok(run_recorder("calibrate", "--state-dir", str(state))).stdout.decode()
    assert "model hey_jarvis" in text and "6 enrolled clip(s)" in text and "FRR" in text


def test_enroll_from_a_live_source_keeps_no_audio(tmp_path):
    wake = read_pcm(AUDIO / "jarvis_bare.wav")[round(1.8 * RATE) : round(3.2 * RATE)]
    window = np.zeros(3 * RATE, dtype=np.int16)
    window[RATE // 2 : RATE // 2 + len(wake)] = wake
    src = write_pcm(tmp_path / "two.wav", np.concatenate([window, window]))
    state = tmp_path / "state"
    proc = ok(
        run_recorder(
            "enroll",
            "--model",
            "hey_jarvis",
            "--source",
            f"file:{src}",
            "--clips",
            "2",
            "--clip-s",
            "3",
            "--state-dir",
            str(state),
            "--json",
        )
    )
    out = json.loads(proc.stdout)
    assert out["clips"] == 2 and out["detected"]["1"][THRESHOLDS.index(0.5)] == 2
    assert "clip 2/2" in proc.stderr.decode()
    assert sorted(p.name for p in state.iterdir()) == ["enrollment.json", "enrollment.npz"]
    with np.load(state / "enrollment.npz", allow_pickle=False) as f:  # features, not audio
        assert f.files == ["hey_jarvis"] and f["hey_jarvis"].shape == (2, 192)
    proc = run_recorder(
        "enroll",
        "--model",
        "hey_jarvis",
        "--source",
        f"file:{src}",
        "--clips",
        "3",
        "--state-dir",
        str(tmp_path / "s2"),
    )
    assert proc.returncode == 2  # after the prompts, one line
    last = proc.stderr.decode().splitlines()[-1]
    assert last.startswith("recorder: error: ") and "ended after 2 of 3 clips" in last
    assert not (tmp_path / "s2" / "enrollment.json").exists()


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    bad = state / "calibration.json"
    bad.write_text('{"format": "recorder-calibration", "version": 2, "thresholds": [0.5]}')
    assert "thresholds differ" in error_line(run_recorder("calibrate", "--state-dir", str(state)))
    line = error_line(
        run_recorder(
            "run",
            "--source",
            f"file:{AUDIO / 'jarvis_bare.wav'}",
            "--calibrate",
            "--state-dir",
            str(state),
            "--recordings",
            str(tmp_path / "rec"),
        )
    )
    assert str(bad) in line
    assert bad.read_text().startswith('{"format": "recorder-calibration"')
    bad.write_text(
        json.dumps({"format": "recorder-calibration", "version": 1, "thresholds": list(THRESHOLDS)})
    )
    assert "version 1 counted only while listening" in error_line(
        run_recorder("calibrate", "--state-dir", str(state))
    )
    assert "--target-fa-per-day" in error_line(
        run_recorder("calibrate", "--state-dir", str(tmp_path), "--target-fa-per-day", "0")
    )
    assert "CLIP" in error_line(run_recorder("enroll", "--state-dir", str(tmp_path)))
    (tmp_path / "empty").mkdir()
    assert "no WAV files" in error_line(
        run_recorder("enroll", str(tmp_path / "empty"), "--state-dir", str(tmp_path))
    )


def test_sighup_starts_and_stops_calibrating_and_keeps_the_counts(tmp_path):
    """A live daemon (stdin) reloaded into and out of calibration: only the audio heard in
    between is counted, and the counts reach the disk at each switch."""
    config = tmp_path / "c.toml"
    config.write_text("[wake]\ncalibrate = false\n")
    with Daemon(tmp_path, "--config", str(config), model=None) as d:
        d.feed(bytes(2 * RATE * 2))
        assert not (d.state_dir / "calibration.json").exists()
        config.write_text("[wake]\ncalibrate = true\n")
        d.send_signal(signal.SIGHUP)
        d.feed(bytes(8 * RATE * 2))
        config.write_text("[wake]\ncalibrate = false\n")
        d.send_signal(signal.SIGHUP)
        d.feed(bytes(4 * RATE * 2))
        d.stop()
    calibration = json.loads((d.state_dir / "calibration.json").read_text())
    frames = calibration["models"]["hey_jarvis"]["frames"]
    # a reload applies between frames, after the next frame once a signal has come
    assert abs(frames - 100) <= 2, frames


def near_miss_room() -> np.ndarray:
    """A room that nearly says the wake word: the first 35-65 % of each wake phrase of the
    jarvis scenes, loud and soft, between seconds of silence."""
    parts, gap = [], np.zeros(RATE, dtype=np.int16)
    for scene in SCENES:
        if scene == "alexa_command":
            continue
        samples = read_pcm(AUDIO / f"{scene}.wav")
        for key in ("wake", "wake2"):
            if key in SCENES[scene]:
                a, b = SCENES[scene][key]
                for frac in (0.35, 0.5, 0.65):
                    cut = samples[round(a * RATE) : round((a + frac * (b - a)) * RATE)]
                    for gain in (1.0, 0.5):
                        parts += [gap, (cut * gain).astype(np.int16), gap]
    return np.concatenate(parts)


def test_a_verifier_is_trained_from_enrolled_clips_and_the_rooms_near_misses(tmp_path):
    state, rec = tmp_path / "state", tmp_path / "rec"
    refused = run_recorder("train-verifier", "--model", "hey_jarvis", "--state-dir", str(state))
    assert "0 enrolled clip(s) of hey_jarvis" in error_line(refused)

    clips = wake_clips(tmp_path)
    ok(run_recorder("enroll", "--model", "hey_jarvis", *map(str, clips), "--state-dir", str(state)))
    with np.load(state / "enrollment.npz", allow_pickle=False) as f:
        assert f["hey_jarvis"].shape == (len(clips), 192)
    refused = run_recorder("train-verifier", "--model", "hey_jarvis", "--state-dir", str(state))
    assert "0 near miss(es) of hey_jarvis" in error_line(refused)

    room = write_pcm(tmp_path / "room.wav", near_miss_room())
    ok(
        run_recorder(
            "run",
            "--source",
            f"file:{room}",
            "--model",
            "hey_jarvis",
            "--calibrate",
            "--state-dir",
            str(state),
            "--recordings",
            str(rec),
        )
    )
    with np.load(state / "near-misses.npz", allow_pickle=False) as f:
        n_near = len(f["features:hey_jarvis"])
    assert n_near >= 20

    out = json.loads(
        ok(
            run_recorder(
                "train-verifier", "--model", "hey_jarvis", "--state-dir", str(state), "--json"
            )
        ).stdout
    )
    held = out["held_out"]
    assert (held["positives"], held["negatives"]) == (len(clips), n_near)
    assert held["false_reject_rate"] == held["positives_rejected"] / len(clips)
    assert held["near_miss_accept_rate"] == held["negatives_accepted"] / n_near
    assert held["near_miss_accept_rate"] < 0.5  # it learned something about this room
    verifier = load_verifier(Path(out["file"]))
    assert verifier.model == "hey_jarvis"

    # the daemon takes it: the two real requests still get through
    config = tmp_path / "recorder.toml"
    config.write_text(
        '[wake]\nmodels = ["hey_jarvis"]\n'
        f'[wake.per_model.hey_jarvis]\nverifier = "{out["file"]}"\n'
    )
    rec2 = tmp_path / "rec2"
    ok(
        run_recorder(
            "run",
            "--config",
            str(config),
            "--source",
            f"file:{AUDIO / 'two_requests.wav'}",
            "--recordings",
            str(rec2),
        )
    )
    assert len(list(rec2.glob("*.wav"))) == 2
