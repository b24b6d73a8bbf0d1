"""`recorder score` and `recorder tune` end to end, on real models and real audio."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, RECORDER, SCENES, oww_fixture, read_pcm, run_recorder, write_pcm
from harness import Daemon

from recorder.onsets import poisson_upper
from recorder.pipeline import build_engine
from recorder.tools import jobs, options, tune

PNG = b"\x89PNG\r\n\x1a\n"
WAKE_LINE = re.compile(r"wake word (\S+) detected \(score [0-9.]+\) at ([0-9.]+) s")
GRID = "0.05:0.95:0.05"


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr
    return proc


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("recorder: error: "), lines
    return lines[0]


def daemon_detections(runs: dict[str, Daemon]) -> dict[str, list[tuple[str, str]]]:
    """(wake word, time) from each `recorder run` log; every detection ended saved or discarded."""
    out = {}
    for path, d in runs.items():
        code = d.wait_exit(120)
        text = d.log()
        assert code == 0 and "Traceback" not in text, text
        found = WAKE_LINE.findall(text)
        assert len(found) == len(re.findall(r"INFO (saved|discarded|dry run)", text)), text
        out[path] = found
    return out


SETTINGS = {
    # the default thresholds, two models from a config file
    "config": (
        [
            "jarvis_bare",
            "two_requests",
            "alexa_command",
            "jarvis_runon_command",
            "speech_then_wake",
            "command_without_wake",
            "jarvis_pause_command",
        ],
        '[wake]\nmodels = ["hey_jarvis", "alexa"]\n',
        [],
    ),
    # flags over a config: patience 3, a high threshold, a short refractory period
    "flags": (
        ["two_requests", "jarvis_runon_command", "jarvis_bare"],
        "[wake]\npatience = 3\nrefractory_s = 0.5\n",
        ["--model", "hey_jarvis", "--threshold", "0.7"],
    ),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_score_detections_are_the_daemons(tmp_path, setting):
    scenes, toml, flags = SETTINGS[setting]
    cfg = tmp_path / "recorder.toml"
    cfg.write_text(toml)
    paths = [AUDIO / f"{s}.wav" for s in scenes]
    png = tmp_path / "scores.png"
    with contextlib.ExitStack() as daemons:
        runs = {  # the daemons run meanwhile
            str(p): daemons.enter_context(
                Daemon(
                    tmp_path / f"daemon{i}",
                    "--config",
                    str(cfg),
                    *flags,
                    "--log-level",
                    "info",
                    source=f"file:{p}",
                    model=None,
                )
            )
            for i, p in enumerate(paths)
        }
        proc = ok(
            run_recorder(
                "score",
                *map(str, paths),
                "--config",
                str(cfg),
                *flags,
                "--json",
                "--jobs",
                "2",
                "--plot",
                str(png),
            )
        )
        assert proc.stderr == b""  # no progress bar when stderr is not a terminal
        report = json.loads(proc.stdout)
        theirs = daemon_detections(runs)
    assert [f["path"] for f in report["files"]] == list(runs) and report["skipped"] == []
    total = 0
    for f in report["files"]:
        ours = [(d["wake_word"], f"{d['time_s']:.2f}") for d in f["detections"]]
        assert ours == theirs[f["path"]], f["path"]
        total += len(ours)
    by_name = {Path(f["path"]).stem: f for f in report["files"]}
    if setting == "config":
        assert [d["time_s"] for d in by_name["two_requests"]["detections"]] == [3.12, 8.8]
        assert len(by_name["jarvis_bare"]["detections"]) == 1  # detected, then discarded
        assert by_name["command_without_wake"]["detections"] == []
        assert by_name["alexa_command"]["detections"][0]["wake_word"] == "alexa"
    assert total >= len(scenes) - 1
    data = png.read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000


def test_frames_peaks_and_csv(tmp_path):
    clip = oww_fixture("alexa_test.wav")
    scene = AUDIO / "jarvis_pause_command.wav"
    out = tmp_path / "frames.csv"
    table = ok(
        run_recorder(
            "score",
            str(clip),
            str(scene),
            "--model",
            "alexa",
            "--model",
            "hey_jarvis",
            "--csv",
            str(out),
            "--jobs",
            "1",
        )
    )
    assert b"alexa_test.wav" in table.stdout and b"peak" in table.stdout
    report = json.loads(
        ok(
            run_recorder(
                "score",
                str(clip),
                str(scene),
                "--model",
                "alexa",
                "--model",
                "hey_jarvis",
                "--json",
            )
        ).stdout
    )
    rows = out.read_text().splitlines()
    assert rows[0] == "file,time_s,alexa,hey_jarvis,speech"
    n_rows = 0
    for f, path in zip(report["files"], [clip, scene], strict=True):
        samples = read_pcm(path)
        n = math.ceil(len(samples) / 1280)
        assert f["duration_s"] == pytest.approx(len(samples) / 16000, abs=1e-4)
        assert len(f["frames"]) == n
        assert [fr["time_s"] for fr in f["frames"]] == [round((i + 1) * 0.08, 2) for i in range(n)]
        assert all(
            set(fr["scores"]) == {"alexa", "hey_jarvis"} and isinstance(fr["speech"], bool)
            for fr in f["frames"]
        )
        for name, peak in f["peaks"].items():
            best = max(fr["scores"][name] for fr in f["frames"])
            assert peak["score"] == best
            assert (
                next(fr for fr in f["frames"] if fr["scores"][name] == best)["time_s"]
                == peak["time_s"]
            )
        n_rows += n
    alexa, jarvis = report["files"]
    assert alexa["peaks"]["alexa"]["score"] > 0.9
    assert alexa["peaks"]["hey_jarvis"]["score"] < 0.1
    wake_start, wake_end = SCENES["jarvis_pause_command"]["wake"]
    assert wake_end < jarvis["peaks"]["hey_jarvis"]["time_s"] < wake_end + 1.0
    # webrtcvad hears the wake phrase and the command, not the noise bed before them
    speech = [fr["time_s"] for fr in jarvis["frames"] if fr["speech"]]
    assert speech and min(speech) > wake_start - 0.2
    assert len(rows) == 1 + n_rows
    first = rows[1].split(",")
    assert first[0] == str(clip) and first[1] == "0.08" and first[-1] in ("0", "1")


POSITIVES = [
    AUDIO / f"{s}.wav"
    for s in (
        "jarvis_bare",
        "jarvis_long_command",
        "jarvis_pause_command",
        "jarvis_runon_command",
        "two_requests",
    )
]


def openwakeword_frr(manifest, clips: list[Path], thresholds, patiences) -> dict:
    """The false-reject rate from the openWakeWord package's own predict loop."""
    oww_model = pytest.importorskip(  # the reference installs on Python 3.11 only
        "openwakeword.model", reason="needs the openwakeword package (Python 3.11 only)"
    )
    np.random.seed(0)  # openWakeWord starts from features of random noise
    model = oww_model.Model(
        wakeword_models=[str(manifest.path(manifest.wakewords["hey_jarvis"]))],
        inference_framework="onnx",
        melspec_model_path=str(manifest.path(manifest.features["melspectrogram"])),
        embedding_model_path=str(manifest.path(manifest.features["embedding"])),
    )
    per_clip = []
    for clip in clips:
        model.reset()
        per_clip.append([p["hey_jarvis_v0.1"] for p in model.predict_clip(str(clip), padding=1)])

    def detected(scores, t, patience):
        run = 0
        for s in scores:
            run = run + 1 if s >= t else 0
            if run >= patience:
                return True
        return False

    return {
        (t, p): sum(not detected(s, t, p) for s in per_clip) / len(per_clip)
        for t in thresholds
        for p in patiences
    }


