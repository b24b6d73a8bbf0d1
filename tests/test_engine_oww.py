"""The daemon's engine against the openWakeWord package itself, on the same real audio."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import AUDIO, SCENES, oww_fixture, read_pcm

from recorder import models
from recorder.audio import FRAME_SAMPLES
from recorder.engines import OpenWakeWordEngine
from recorder.errors import RecorderError

MODELS = ["alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "weather"]
WARM_UP_S = 2.5  # openWakeWord starts from random features; compare once they are flushed
PAD = np.zeros(16000, dtype=np.int16)


def make_engine(manifest, names):
    specs = [models.resolve_wake_model(manifest, n) for n in names]
    return OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        specs,
    )


@pytest.fixture(scope="module")
def reference(manifest):
    oww_model = pytest.importorskip(  # the reference installs on Python 3.11 only
        "openwakeword.model", reason="needs the openwakeword package (Python 3.11 only)"
    )
    paths = [str(manifest.path(manifest.wakewords[n])) for n in MODELS]
    return oww_model.Model(
        wakeword_models=paths,
        inference_framework="onnx",
        melspec_model_path=str(manifest.path(manifest.features["melspectrogram"])),
        embedding_model_path=str(manifest.path(manifest.features["embedding"])),
    )


def detections(scores: np.ndarray, threshold: float = 0.5, patience: int = 1) -> list[int]:
    """Frames where `patience` consecutive scores first reach the threshold."""
    above = scores >= threshold
    run, out = 0, []
    for i, a in enumerate(above):
        run = run + 1 if a else 0
        if run == patience:
            out.append(i)
    return out


def both(engine, reference, audio):
    engine.reset()
    reference.reset()
    ours, theirs = [], []
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        chunk = audio[i : i + FRAME_SAMPLES]
        a = engine.process(chunk)
        b = reference.predict(chunk)
        ours.append([a[n] for n in MODELS])
        theirs.append([b[f"{n}_v0.1"] for n in MODELS])  # openWakeWord names them by file
    return np.array(ours), np.array(theirs)


def real_stream() -> list[tuple[str, np.ndarray]]:
    clips = [
        "alexa_test.wav",
        "hey_mycroft_test.wav",
        "hey_jane.wav",
        "negative_reference.wav",
        "turn_on_the_office_lights_test_clip.wav",
    ]
    out = [(c, np.concatenate([PAD, read_pcm(oww_fixture(c)), PAD])) for c in clips]
    out += [(s, read_pcm(AUDIO / f"{s}.wav")) for s in ("alexa_command", "two_requests")]
    return out


@pytest.mark.parametrize(
    "name, audio", real_stream(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_scores_and_detections_match_openwakeword(manifest, reference, name, audio):
    engine = make_engine(manifest, MODELS)
    ours, theirs = both(engine, reference, audio)
    settled = int(WARM_UP_S / 0.08)
    assert np.abs(ours[settled:] - theirs[settled:]).max() < 1e-4
    for m in range(len(MODELS)):
        # openWakeWord reports 0 for its first 5 frames; our engine scores them from silence
        assert detections(ours[5:, m]) == detections(theirs[5:, m]), MODELS[m]


def test_shipped_wake_words_are_detected_in_real_recordings(manifest):
    engine = make_engine(manifest, MODELS)
    for clip, model in [("alexa_test.wav", "alexa"), ("hey_mycroft_test.wav", "hey_mycroft")]:
        engine.reset()
        audio = np.concatenate([PAD, read_pcm(oww_fixture(clip)), PAD])
        peaks = {n: 0.0 for n in MODELS}
        for i in range(0, len(audio), FRAME_SAMPLES):
            for n, s in engine.process(audio[i : i + FRAME_SAMPLES]).items():
                peaks[n] = max(peaks[n], s)
        assert peaks[model] > 0.95, clip
        assert all(v < 0.1 for n, v in peaks.items() if n != model), (clip, peaks)


def test_engine_is_deterministic_after_reset(manifest):
    engine = make_engine(manifest, ["hey_jarvis"])
    audio = read_pcm(AUDIO / "jarvis_pause_command.wav")
    runs = []
    for _ in range(2):
        engine.reset()
        runs.append(
            [
                engine.process(audio[i : i + FRAME_SAMPLES])["hey_jarvis"]
                for i in range(0, len(audio), FRAME_SAMPLES)
            ]
        )
    assert runs[0] == runs[1]
    wake_end = SCENES["jarvis_pause_command"]["wake"][1]
    assert max(runs[0]) > 0.5
    assert (np.argmax(runs[0]) + 1) * 0.08 > wake_end


def test_multi_class_model_reports_each_class_by_label(manifest):
    engine = make_engine(manifest, ["hey_jarvis", "timer"])
    assert engine.names == [
        "hey_jarvis",
        "timer:1_minute_timer",
        "timer:5_minute_timer",
        "timer:10_minute_timer",
        "timer:20_minute_timer",
        "timer:30_minute_timer",
        "timer:1_hour_timer",
    ]
    scores = engine.process(np.zeros(FRAME_SAMPLES, dtype=np.int16))
    assert set(scores) == set(engine.names)


def test_custom_model_by_path_and_bad_model_files(manifest, tmp_path):
    path = manifest.path(manifest.wakewords["hey_rhasspy"])
    spec = models.resolve_wake_model(manifest, str(path))
    assert spec.name == "hey_rhasspy_v0.1"
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(RecorderError, match="broken.onnx"):
        make_engine(manifest, [str(bad)])
    with pytest.raises(RecorderError, match="not an openWakeWord classifier"):
        make_engine(manifest, [str(manifest.path(manifest.features["embedding"]))])
    with pytest.raises(RecorderError, match="unknown model 'hey_nobody'"):
        models.resolve_wake_model(manifest, "hey_nobody")


def all_test_audio() -> list[tuple[str, np.ndarray]]:
    out = [(p.stem, read_pcm(p)) for p in sorted(AUDIO.glob("*.wav"))]
    for name in [
        "alexa_test.wav",
        "hey_mycroft_test.wav",
        "hey_jane.wav",
        "negative_reference.wav",
        "turn_on_the_office_lights_test_clip.wav",
    ]:
        out.append((name, np.concatenate([PAD, read_pcm(oww_fixture(name)), PAD])))
    # a quiet room: the noise bed before each scene's first phrase
    out.append(("quiet", np.concatenate([a[: int(1.9 * 16000)] for _, a in out[:8]])))
    return out


def test_speech_gate_changes_no_detection_and_no_score_near_speech(manifest):
    from recorder.vad import gate_vad

    names = [*MODELS, "timer"]
    ungated = make_engine(manifest, names)
    specs = [models.resolve_wake_model(manifest, n) for n in names]
    gated = OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        specs,
        gate=gate_vad(),
    )
    assert gated.hold_frames >= 34 + 76 // 8  # timer's 34-embedding window, plus one embedding
    frames = closed = 0
    for name, audio in all_test_audio():
        ungated.reset()
        gated.reset()
        a_runs, b_runs, open_flags = [], [], []
        for i in range(0, len(audio), FRAME_SAMPLES):
            chunk = audio[i : i + FRAME_SAMPLES]
            a, b = ungated.process(chunk), gated.process(chunk)
            a_runs.append([a[n] for n in gated.names])
            b_runs.append([b[n] for n in gated.names])
            open_flags.append(gated._gate_open)
        a_arr, b_arr, is_open = np.array(a_runs), np.array(b_runs), np.array(open_flags)
        frames += len(is_open)
        closed += int((~is_open).sum())
        assert np.array_equal(a_arr[is_open], b_arr[is_open]), name  # bit for bit
        assert (b_arr[~is_open] == 0).all()
        for m in range(a_arr.shape[1]):
            assert detections(a_arr[:, m]) == detections(b_arr[:, m]), (name, gated.names[m])
    assert closed / frames > 0.1  # the gate really closes in the quiet parts of this audio
    quiet = dict(all_test_audio())["quiet"]
    gated.reset()
    open_frames = 0
    for i in range(0, len(quiet), FRAME_SAMPLES):
        gated.process(quiet[i : i + FRAME_SAMPLES])
        open_frames += gated._gate_open
    assert open_frames / (len(quiet) / FRAME_SAMPLES) < 0.5  # a noise bed mostly keeps it shut


class _CountingSession:
    """The real onnxruntime session, counting its runs."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)

    def run_with_iobinding(self, *args, **kwargs):
        self.runs += 1
        return self.session.run_with_iobinding(*args, **kwargs)


