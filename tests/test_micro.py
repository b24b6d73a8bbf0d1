"""microWakeWord: our engine against pymicro-wakeword's own streaming loop, names, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, REPO, SCENES, oww_fixture, read_pcm

from recorder import models
from recorder.audio import FRAME_SAMPLES
from recorder.config import Config, ModelOverride, WakeConfig
from recorder.engines import CompositeEngine, MicroWakeWordEngine, OpenWakeWordEngine
from recorder.errors import RecorderError
from recorder.pipeline import build_engine, engine_thresholds

mww = pytest.importorskip("pymicro_wakeword", reason="needs recorder[micro]")

MICRO = ["okay_nabu", "micro:hey_jarvis", "micro:alexa", "micro:hey_mycroft"]
MWW_FIXTURES = REPO / "tests" / "fixtures" / "microwakeword"
PAD = np.zeros(16000, dtype=np.int16)
CHUNK = 160  # pymicro-wakeword's own loop, fed 10 ms at a time


def config_for(*names: str, **wake) -> Config:
    return Config(wake=WakeConfig(models=names, **wake))


def reference(key: str, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pymicro-wakeword alone, 10 ms at a time: per 80 ms frame the highest probability its
    `process_streaming_prob` returned, and whether its `process_streaming` detected."""
    model = mww.Model(key)
    probs_model = mww.MicroWakeWord.from_builtin(model)
    detect_model = mww.MicroWakeWord.from_builtin(model)
    f_probs, f_detect = mww.MicroWakeWordFeatures(), mww.MicroWakeWordFeatures()
    n_frames = -(-len(audio) // FRAME_SAMPLES)
    scores, detected = np.zeros(n_frames), np.zeros(n_frames, dtype=bool)
    pcm = audio.astype("<i2").tobytes()
    for c in range(0, len(audio), CHUNK):
        frame = c // FRAME_SAMPLES
        for row in f_probs.process_streaming(pcm[2 * c : 2 * (c + CHUNK)]):
            scores[frame] = max(scores[frame], probs_model.process_streaming_prob(row))
        for row in f_detect.process_streaming(pcm[2 * c : 2 * (c + CHUNK)]):
            detected[frame] |= bool(detect_model.process_streaming(row))
    return scores, detected


def ours(engine, audio: np.ndarray, names: list[str]) -> np.ndarray:
    engine.reset()
    rows = []
    for i in range(0, len(audio), FRAME_SAMPLES):
        s = engine.process(audio[i : i + FRAME_SAMPLES].astype(np.float32))
        rows.append([s[n] for n in names])
    return np.array(rows)


def streams() -> list[tuple[str, np.ndarray]]:
    real = [MWW_FIXTURES / f"okay_nabu_{i}.wav" for i in (1, 2)]
    real += [oww_fixture(c) for c in ("alexa_test.wav", "hey_mycroft_test.wav", "hey_jane.wav")]
    out = [(p.name, np.concatenate([PAD, read_pcm(p), PAD])) for p in real]
    scenes = ["nabu_pause_command", "nabu_runon_command", "speech_then_nabu", "nabu_two_requests"]
    out += [(s, read_pcm(AUDIO / f"{s}.wav")) for s in [*scenes, "two_requests"]]
    return out


# which (stream, model) pairs must detect: the parity must hold on real detections too
MUST_DETECT = {
    ("okay_nabu_1.wav", "okay_nabu"),
    ("okay_nabu_2.wav", "okay_nabu"),
    ("alexa_test.wav", "micro:alexa"),
    ("hey_mycroft_test.wav", "micro:hey_mycroft"),
    ("nabu_pause_command", "okay_nabu"),
    ("nabu_runon_command", "okay_nabu"),
    ("speech_then_nabu", "okay_nabu"),
    ("nabu_two_requests", "okay_nabu"),
}


@pytest.fixture(scope="module")
def engine():
    return build_engine(config_for(*MICRO))


@pytest.mark.parametrize("name, audio", streams(), ids=lambda v: v if isinstance(v, str) else "")
def test_scores_and_detections_equal_pymicro_wakewords_own_loop(engine, name, audio):
    assert isinstance(engine, MicroWakeWordEngine)
    got = ours(engine, audio, MICRO)
    thresholds = engine_thresholds(config_for(*MICRO), engine)
    for k, model in enumerate(MICRO):
        want, detected = reference(model.removeprefix("micro:"), audio)
        np.testing.assert_array_equal(got[:, k], want, err_msg=f"{name} {model}")
        ours_detect = got[:, k] >= thresholds[model]
        np.testing.assert_array_equal(ours_detect, detected, err_msg=f"{name} {model}")
        assert detected.any() == ((name, model) in MUST_DETECT), (name, model)


def test_the_machine_detects_where_pymicro_wakeword_does_and_keeps_no_audio_before_the_phrase():
    """The daemon's own step over an Okay Nabu scene: one request per wake phrase, detected at
    the frame where pymicro-wakeword first detects, kept from inside the phrase to past the
    command."""
    from recorder.audio import Frame
    from recorder.machine import UtteranceReady, WakeDetected
    from recorder.pipeline import build_machine, build_vad, step

    config = config_for("okay_nabu")
    engine = build_engine(config)
    machine, vad = build_machine(config, engine), build_vad(config)
    machine.start()
    audio = read_pcm(AUDIO / "nabu_two_requests.wav")
    _, detected = reference("okay_nabu", audio)
    wakes, ready = [], []
    for i in range(len(audio) // FRAME_SAMPLES):
        x = audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].astype(np.float32)
        a = step(machine, engine, vad, Frame(i, x))
        assert a is not None
        wakes += [e.frame_index for e in a.events if isinstance(e, WakeDetected)]
        ready += [e for e in a.events if isinstance(e, UtteranceReady)]
    first_detections = [i for i in np.flatnonzero(detected) if i == 0 or not detected[i - 1]]
    assert wakes == first_detections and len(wakes) == 2
    assert len(ready) == 2
    frame_s = FRAME_SAMPLES / 16000
    for u, (wake, command) in zip(ready, (("wake", "command"), ("wake2", "command2")), strict=True):
        (w0, w1), (_, c1) = SCENES["nabu_two_requests"][wake], SCENES["nabu_two_requests"][command]
        assert w0 - frame_s < u.start_frame * frame_s < w1, (wake, u.start_frame)
        assert u.end_frame * frame_s > c1
        np.testing.assert_array_equal(
            u.audio, audio[u.start_frame * FRAME_SAMPLES : u.end_frame * FRAME_SAMPLES]
        )


def test_names_defaults_and_per_model_overrides(manifest):
    spec = models.resolve_wake_model(manifest, "okay_nabu")
    assert isinstance(spec, models.MicroModelSpec) and spec.name == "okay_nabu"
    assert models.resolve_wake_model(manifest, "micro:okay_nabu").name == "okay_nabu"
    jarvis = models.resolve_wake_model(manifest, "micro:hey_jarvis")
    assert isinstance(jarvis, models.MicroModelSpec) and jarvis.name == "micro:hey_jarvis"
    assert isinstance(models.resolve_wake_model(manifest, "hey_jarvis"), models.WakeModelSpec)
    # the cutoff as microWakeWord reads it from the JSON; the least score above it detects
    cutoff = json.loads(spec.config.read_text())["micro"]["probability_cutoff"]
    assert spec.probability_cutoff == cutoff and spec.default_threshold > cutoff
    assert np.nextafter(spec.default_threshold, 0) == cutoff
    config = config_for(
        "okay_nabu",
        "micro:hey_jarvis",
        "alexa",
        threshold=0.4,
        per_model={"micro:hey_jarvis": ModelOverride(threshold=0.6, patience=3)},
    )
    engine = build_engine(config)
    assert isinstance(engine, CompositeEngine)
    assert engine.names == ["alexa", "okay_nabu", "micro:hey_jarvis"]
    t = engine_thresholds(config, engine)
    assert t == {"alexa": 0.4, "okay_nabu": spec.default_threshold, "micro:hey_jarvis": 0.6}
    assert config.wake.patience_for("micro:hey_jarvis") == 3


def test_a_path_to_a_json_and_tflite_pair(tmp_path, manifest):
    package = models.micro_package_dir("okay_nabu")
    for suffix in (".json", ".tflite"):
        (tmp_path / f"my_nabu{suffix}").write_bytes((package / f"okay_nabu{suffix}").read_bytes())
    data = json.loads((tmp_path / "my_nabu.json").read_text())
    data["model"] = "my_nabu.tflite"
    (tmp_path / "my_nabu.json").write_text(json.dumps(data))
    for given in ("my_nabu.json", "my_nabu.tflite"):
        spec = models.resolve_wake_model(manifest, str(tmp_path / given))
        assert isinstance(spec, models.MicroModelSpec) and spec.name == "my_nabu"
    engine = MicroWakeWordEngine([spec])
    audio = read_pcm(AUDIO / "nabu_pause_command.wav")
    assert ours(engine, audio, ["my_nabu"]).max() > spec.probability_cutoff


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("micro"), 'not a microWakeWord model (no "model" and "micro")'),
        (lambda d: d["micro"].update(probability_cutoff=1.5), "probability_cutoff must be"),
        (lambda d: d["micro"].update(sliding_window_size=0), "sliding_window_size must be"),
        (lambda d: d.update(model="missing.tflite"), "missing.tflite cannot be read"),
        (lambda d: d.update(model="my.json"), "is not a TensorFlow Lite model"),
    ],
)
def test_a_bad_micro_model_is_one_clear_error(tmp_path, manifest, change, message):
    package = models.micro_package_dir("okay_nabu")
    data = json.loads((package / "okay_nabu.json").read_text())
    (tmp_path / "okay_nabu.tflite").write_bytes((package / "okay_nabu.tflite").read_bytes())
    data["model"] = "okay_nabu.tflite"
    change(data)
    (tmp_path / "my.json").write_text(json.dumps(data))
    with pytest.raises(RecorderError, match="micro model .*my.json: ") as e:
        models.resolve_wake_model(manifest, str(tmp_path / "my.json"))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unknown_names_list_both_kinds(manifest):
    with pytest.raises(RecorderError) as e:
        models.resolve_wake_model(manifest, "okay_nab")
    assert "okay_nabu" in str(e.value) and "micro:hey_jarvis" in str(e.value)


