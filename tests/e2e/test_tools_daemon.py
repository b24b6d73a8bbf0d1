"""The daemon as a tool: --dry-run, saved activations, and the live monitor."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import time

import numpy as np
from conftest import AUDIO, RECORDER, REPO, read_pcm, recordings, run_recorder, write_pcm


def test_dry_run_logs_what_a_real_run_saves_and_writes_nothing(tmp_path):
    path = AUDIO / "two_requests.wav"
    real = run_recorder(
        "run",
        "--source",
        f"file:{path}",
        "--recordings",
        str(tmp_path / "real"),
        "--model",
        "hey_jarvis",
    )
    assert real.returncode == 0
    dry = run_recorder(
        "run",
        "--dry-run",
        "--source",
        f"file:{path}",
        "--recordings",
        str(tmp_path / "dry"),
        "--model",
        "hey_jarvis",
    )
    assert dry.returncode == 0
    assert not (tmp_path / "dry").exists()
    said = re.findall(
        r"would save ([\d.]+) s from ([\d.]+) s to [\d.]+ s \((\w+)", dry.stderr.decode()
    )
    saved = [
        (f"{m['duration_s']:.2f}", f"{m['source_offset_s']:.2f}", m["end_reason"])
        for m, _ in recordings(tmp_path / "real")
    ]
    assert said == saved and len(said) == 2


def test_activations_keep_two_seconds_around_each_detection(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(f'[wake]\nsave_activations = "{tmp_path / "act"}"\n')
    path = AUDIO / "jarvis_bare.wav"
    proc = run_recorder(
        "run",
        "--config",
        str(config),
        "--source",
        f"file:{path}",
        "--recordings",
        str(tmp_path / "rec"),
        "--model",
        "hey_jarvis",
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert list((tmp_path / "rec").iterdir()) == []  # a bare wake word: no recording ...
    [(meta, samples)] = recordings(tmp_path / "act")  # ... but its activation
    assert meta["kind"] == "activation" and meta["wake_word"] == "hey_jarvis"
    assert meta["score"] >= meta["threshold"] == 0.5
    assert len(samples) == 25 * 1280  # 1.5 s before the detecting frame's end, 0.5 s after
    start = round(meta["source_offset_s"] * 16000)
    assert np.array_equal(samples, read_pcm(path)[start : start + len(samples)])
    assert meta["wake_offset_s"] - meta["source_offset_s"] == 1.52  # 19 frames


def _clip(tmp_path):
    x = read_pcm(AUDIO / "jarvis_pause_command.wav")[: int(4.0 * 16000)]
    return write_pcm(tmp_path / "clip.wav", x)


def test_monitor_without_a_terminal_prints_a_line_per_second_in_real_time(tmp_path):
    clip = _clip(tmp_path)
    models = tmp_path / "models"  # --models-dir, as `run` takes it
    models.mkdir()
    for name in ("melspectrogram", "embedding_model", "hey_jarvis_v0.1"):
        (models / f"{name}.onnx").symlink_to(REPO / "models" / f"{name}.onnx")
    t0 = time.monotonic()
    proc = run_recorder(
        "monitor", "--source", f"file:{clip}", "--model", "hey_jarvis", "--models-dir", models
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    seconds = [line for line in lines if " s  " in line and "level max" in line]
    assert len(seconds) == 4 and elapsed >= 3.5  # paced at 1x, one line per second of audio
    assert [line.split()[0] for line in seconds] == ["0-1", "1-2", "2-3", "3-4"]
    # each second's highest score, not one frame's: the detecting frame is in the third
    maxima = [float(line.split("hey_jarvis=")[1]) for line in seconds]
    wake = next(line for line in lines if line.startswith("wake word hey_jarvis detected"))
    score = float(wake.split("(score ")[1].split(")")[0])
    assert maxima[2] >= score >= 0.5 and maxima[0] < 0.1
    assert "recording" in seconds[-1] and "dBFS" in seconds[-1]
    assert any(line.startswith("would save (dry run): ") for line in lines)
    assert lines[0].startswith("started ") and lines[-1].startswith("stopped ")
    empty = run_recorder("monitor", "--source", f"file:{clip}", "--models-dir", tmp_path)
    assert empty.returncode == 2 and f"{tmp_path}/melspectrogram.onnx" in empty.stderr.decode()


def test_monitor_on_a_terminal_redraws_bars_in_place(tmp_path):
    clip = _clip(tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            str(RECORDER),
            "monitor",
            "--source",
            f"file:{clip}",
            "--model",
            "hey_jarvis",
            "--model",
            "alexa",
        ],
        stdout=slave,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        proc.wait(timeout=20)
        os.close(master)
    text = out.decode(errors="replace")
    redraws = text.count("\x1b[")
    assert redraws > 40  # ~12 redraws a second for 4 s
    frames = re.findall(r"hey_jarvis \[([#^| ]{40})\] (\d\.\d{3})  peak (\d\.\d{3})", text)
    assert len(frames) >= 45
    scores = [float(s) for _, s, _ in frames]
    assert max(scores) > 0.5 and scores[0] < 0.1
    assert any("|" in bar for bar, _, _ in frames)  # the threshold mark
    assert "state: recording" in text
    levels = re.findall(r"  level \[([= ]{40})\] +(-?\d+\.\d) dBFS", text)
    assert len(levels) == len(frames)  # one level bar per redraw, beside the models' bars
    assert any(bar.count("=") > 20 for bar, _ in levels)  # speech: above -40 dBFS
    assert all(bar.count("=") == round((80 + max(-80, float(db))) / 2) for bar, db in levels)
