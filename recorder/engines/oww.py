"""openWakeWord-compatible streaming wake-word engine on onnxruntime.

The feature pipeline is openWakeWord's: every 80 ms frame, the melspectrogram model runs on the
frame plus the previous 480 samples (8 new mel rows, transformed x/10 + 2); the embedding model
reads the last 76 mel rows (one 96-value embedding per frame); each classifier runs on its last
N embeddings (16 for most models). The embedding is computed streaming (`streaming.py`): each
layer of the network computes only its rows that are new in this frame's window, about an
eighth of the work, with the same result. The stream is treated as if it were preceded by
digital silence, so the first frames are scored deterministically.

Speech gate (optional): the features are most of the cost, and most of a smart speaker's day is
silence. With a gate, only the gate's VAD runs on every frame: the engine keeps the raw audio of
the frames its windows read (a bounded ring of about 2 s) and computes features and scores only
while the gate's VAD has heard speech within the last `hold_frames` (the classifier window plus
one embedding window), and every other frame scores 0. When the gate opens, the embeddings of
the frames heard while it was shut are back-filled from the ring, so every frame whose window
holds speech gets the score the ungated engine would give.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recorder.audio import FRAME_SAMPLES
from recorder.engines.base import Embeddings
from recorder.engines.graph_cache import ClassifierInfo, discard, remember, streaming_graph
from recorder.engines.session import session
from recorder.engines.streaming import (
    CHUNK_SAMPLES,
    EMBEDDING_WINDOW,
    MEL_ROWS_PER_FRAME,
    WARM_UP_FRAMES,
    StreamingEmbedding,
)
from recorder.errors import RecorderError
from recorder.models import WakeModelSpec
from recorder.vad import SpeechDetector


class _Classifier:
    """A classifier's window and score names (its graph is in the streaming graph, or, when it
    cannot run there, in a session of its own)."""

    def __init__(self, spec: WakeModelSpec, info: ClassifierInfo):
        self.path = spec.path
        self.input_name = info.input_name
        self.n_embeddings = info.n_embeddings
        if info.n_out == 1:
            self.names = [spec.name]
            self.columns = [0]
        else:  # multi-class: class 0 is background
            self.columns = list(range(1, info.n_out))
            self.names = [f"{spec.name}:{info.labels.get(i, str(i))}" for i in self.columns]
        self.session: Any = None
        """Its own session, when it cannot run in the streaming graph."""


class OpenWakeWordEngine:
    """Streaming melspectrogram and embedding -> classifiers, one frame at a time."""

    def __init__(
        self,
        melspectrogram: Path,
        embedding: Path,
        wake_models: Sequence[WakeModelSpec],
        gate: SpeechDetector | None = None,
        new_gate: Callable[[], SpeechDetector] | None = None,
        cache: Path | None = None,
    ):
        """`gate`: a speech gate kept for the engine's life; `new_gate` instead makes one at
        the start and at each `reset`, so that a reset also forgets the room it heard.
        `cache`: a directory where the streaming graph is kept between starts."""
        if not wake_models:
            raise RecorderError("no wake-word model given")
        paths = [spec.path for spec in wake_models]
        graph = streaming_graph(melspectrogram, embedding, paths, cache)
        self._classifiers = [
            _Classifier(s, i) for s, i in zip(wake_models, graph.classifiers, strict=True)
        ]
        names = [n for c in self._classifiers for n in c.names]
        if len(set(names)) != len(names):
            raise RecorderError(f"wake-word models with the same name: {', '.join(names)}")
        self.names: list[str] = names
        self._n_embeddings = graph.built.history
        try:
            self._features = StreamingEmbedding(graph.built, embedding, graph.silence)
        except RecorderError:
            if graph.silence is None:
                for c in self._classifiers:  # name the classifier onnxruntime refuses
                    session(c.path)
                raise
            discard(graph)  # a cached graph onnxruntime refuses: built, and kept, anew
            graph = streaming_graph(melspectrogram, embedding, paths, cache)
            self._features = StreamingEmbedding(graph.built, embedding)
        remember(graph, self._features.silence)
        for i, c in enumerate(self._classifiers):
            if i not in self._features.merged:
                c.session = session(c.path)
        self._ring_frames = self._n_embeddings + WARM_UP_FRAMES - 1
        """Frames of audio kept: enough to compute anew, from silence, the embeddings the
        classifier windows read (the first WARM_UP_FRAMES - 1 of them only warm it up)."""
        self.gate = gate
        self._new_gate = new_gate
        self.hold_frames = self._n_embeddings + EMBEDDING_WINDOW // MEL_ROWS_PER_FRAME + 1
        """Frames the gate stays open after the last speech: every window holding it is scored."""
        self._zeros = dict.fromkeys(self.names, 0.0)
        self.gate_open_frames = 0
        self.reset()

    @property
    def default_thresholds(self) -> Mapping[str, float]:
        return {}  # the configuration's default threshold is openWakeWord's

    @property
    def embeddings(self) -> Embeddings:
        return self.recent_embeddings

    def takes_verifier(self, name: str) -> bool:
        return name in self.names

    def reset(self) -> None:
        """Forget all audio: the engine is as if it had heard only silence (and a gate made
        by `new_gate` is made anew)."""
        if self._new_gate is not None:
            self.gate = self._new_gate()
        self._features.reset()
        # the raw audio of the frames the embeddings are made from, plus one for its context,
        # oldest first and ending at `_end`: twice that, so that it moves back only now and then
        kept = (self._ring_frames + 1) * FRAME_SAMPLES
        self._ring = np.zeros(2 * kept, dtype=np.float32)
        self._end = kept
        self._stale_frames = 0  # the latest frames without an embedding yet
        self._since_speech = self.hold_frames  # the gate starts closed
        self._gate_open = False

    def process(self, samples: np.ndarray) -> dict[str, float]:
        ring, end = self._ring, self._end
        if end + FRAME_SAMPLES > len(ring):  # the frames kept move back to the start
            kept = len(ring) // 2
            ring[:kept] = ring[end - kept : end]
            end = kept
        self._end = end + FRAME_SAMPLES
        if len(samples) == FRAME_SAMPLES:
            ring[end : self._end] = samples
        else:  # a short frame is padded with silence, a long one cut
            ring[end : self._end] = 0.0
            ring[end : end + min(len(samples), FRAME_SAMPLES)] = samples[:FRAME_SAMPLES]
        self._stale_frames += 1
        if self.gate is not None:
            speech = self.gate.is_speech(samples)
            self._since_speech = 0 if speech else self._since_speech + 1
            self._gate_open = self._since_speech < self.hold_frames
            if not self._gate_open:  # only the raw audio is kept: a quiet room costs the VAD
                return dict(self._zeros)
            self.gate_open_frames += 1
        self._catch_up()
        return self._classify()

    def _catch_up(self) -> None:
        """Embeddings for the frames heard since the last one computed.

        The streaming embedding holds the rows its layers read from the frames before; while
        those frames are still in the ring it goes on from there. After a longer shut gate it
        starts again from silence at the ring's oldest frame: from the WARM_UP_FRAMES-th frame
        on, each embedding depends only on its own 76 mel rows, so the ones the classifiers read
        are those the engine would hold had it computed every frame as it came.
        """
        stale, self._stale_frames = self._stale_frames, 0
        if stale > self._ring_frames:
            self._features.reset()
            stale = self._ring_frames
        ring, end = self._ring, self._end
        for frame_end in range(end - (stale - 1) * FRAME_SAMPLES, end + 1, FRAME_SAMPLES):
            self._features.advance(ring[frame_end - CHUNK_SAMPLES : frame_end])

    def recent_embeddings(self, n: int) -> np.ndarray:
        """The last `n` embeddings (n, 96), oldest first: what a second-stage verifier reads."""
        return self._features.history[-n:].copy()

    def _classify(self) -> dict[str, float]:
        """The scores of the last frame stepped: from the streaming graph's outputs, or from a
        classifier's own session on the embeddings held."""
        scores: dict[str, float] = {}
        merged = iter(self._features.outputs)  # in the classifiers' order
        for c in self._classifiers:
            if c.session is None:
                out = next(merged).tolist()[0]
            else:
                window = self._features.history[None, -c.n_embeddings :]
                out = c.session.run(None, {c.input_name: np.ascontiguousarray(window)})[0][0]
            for name, col in zip(c.names, c.columns, strict=True):
                scores[name] = float(out[col])
        return scores