def test_composite_shares_the_audio_and_serves_the_openwakeword_embeddings(manifest):
    config = config_for("hey_jarvis", "okay_nabu")
    both = build_engine(config)
    assert isinstance(both, CompositeEngine)
    alone_oww = build_engine(config_for("hey_jarvis"))
    alone_micro = build_engine(config_for("okay_nabu"))
    assert isinstance(alone_oww, OpenWakeWordEngine)
    audio = np.concatenate(
        [read_pcm(AUDIO / "two_requests.wav"), read_pcm(AUDIO / "nabu_pause_command.wav")]
    )
    got = ours(both, audio, ["hey_jarvis", "okay_nabu"])
    np.testing.assert_array_equal(got[:, 0], ours(alone_oww, audio, ["hey_jarvis"])[:, 0])
    np.testing.assert_array_equal(got[:, 1], ours(alone_micro, audio, ["okay_nabu"])[:, 0])
    assert got[:, 0].max() > 0.5 and got[:, 1].max() > 0.85
    np.testing.assert_array_equal(both.recent_embeddings(16), alone_oww.recent_embeddings(16))
    assert both.gate is not None and not hasattr(alone_micro, "recent_embeddings")
    micro_only = CompositeEngine([alone_micro])
    assert not hasattr(micro_only, "recent_embeddings") and micro_only.gate is None
    with pytest.raises(RecorderError, match="same name"):
        CompositeEngine([alone_oww, build_engine(config_for("hey_jarvis"))])