def test_a_shut_gate_runs_no_model_and_opening_back_fills_only_what_was_missed(manifest):
    from recorder.vad import gate_vad

    gated = OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [models.resolve_wake_model(manifest, "hey_jarvis")],
        gate=gate_vad(),
    )
    features = _CountingSession(gated._features._session)
    gated._features._session = features
    quiet = np.zeros(50 * FRAME_SAMPLES, dtype=np.int16)
    for i in range(0, len(quiet), FRAME_SAMPLES):
        assert gated.process(quiet[i : i + FRAME_SAMPLES]) == {"hey_jarvis": 0.0}
    assert features.runs == 0  # a quiet room costs the gate's VAD only
    speech = read_pcm(oww_fixture("alexa_test.wav"))
    first = next(
        i
        for i in range(0, len(speech), FRAME_SAMPLES)
        if gated.gate.is_speech(speech[i : i + FRAME_SAMPLES])
    )
    for i in range(0, first + FRAME_SAMPLES, FRAME_SAMPLES):
        gated.process(speech[i : i + FRAME_SAMPLES])
    # the gate opened on the first speech frame: one catch-up over the ring, the 16 embeddings
    # the classifier reads and the 9 frames before them that warm the streaming layers up
    ring = 16 + 76 // 8
    assert features.runs == ring
    gated.process(speech[first + FRAME_SAMPLES : first + 2 * FRAME_SAMPLES])
    assert features.runs == ring + 1  # then one per frame