def test_tune_false_rejects_equal_openwakewords(tmp_path, manifest):
    clips = [*POSITIVES, oww_fixture("hey_jane.wav"), oww_fixture("alexa_test.wav")]
    negatives = [oww_fixture("negative_reference.wav"), AUDIO / "command_without_wake.wav"]
    png = tmp_path / "det.png"
    proc = ok(
        run_recorder(
            "tune",
            "--positives",
            *map(str, clips),
            "--negatives",
            *map(str, negatives),
            "--model",
            "hey_jarvis",
            "--thresholds",
            GRID,
            "--patience",
            "1,2,3",
            "--json",
            "--plot",
            str(png),
        )
    )
    result = json.loads(proc.stdout)
    assert result["model"] == "hey_jarvis" and result["positives"] == len(clips)
    thresholds = tune.parse_thresholds(GRID)
    expected = openwakeword_frr(manifest, clips, thresholds, [1, 2, 3])
    ours = {(r["threshold"], r["patience"]): r["false_reject_rate"] for r in result["rows"]}
    assert ours == pytest.approx(expected, abs=1e-9)
    assert any(0 < v < 1 for v in ours.values())
    assert len(set(ours.values())) > 1  # the run-on scene drops out at higher patience
    data = png.read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000

    # openWakeWord reports 0 for its first 5 frames: with 1 s of padding ours are 0 there too
    config = options.load_config(argparse.Namespace(config=None, threshold=None), ["hey_jarvis"])
    worker = jobs.Worker(config, build_engine(config), lambda s: None)
    for clip in clips:
        scores = worker.run(jobs.Job("positive", str(clip))).scores
        assert scores is not None and (scores[:5] < min(thresholds)).all()
        assert len(scores) == math.ceil((len(read_pcm(clip)) + 32000) / 1280)


