"""The microWakeWord engine against pymicro-wakeword's own streaming loop, on the same audio."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import AUDIO, REPO, SCENES, oww_fixture, read_pcm

from recorder import models
from recorder.audio import FRAME_SAMPLES
from recorder.config import Config, ModelOverride, WakeConfig
from recorder.engines.composite import CompositeEngine
from recorder.errors import RecorderError
from recorder.pipeline import build_engine, build_machine, build_verifiers, thresholds
from recorder.sources import chunk

mww = pytest.importorskip(
    "pymicro_wakeword", reason="needs pymicro-wakeword (wakeword-recorder[micro])"
)

CHUNK = 160  # pymicro-wakeword's 10 ms
PAD = np.zeros(16000, dtype=np.int16)
BUILTIN = {"okay_nabu": "okay_nabu", "micro:hey_jarvis": "hey_jarvis"}
BUILTIN |= {"micro:alexa": "alexa", "micro:hey_mycroft": "hey_mycroft"}


def engine_for(*names: str):
    return build_engine(Config(wake=WakeConfig(models=names)))


def reference(model: str, audio: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """pymicro-wakeword's own loop, fed 10 ms at a time: each 80 ms frame's highest
    probability (the sliding-window mean) and the frames where it detects."""
    wake = mww.MicroWakeWord.from_builtin(mww.Model(model))
    features = mww.MicroWakeWordFeatures()
    # a second instance makes the detections with pymicro-wakeword's own process_streaming
    deciding, deciding_features = (
        mww.MicroWakeWord.from_builtin(mww.Model(model)),
        mww.MicroWakeWordFeatures(),
    )
    n_frames = len(audio) // FRAME_SAMPLES
    best, detected = np.zeros(n_frames), set()
    for c in range(n_frames * FRAME_SAMPLES // CHUNK):
        frame = c * CHUNK // FRAME_SAMPLES
        pcm = audio[c * CHUNK : (c + 1) * CHUNK].tobytes()
        for f in features.process_streaming(pcm):
            p = wake.process_streaming_prob(f)
            best[frame] = max(best[frame], p)
        for f in deciding_features.process_streaming(pcm):
            if deciding.process_streaming(f):
                detected.add(frame)
    return best, sorted(detected)


def ours(engine, audio: np.ndarray) -> dict[str, np.ndarray]:
    engine.reset()
    rows = [engine.process(f.samples) for f in chunk(audio) if len(f.samples) == FRAME_SAMPLES]
    return {n: np.array([r[n] for r in rows]) for n in engine.names}


def audio_cases() -> list[tuple[str, np.ndarray]]:
    real = ["alexa_test.wav", "hey_mycroft_test.wav", "hey_jane.wav", "negative_reference.wav"]
    out = [(c, np.concatenate([PAD, read_pcm(oww_fixture(c)), PAD])) for c in real]
    # people saying "Okay Nabu" (pymicro-wakeword's test recordings)
    nabu = [REPO / "tests" / "fixtures" / "microwakeword" / f"okay_nabu_{i}.wav" for i in (1, 2)]
    out += [(p.name, np.concatenate([PAD, read_pcm(p), PAD])) for p in nabu]
    scenes = ["nabu_pause_command", "nabu_two_requests", "speech_then_nabu", "nabu_and_jarvis"]
    return out + [(s, read_pcm(AUDIO / f"{s}.wav")) for s in scenes]


@pytest.mark.parametrize(
    "name, audio", audio_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_scores_and_detections_equal_pymicro_wakewords_own_loop(name, audio):
    engine = engine_for(*BUILTIN)
    limits = thresholds(Config(), engine)
    got = ours(engine, audio)
    for ours_name, model in BUILTIN.items():
        best, detected = reference(model, audio)
        assert np.array_equal(got[ours_name], best), (name, ours_name)
        ours_detected = np.flatnonzero(got[ours_name] >= limits[ours_name]).tolist()
        assert ours_detected == detected, (name, ours_name)


def test_real_and_synthesized_wake_words_are_detected():
    engine = engine_for(*BUILTIN)
    limits = thresholds(Config(), engine)
    expect = {
        "alexa_test.wav": "micro:alexa",
        "hey_mycroft_test.wav": "micro:hey_mycroft",
        "okay_nabu_1.wav": "okay_nabu",
        "okay_nabu_2.wav": "okay_nabu",
        "nabu_pause_command": "okay_nabu",
        "speech_then_nabu": "okay_nabu",
    }
    for name, audio in audio_cases():
        got = ours(engine, audio)
        fired = {n for n in engine.names if (got[n] >= limits[n]).any()}
        if name in expect:
            assert expect[name] in fired, (name, fired)
        if name in ("hey_jane.wav", "negative_reference.wav"):
            assert fired == set(), name


def test_okay_nabu_is_detected_after_the_phrase_starts_and_before_the_command():
    engine = engine_for("okay_nabu")
    machine = build_machine(Config(wake=WakeConfig(models=("okay_nabu",))), engine)
    marks = SCENES["nabu_two_requests"]
    audio = read_pcm(AUDIO / "nabu_two_requests.wav")
    scores = ours(engine, audio)["okay_nabu"]
    threshold = machine.settings.thresholds["okay_nabu"]
    onsets = [i for i in range(1, len(scores)) if scores[i] >= threshold > scores[i - 1]]
    assert len(onsets) == 2
    phrases = [("wake", "command"), ("wake2", "command2")]
    for onset, (wake, command) in zip(onsets, phrases, strict=True):
        t = (onset + 1) * FRAME_SAMPLES / 16000
        assert marks[wake][0] < t <= marks[command][0] + 0.5, (wake, t)
        # where the score begins to rise (the machine's look-back floor) is inside the phrase
        rise = onset
        while rise > 0 and scores[rise - 1] >= threshold / 10:
            rise -= 1
        assert rise * FRAME_SAMPLES / 16000 >= marks[wake][0], (wake, rise)


def test_default_thresholds_and_overrides():
    engine = engine_for("okay_nabu", "hey_jarvis")
    assert isinstance(engine, CompositeEngine)
    own = thresholds(Config(), engine)
    assert own["hey_jarvis"] == 0.5
    assert own["okay_nabu"] == math.nextafter(0.85, 1.0)  # "above the cutoff", as microWakeWord
    cfg = Config(wake=WakeConfig(models=("okay_nabu", "hey_jarvis"), threshold=0.7))
    assert set(thresholds(cfg, engine).values()) == {0.7}
    tomlish = Config(
        wake=WakeConfig(
            models=("okay_nabu",), per_model={"okay_nabu": ModelOverride(threshold=0.9)}
        )
    )
    assert thresholds(tomlish, engine)["okay_nabu"] == 0.9


def test_both_engines_share_the_audio_and_keep_their_own_scores():
    audio = read_pcm(AUDIO / "nabu_and_jarvis.wav")
    both = ours(engine_for("okay_nabu", "hey_jarvis"), audio)
    alone = {**ours(engine_for("okay_nabu"), audio), **ours(engine_for("hey_jarvis"), audio)}
    assert set(both) == {"okay_nabu", "hey_jarvis"}
    for name in both:
        assert np.array_equal(both[name], alone[name]), name
    composite = engine_for("okay_nabu", "hey_jarvis")
    assert composite.embeddings is not None  # openWakeWord's, for the verifiers
    assert composite.embeddings(16).shape == (16, 96)
    assert composite.takes_verifier("hey_jarvis") and not composite.takes_verifier("okay_nabu")
    micro = engine_for("okay_nabu")
    assert micro.embeddings is None and not hasattr(micro, "recent_embeddings")


def test_names_paths_and_bad_micro_models(tmp_path):
    manifest = models.load_manifest()
    assert models.is_micro(manifest, "okay_nabu") and models.is_micro(manifest, "micro:alexa")
    assert not models.is_micro(manifest, "hey_jarvis")  # openWakeWord's
    spec = models.resolve_micro_model(manifest, "okay_nabu")
    assert (spec.probability_cutoff, spec.sliding_window_size) == (0.85, 5)
    with pytest.raises(RecorderError, match="unknown microWakeWord model 'micro:nope'.*okay_nabu"):
        models.resolve_micro_model(manifest, "micro:nope")
    # a JSON + TFLite pair given by path, named by its file
    pair = tmp_path / "pair"
    pair.mkdir()
    shutil.copy(spec.model, pair / "mine.tflite")
    settings = json.loads(spec.config.read_text())
    settings["model"] = "mine.tflite"
    (pair / "nabu2.json").write_text(json.dumps(settings))
    audio = read_pcm(AUDIO / "nabu_pause_command.wav")
    by_path = ours(engine_for(str(pair / "nabu2.json")), audio)["nabu2"]
    assert np.array_equal(by_path, ours(engine_for("okay_nabu"), audio)["okay_nabu"])
    bad = {
        "no micro": ({"model": "mine.tflite"}, 'no "micro" object'),
        "cutoff": ({**settings, "micro": {"probability_cutoff": 1.5}}, "probability_cutoff"),
        "window": (
            {**settings, "micro": {"probability_cutoff": 0.5, "sliding_window_size": 0}},
            "sliding_window_size",
        ),
        "escape": ({**settings, "model": "../mine.tflite"}, '"model" must name'),
        "absent": ({**settings, "model": "gone.tflite"}, "gone.tflite"),
    }
    for case, (data, message) in bad.items():
        path = pair / f"{case.replace(' ', '_')}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(RecorderError, match=message) as e:
            models.resolve_micro_model(manifest, str(path))
        assert "\n" not in str(e.value)
    (pair / "junk.tflite").write_bytes(b"\0" * 64)
    path = pair / "junk.json"
    path.write_text(json.dumps({**settings, "model": "junk.tflite"}))
    with pytest.raises(RecorderError, match="not a TFLite model"):
        models.resolve_micro_model(manifest, str(path))


def test_a_verifier_is_refused_for_a_micro_model(tmp_path):
    cfg = Config(
        wake=WakeConfig(
            models=("okay_nabu",), per_model={"okay_nabu": ModelOverride(verifier="v.npz")}
        )
    )
    with pytest.raises(RecorderError, match="only openWakeWord models take a verifier"):
        build_verifiers(cfg, engine_for("okay_nabu"))


def test_without_pymicro_wakeword_a_micro_model_is_one_line_and_exit_2(tmp_path):
    code = (
        "import sys; sys.modules['pymicro_wakeword'] = None; "
        "from recorder.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    scene = AUDIO / "nabu_pause_command.wav"
    for model in ("okay_nabu", "micro:hey_jarvis"):
        proc = subprocess.run(
            [sys.executable, "-c", code, "run", "--source", f"file:{scene}", "--model", model]
            + ["--recordings", str(tmp_path / "rec"), "--dry-run"],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "pymicro-wakeword" in lines[0] and model in lines[0], lines
        assert "wakeword-recorder[micro]" in lines[0]
    listed = subprocess.run(
        [sys.executable, "-c", code, "models", "list"], capture_output=True, text=True
    )
    assert listed.returncode == 0 and "not installed" in listed.stdout


def test_score_gives_each_file_the_same_result_whatever_came_before():
    from recorder.tools.jobs import Job, Worker

    config = Config(wake=WakeConfig(models=("okay_nabu", "hey_jarvis")))
    scene = str(AUDIO / "nabu_and_jarvis.wav")
    alone = Worker(config, build_engine(config), lambda _s: None).run(Job("score", scene))
    worker = Worker(config, build_engine(config), lambda _s: None)
    worker.run(Job("score", str(AUDIO / "speech_then_wake.wav")))  # speech at its end
    after = worker.run(Job("score", scene))
    assert alone.scores is not None and after.scores is not None
    assert np.array_equal(np.asarray(alone.scores), np.asarray(after.scores))


def test_train_verifier_refuses_a_micro_model(tmp_path):
    from conftest import run_recorder

    proc = run_recorder("train-verifier", "--model", "okay_nabu", "--state-dir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().splitlines() == [
        "recorder: error: train-verifier: okay_nabu is a microWakeWord model; a verifier reads "
        "openWakeWord's embeddings, so only openWakeWord models take one"
    ]