def test_reset_makes_a_new_gate_so_the_room_heard_before_is_forgotten(manifest):
    from recorder.vad import LevelGate, gate_vad

    engine = OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [models.resolve_wake_model(manifest, "hey_jarvis")],
        new_gate=gate_vad,
    )
    assert isinstance(engine.gate, LevelGate) and engine.gate.floor_db is None
    noise = np.random.default_rng(0).normal(0, 300, FRAME_SAMPLES).astype(np.int16)
    engine.process(noise)
    first = engine.gate
    assert first.floor_db is not None  # the gate has learnt the room's floor
    engine.reset()
    assert engine.gate is not first and engine.gate.floor_db is None
    assert engine.takes_verifier("hey_jarvis") and not engine.takes_verifier("okay_nabu")
    assert engine.embeddings is not None and engine.embeddings(16).shape == (16, 96)
    assert dict(engine.default_thresholds) == {}


class _ScheduledGate:
    """A speech gate that hears speech once it has been given `start` samples."""

    def __init__(self, start: int):
        self.start, self.heard = start, 0

    def is_speech(self, samples: np.ndarray) -> bool:
        self.heard += len(samples)
        return self.heard > self.start


def _frames_of_other_lengths(audio: np.ndarray) -> list[np.ndarray]:
    """80 ms frames, 700 samples and 2000 samples in turn (3 kinds: not a ring's length)."""
    out, start = [], 0
    for n in itertools.cycle([FRAME_SAMPLES, 700, 2000]):
        if start >= len(audio):
            return out
        out.append(audio[start : start + n])
        start += n
    raise AssertionError("unreachable")


def test_frames_of_other_lengths_are_padded_or_cut_and_kept_for_the_back_fill(manifest):
    """Short frames scored as if padded with silence, long ones as if cut to 80 ms, also when
    they are scored late: a gate shut for longer than the engine keeps, then open."""
    specs = [models.resolve_wake_model(manifest, n) for n in ("alexa", "weather")]
    features = (
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
    )
    ungated = OpenWakeWordEngine(*features, specs)
    clip = read_pcm(oww_fixture("alexa_test.wav"))
    # noise while the gate is shut, for longer than the engine keeps; then the word (0.6 s) in
    # whole frames, which the gate hears only as it ends: only the back-fill can score it
    before = np.random.default_rng(5).normal(0, 300, 5 * ungated._ring_frames * FRAME_SAMPLES)
    frames = _frames_of_other_lengths(before.astype(np.int16))
    frames += [clip[i : i + FRAME_SAMPLES] for i in range(0, len(clip), FRAME_SAMPLES)]
    frames += _frames_of_other_lengths(np.concatenate([PAD, PAD]))
    gated = OpenWakeWordEngine(
        *features, specs, gate=_ScheduledGate(len(before) + len(clip) - FRAME_SAMPLES)
    )
    compared, peak = 0, 0.0
    for frame in frames:
        padded = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        padded[: min(len(frame), FRAME_SAMPLES)] = frame[:FRAME_SAMPLES]
        ours, reference = gated.process(frame), ungated.process(padded)
        if gated._gate_open:
            assert ours == reference  # bit for bit
            compared += 1
            peak = max(peak, ours["alexa"])
        else:
            assert ours == {"alexa": 0.0, "weather": 0.0}
    assert compared > 10 and peak > 0.9