def test_tune_json_schema_and_recommended_point(tmp_path):
    proc = ok(
        run_recorder(
            "tune",
            "--positives",
            str(AUDIO / "jarvis_runon_command.wav"),
            str(oww_fixture("hey_jane.wav")),
            "--negatives",
            str(oww_fixture("negative_reference.wav")),
            "--thresholds",
            "0.5:0.9:0.2",
            "--patience",
            "2,1",
            "--max-fa-per-hour",
            "2000",  # 8.7 s of negatives bound even no false accept at 1236 per hour
            "--json",
            "--jobs",
            "1",
        )
    )
    result = json.loads(proc.stdout)
    assert set(result) >= {"model", "positives", "negative_hours", "rows", "recommended"}
    assert result["negative_hours"] == pytest.approx(
        len(read_pcm(oww_fixture("negative_reference.wav"))) / 16000 / 3600, rel=1e-4
    )
    assert [(r["threshold"], r["patience"]) for r in result["rows"]] == [
        (0.5, 1),
        (0.5, 2),
        (0.7, 1),
        (0.7, 2),
        (0.9, 1),
        (0.9, 2),
    ]
    for r in result["rows"]:
        assert set(r) == {
            "threshold",
            "patience",
            "false_reject_rate",
            "false_accepts",
            "false_accepts_per_hour",
            "false_accepts_per_hour_upper",
        }
        assert r["false_accepts"] == 0 and r["false_reject_rate"] in (0.5, 1.0)
        # calibrate's bound: 3.0 events (none seen) in 8.7 s
        assert r["false_accepts_per_hour_upper"] == pytest.approx(
            poisson_upper(0) / result["negative_hours"]
        )
    # hey_jane is never detected; the run-on scene's peak holds 0.7 for 2 frames, not 0.9
    frr = {(r["threshold"], r["patience"]): r["false_reject_rate"] for r in result["rows"]}
    assert frr[(0.9, 1)] == 0.5 and frr[(0.9, 2)] == 1.0
    # lowest FRR (0.5), ties to the higher threshold (0.9), then the lower patience (1)
    assert result["recommended"] == next(
        r for r in result["rows"] if (r["threshold"], r["patience"]) == (0.9, 1)
    )
    assert result["reason"] is None and result["confidence"] == 0.95
    table = ok(
        run_recorder(
            "tune",
            "--positives",
            str(AUDIO / "jarvis_runon_command.wav"),
            "--negatives",
            str(oww_fixture("negative_reference.wav")),
            "--thresholds",
            "0.5",
            "--patience",
            "1",
        )
    )
    # at the default 0.5 per hour, 8.7 s of negatives cannot show anything: no "0.00 per hour"
    assert table.stdout.decode().splitlines()[-1] == (
        "recommended: none (the negatives are too short: 0.1 min; at least 6.0 h are needed "
        "before even zero false accepts show at most 0.5 per hour at 95% confidence)"
    )


