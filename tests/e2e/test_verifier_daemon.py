"""The daemon asking the verifier, trained on the real engine's embeddings of a real scene."""

from __future__ import annotations

import json

import numpy as np
from conftest import AUDIO, SCENES, read_pcm, run_recorder

from recorder import config as config_mod
from recorder import verifier
from recorder.pipeline import build_engine
from recorder.sources import chunk


def wake_and_speech_features(scene: str) -> tuple[np.ndarray, np.ndarray]:
    """Features at the frames where hey_jarvis scores >= 0.1 (the wake phrase), and at the
    frames of other speech, from the real engine on a real scene."""
    config = config_mod.load(None)
    engine = build_engine(config)
    wake, other = [], []
    wake_s = [v for k, v in SCENES[scene].items() if k.startswith("wake")]
    for f in chunk(read_pcm(AUDIO / f"{scene}.wav")):
        score = engine.process(f.samples)["hey_jarvis"]
        t = (f.index + 1) * 0.08
        x = verifier.features(engine.recent_embeddings(verifier.WINDOW))
        if score >= 0.1:
            wake.append(x)
        elif not any(a - 1 <= t <= b + 2.5 for a, b in wake_s):
            other.append(x)
    return np.array(wake), np.array(other)


def test_the_daemon_asks_the_verifier_when_the_score_reaches_the_threshold(tmp_path):
    wake, other = wake_and_speech_features("two_requests")
    assert len(wake) >= 4 and len(other) >= 4
    accept = verifier.train("hey_jarvis", wake, other)
    reject = verifier.train("hey_jarvis", other, wake)
    saved = {}
    for name, v in (("accept", accept), ("reject", reject)):
        v.save(tmp_path / f"{name}.npz")
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(f'[wake.per_model.hey_jarvis]\nverifier = "{name}.npz"\n')
        rec = tmp_path / f"rec-{name}"
        proc = run_recorder(
            "run",
            "--source",
            f"file:{AUDIO / 'two_requests.wav'}",
            "--config",
            str(cfg),
            "--recordings",
            str(rec),
        )
        assert proc.returncode == 0, proc.stderr.decode()
        saved[name] = len(list(rec.glob("*.json")))
    assert saved == {"accept": 2, "reject": 0}

    # tune counts what the daemon would: the rejecting verifier leaves no detection
    detected = {}
    for name in ("raw", "accept", "reject"):
        flags = [] if name == "raw" else ["--config", str(tmp_path / f"{name}.toml")]
        proc = run_recorder(
            "tune",
            "--model",
            "hey_jarvis",
            "--positives",
            str(AUDIO / "two_requests.wav"),
            "--negatives",
            str(AUDIO / "command_without_wake.wav"),
            "--thresholds",
            "0.5",
            "--patience",
            "1",
            "--jobs",
            "1",
            "--json",
            *flags,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        [row] = json.loads(proc.stdout)["rows"]
        detected[name] = row["false_reject_rate"]
    assert detected == {"raw": 0.0, "accept": 0.0, "reject": 1.0}


def test_a_verifier_for_another_model_is_refused_at_start(tmp_path):
    rng = np.random.default_rng(0)
    verifier.train("alexa", rng.normal(1, 1, (5, 192)), rng.normal(-1, 1, (5, 192))).save(
        tmp_path / "alexa.npz"
    )
    cfg = tmp_path / "r.toml"
    cfg.write_text('[wake.per_model.hey_jarvis]\nverifier = "alexa.npz"\n')
    proc = run_recorder(
        "run",
        "--source",
        f"file:{AUDIO / 'two_requests.wav'}",
        "--config",
        str(cfg),
        "--recordings",
        str(tmp_path / "rec"),
    )
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and "trained for 'alexa'" in lines[0], lines
