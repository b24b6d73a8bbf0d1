"""The streaming embedding against openWakeWord's whole network, frame by frame, on real audio.

The reference here is the way openWakeWord computes features: the melspectrogram model on each
frame and the 480 samples before it, then the whole embedding model on the last 76 mel rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, OWW_FIXTURES, read_pcm

from recorder import models
from recorder.audio import FRAME_SAMPLES
from recorder.engines import OpenWakeWordEngine
from recorder.engines import onnx_wire as wire
from recorder.engines.graph_cache import streaming_graph
from recorder.engines.session import session
from recorder.engines.streaming import (
    CHUNK_SAMPLES,
    WARM_UP_FRAMES,
    StreamingEmbedding,
    build,
)
from recorder.errors import RecorderError

PAD = np.zeros(16000, dtype=np.int16)


class WholeWindow:
    """openWakeWord's features: a melspectrogram per frame, the whole network per window."""

    def __init__(self, manifest: models.Manifest):
        self.mel = session(manifest.path(manifest.features["melspectrogram"]))
        self.emb = session(manifest.path(manifest.features["embedding"]))
        self.reset()

    def mel_rows(self, chunk: np.ndarray) -> np.ndarray:
        out = self.mel.run(None, {"input": chunk[None].astype(np.float32)})[0]
        rows: np.ndarray = np.squeeze(out, axis=(0, 1)) / 10.0 + 2.0
        return rows

    def reset(self) -> np.ndarray:
        """76 rows of digital silence; returns their embedding."""
        self.rows = np.tile(self.mel_rows(np.zeros(CHUNK_SAMPLES))[-1], (76, 1))
        return self.embed()

    def embed(self) -> np.ndarray:
        window = self.rows.astype(np.float32)[None, :, :, None]
        embedding: np.ndarray = self.emb.run(None, {"input_1": window})[0].reshape(96)
        return embedding

    def step(self, chunk: np.ndarray) -> np.ndarray:
        self.rows = np.concatenate([self.rows, self.mel_rows(chunk)])[-76:]
        return self.embed()


def chunks(audio: np.ndarray):
    """Each frame with the 480 samples before it (silence before the stream)."""
    padded = np.concatenate([np.zeros(480, dtype=np.float32), audio.astype(np.float32)])
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        yield padded[i : i + CHUNK_SAMPLES]


def real_audio() -> list[tuple[str, np.ndarray]]:
    """openWakeWord's 16 kHz recordings of people, padded with silence, and every scene."""
    clips = sorted(p for p in OWW_FIXTURES.glob("*.wav") if p.name != "activation.wav")
    out = [(p.name, np.concatenate([PAD, read_pcm(p), PAD])) for p in clips]
    out += [(p.stem, read_pcm(p)) for p in sorted(AUDIO.glob("*.wav"))]
    return out


@pytest.fixture(scope="module")
def streaming(manifest):
    embedding = manifest.path(manifest.features["embedding"])
    built = streaming_graph(
        manifest.path(manifest.features["melspectrogram"]), embedding, [], None
    ).built
    return StreamingEmbedding(built, embedding)


def test_every_frame_equals_the_whole_network_on_real_recordings_and_scenes(manifest, streaming):
    whole = WholeWindow(manifest)
    frames = 0
    worst = 0.0
    for name, audio in real_audio():
        # both start from 76 rows of silence's melspectrogram
        assert np.array_equal(whole.reset(), streaming.silent_embedding)
        streaming.reset()
        for c in chunks(audio):
            a, b = streaming.step(c), whole.step(c)
            worst = max(worst, float(np.abs(a - b).max()))
            frames += 1
        # numpy's FFT against the melspectrogram's convolutions: the same spectrum to float
        # rounding; measured worst 7.8e-5 here, on embeddings of magnitude up to about 40
        assert worst < 2e-4, name
    assert frames > 2000  # the fixtures and every scene, frame by frame (172 s)


def test_from_any_held_rows_the_tenth_frame_on_is_exact(manifest, streaming):
    """What the speech gate's back-fill relies on: starting again from silence in the middle of
    speech gives, from the WARM_UP_FRAMES-th frame on, the embeddings of the unbroken stream."""
    audio = read_pcm(AUDIO / "alexa_command.wav")
    pieces = list(chunks(audio))
    streaming.reset()
    unbroken = [streaming.step(c) for c in pieces]
    start = len(pieces) // 3
    streaming.reset()  # silence held, speech coming: the worst case
    restarted = [streaming.step(c) for c in pieces[start:]]
    late = np.abs(
        np.array(restarted[WARM_UP_FRAMES - 1 :]) - unbroken[start + WARM_UP_FRAMES - 1 :]
    )
    assert late.max() < 1e-5
    early = np.abs(np.array(restarted[:3]) - unbroken[start : start + 3])
    assert early.max() > 1e-3  # the first frames do depend on the rows held: the test can fail


def test_scores_equal_the_whole_window_engine_within_1e_4(manifest):
    """Scores from the streaming features against scores from the whole-window features, with
    the same classifiers, on every frame of every scene and real recording."""
    names = ["alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy", "weather"]
    specs = [models.resolve_wake_model(manifest, n) for n in names]
    engine = OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        specs,
    )
    classifiers = [session(s.path) for s in specs]
    whole = WholeWindow(manifest)
    worst = 0.0
    for name, audio in real_audio():
        engine.reset()
        history = np.tile(whole.reset(), (22, 1))  # weather reads 22 embeddings, the rest 16
        for i, c in enumerate(chunks(audio)):
            ours = engine.process(audio[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES])
            history = np.concatenate([history[1:], whole.step(c)[None]])
            for n, clf in zip(names, classifiers, strict=True):
                x = clf.get_inputs()[0]
                ref = float(clf.run(None, {x.name: history[None, -x.shape[1] :]})[0][0][0])
                worst = max(worst, abs(ours[n] - ref))
        assert worst < 1e-4, name