def test_without_pymicro_wakeword_a_micro_model_is_a_one_line_error(tmp_path):
    """The optional package blocked from import, as if not installed: exit 2, one line."""
    wav = tmp_path / "x.wav"
    wav.write_bytes((AUDIO / "nabu_pause_command.wav").read_bytes())
    rec = tmp_path / "rec"
    code = (
        "import sys; sys.modules['pymicro_wakeword'] = None\n"
        "from recorder.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    runs = {
        "okay_nabu": ["score", "--model", "okay_nabu", str(wav)],
        "micro:alexa": ["run", "--model", "micro:alexa", "--source", f"file:{wav}"],
    }
    for name, args in runs.items():
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                *args,
                *(["--recordings", str(rec)] if args[0] == "run" else []),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (
            f"recorder: error: micro model {name} needs the optional package pymicro-wakeword: "
            "pip install 'recorder[micro]'\n"
        )
        assert not rec.exists() or not any(rec.iterdir())
    # openWakeWord models need nothing of it
    proc = subprocess.run(
        [sys.executable, "-c", code, "score", "--model", "hey_jarvis", str(wav)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_models_list_shows_both_kinds_with_licences():
    from conftest import run_recorder

    proc = run_recorder("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["okay_nabu"]["kind"] == "micro wake word"
    assert rows["okay_nabu"]["licence"] == "Apache-2.0" and rows["okay_nabu"]["status"] == "ok"
    assert rows["micro:hey_jarvis"]["kind"] == "micro wake word"
    assert Path(rows["micro:hey_jarvis"]["path"]).name == "hey_jarvis.json"
    assert rows["hey_jarvis"]["kind"] == "wake word"
    assert rows["hey_jarvis"]["licence"] == "CC-BY-NC-SA-4.0"
    text = run_recorder("models", "list").stdout.decode()
    assert any(
        line.startswith("micro:alexa") and "Apache-2.0" in line for line in text.splitlines()
    )