def test_unreadable_files_are_skipped_and_the_run_goes_on(tmp_path):
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    write_pcm(d / "b_good.wav", read_pcm(AUDIO / "jarvis_bare.wav"))
    (d / "a_broken.wav").write_text("not audio at all")
    (d / "c_empty.wav").write_bytes(b"")
    (d / "notes.txt").write_text("ignored: not a .wav")
    (d / "sub" / "activation.wav").write_bytes(oww_fixture("activation.wav").read_bytes())
    missing = tmp_path / "missing.wav"
    proc = ok(run_recorder("score", str(d), str(missing), "--json", "--jobs", "2"))
    report = json.loads(proc.stdout)
    assert [f["path"] for f in report["files"]] == [
        str(d / "b_good.wav"),
        str(d / "sub" / "activation.wav"),
    ]
    assert report["skipped"] == [
        {"path": str(d / "a_broken.wav"), "reason": "not a WAV file"},
        {"path": str(d / "c_empty.wav"), "reason": "not a WAV file"},
        {"path": str(missing), "reason": "no such file"},
    ]
    assert proc.stderr.decode().count("recorder: skipped") == 3
    assert len(report["files"][0]["detections"]) == 1
    # converted (22.05 kHz stereo), not refused
    assert report["files"][1]["duration_s"] == pytest.approx(0.47, abs=0.01)

    none = run_recorder("score", str(d / "a_broken.wav"), str(missing))
    assert none.returncode == 2 and b"no file could be scored (2 skipped)" in none.stderr
    assert b"Traceback" not in none.stderr
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert "no WAV files" in error_line(run_recorder("score", str(empty)))
    tune = run_recorder(
        "tune", "--positives", str(d / "a_broken.wav"), "--negatives", str(d / "b_good.wav")
    )
    assert tune.returncode == 2 and b"no positive clip could be read" in tune.stderr


def test_missing_matplotlib_is_one_clear_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoMatplotlib:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'matplotlib' or name.startswith('matplotlib.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, _NoMatplotlib())\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    clip = str(AUDIO / "jarvis_bare.wav")
    png = tmp_path / "x.png"
    message = "recorder: error: plotting needs matplotlib: pip install 'wakeword-recorder[plot]'"
    assert error_line(run_recorder("score", clip, "--plot", str(png), env=env)) == message
    assert (
        error_line(
            run_recorder(
                "tune", "--positives", clip, "--negatives", clip, "--plot", str(png), env=env
            )
        )
        == message
    )
    assert not png.exists()
    ok(run_recorder("score", clip, env=env))  # without --plot, matplotlib is not needed


def test_progress_bar_on_a_terminal_end_to_end(tmp_path):
    import pty

    audio = np.concatenate([read_pcm(p) for p in sorted(AUDIO.glob("*.wav"))] * 2)
    long = write_pcm(tmp_path / "long.wav", audio)  # over 2 min
    total = len(audio) / 16000
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(RECORDER), "score", str(long), "--jobs", "1"],
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    err = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed
            break
        if not data:
            break
        err += data
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    done = re.search(rb"\[#+\]\s+[0-9.]+ / ([0-9.]+) s audio\s+[0-9.]+x realtime\r?\n", err)
    assert done and abs(float(done[1]) - total) < 0.1, err


def test_bad_flags_are_one_line_errors():
    clip = str(oww_fixture("hey_jane.wav"))
    base = ["tune", "--positives", clip, "--negatives", clip]
    assert "whole number of STEPs" in error_line(
        run_recorder(*base, "--thresholds", "0.1:0.5:0.15")
    )
    assert "--patience" in error_line(run_recorder(*base, "--patience", "0,1"))
    assert "timer:1_minute_timer" in error_line(run_recorder(*base, "--model", "timer"))
    assert "no class 'egg'" in error_line(run_recorder(*base, "--model", "timer:egg"))
    assert "--max-fa-per-hour" in error_line(run_recorder(*base, "--max-fa-per-hour", "-1"))
    assert "must be above 0" in error_line(run_recorder(*base, "--max-fa-per-hour", "0"))
    assert "--jobs" in error_line(run_recorder("score", clip, "--jobs", "0"))
    assert "unknown model" in error_line(run_recorder("score", clip, "--model", "hey_nobody"))