def test_a_network_that_is_not_openwakewords_embedding_is_refused(manifest, tmp_path):
    mel = manifest.path(manifest.features["melspectrogram"])
    with pytest.raises(RecorderError, match="not openWakeWord's embedding network"):
        streaming_graph(mel, manifest.path(manifest.wakewords["alexa"]), [], None)
    broken = tmp_path / "embedding_model.onnx"
    broken.write_bytes(manifest.path(manifest.features["embedding"]).read_bytes()[:5000])
    with pytest.raises(RecorderError, match="embedding_model.onnx"):
        streaming_graph(mel, broken, [], None)


def test_the_wire_format_round_trips_a_model(manifest):
    """A model read and written again computes what the original does."""
    path: Path = manifest.path(manifest.features["melspectrogram"])
    g = wire.read_model(path.read_bytes())
    copy = wire.write_model(
        g.nodes,
        list(g.initializers.values()),
        [wire.value_info(g.inputs[0], (1, "samples"))],
        [wire.value_info(g.outputs[0], (1, 1, "rows", 32))],
        g.opsets,
        g.ir_version,
        "copy",
    )
    x = np.random.default_rng(1).normal(0, 3000, (1, 4000)).astype(np.float32)
    a = session(path).run(None, {"input": x})[0]
    b = session(copy, "copy").run(None, {"input": x})[0]
    assert a.shape == b.shape and np.array_equal(a, b)
    assert wire.read_model(copy).dims == g.dims
    # negative int64 values (a reshape's -1) survive as ten-byte varints
    t = wire.tensor("shape", np.array([-1, 1, 76, 32], dtype=np.int64))
    assert dict(wire.fields(t))[9] == np.array([-1, 1, 76, 32], dtype="<i8").tobytes()
    assert wire._ints(wire._enc_varint(-1)) == [-1]


def test_the_streaming_graph_holds_rows_only_for_the_tall_convolutions(manifest):
    mel = manifest.path(manifest.features["melspectrogram"]).read_bytes()
    emb = manifest.path(manifest.features["embedding"]).read_bytes()
    model, held, merged, _ = build(mel, emb)
    assert merged == []
    # 11 convolutions are 3 rows tall (the first 3x3, nine 3x1, the last one), each holding two
    assert len(held) == 11 and all(h.shape[2] == 2 for h in held)
    assert held[0].shape == (1, 1, 2, 32) and held[-1].shape == (1, 96, 2, 1)
    held_values = sum(int(np.prod(h.shape)) for h in held)
    assert held_values == 9472  # 37 KB held between frames
    assert len(model) < len(mel) + len(emb) + 10_000  # the two models' weights, once each


def opset_12_copy(path: Path, out: Path) -> Path:
    """The same classifier declared for operator set 12 (its operators mean the same there)."""
    g = wire.read_model(path.read_bytes())
    opset = wire._str_field(1, "") + wire._int_field(2, 12)
    out.write_bytes(
        wire.write_model(
            g.nodes,
            list(g.initializers.values()),
            g.input_infos,
            g.output_infos,
            [opset],
            g.ir_version,
            "opset12",
        )
    )
    return out


def test_classifiers_share_the_graph_and_one_of_another_opset_runs_alone(manifest, tmp_path):
    """Every shipped classifier runs in the streaming graph (one onnxruntime call per frame);
    a classifier of another operator set gets its own session and the same scores."""
    names = ["hey_jarvis", "alexa", "hey_mycroft", "weather", "timer"]
    specs = [models.resolve_wake_model(manifest, n) for n in names]
    features = (
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
    )
    shared = OpenWakeWordEngine(*features, specs)
    assert shared._features.merged == list(range(len(names)))
    assert all(c.session is None for c in shared._classifiers)
    alone_path = opset_12_copy(manifest.path(manifest.wakewords["alexa"]), tmp_path / "a.onnx")
    alexa = models.resolve_wake_model(manifest, str(alone_path))
    mixed = OpenWakeWordEngine(*features, [specs[0], alexa])
    assert mixed._features.merged == [0] and mixed._classifiers[1].session is not None
    audio = np.concatenate([PAD, read_pcm(OWW_FIXTURES / "alexa_test.wav"), PAD])
    peak = 0.0
    for i in range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = audio[i : i + FRAME_SAMPLES]
        a, b = shared.process(frame), mixed.process(frame)
        assert a["hey_jarvis"] == b["hey_jarvis"]
        assert a["alexa"] == b[alexa.name]  # bit for bit
        peak = max(peak, a["alexa"])
    assert peak > 0.9


def test_a_classifier_reading_every_held_embedding_takes_them_without_a_slice(manifest):
    mel = manifest.path(manifest.features["melspectrogram"]).read_bytes()
    emb = manifest.path(manifest.features["embedding"]).read_bytes()
    alexa, weather = (
        wire.read_model(manifest.path(manifest.wakewords[n]).read_bytes())
        for n in ("alexa", "weather")
    )

    def slices(model: bytes) -> list[list[str]]:
        nodes = wire.read_model(model).nodes
        return [n.outputs for n in nodes if n.op == "Slice" and n.inputs[0] == "history_next"]

    assert slices(build(mel, emb, [alexa], 16)[0]) == []
    # weather reads all 22 held embeddings, alexa the last 16 of them
    assert slices(build(mel, emb, [alexa, weather], 22)[0]) == [["clf0/onnx::Flatten_0"]]
