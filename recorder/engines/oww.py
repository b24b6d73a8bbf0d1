"""openWakeWord-compatible streaming wake-word engine on onnxruntime.

The feature pipeline is openWakeWord's: every 80 ms frame, the melspectrogram model runs on the
frame plus the previous 480 samples (8 new mel rows, transformed x/10 + 2); the embedding model
runs on the last 76 mel rows (one 96-value embedding per frame); each classifier runs on its
last N embeddings (16 for most models). The stream is treated as if it were preceded by digital
silence, so the first frames are scored deterministically.

Speech gate (optional): the embedding model is about 90 % of the cost and the melspectrogram
most of the rest, and most of a smart speaker's day is silence. With a gate, only the gate's VAD
runs on every frame: the engine keeps the raw audio of the frames its windows read (a bounded
ring of about 2 s) and computes mel rows, embeddings and scores only while the gate's VAD has
heard speech within the last `hold_frames` (the classifier window plus one embedding window), and
every other frame scores 0. When the gate opens, the mel rows and embeddings of the frames heard
while it was shut are back-filled from the ring, so every frame whose window holds speech gets
the score the ungated engine would give.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from recorder.audio import FRAME_SAMPLES
from recorder.engines.base import Embeddings
from recorder.errors import RecorderError
from recorder.models import WakeModelSpec
from recorder.vad import SpeechDetector

MEL_CONTEXT_SAMPLES = 480  # three 10-ms hops of history so each frame yields 8 mel rows
MEL_ROWS_PER_FRAME = 8
MEL_BINS = 32
EMBEDDING_WINDOW = 76  # mel rows per embedding
EMBEDDING_DIM = 96


def _session(path: Path) -> Any:
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime raises several unrelated types for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecorderError(f"model {path}: cannot be loaded ({first})") from None


class _Classifier:
    def __init__(self, spec: WakeModelSpec):
        self.session = _session(spec.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if (
            len(inputs) != 1
            or len(shape) != 3
            or shape[2] != EMBEDDING_DIM
            or not isinstance(shape[1], int)
        ):
            raise RecorderError(
                f"model {spec.path}: not an openWakeWord classifier (input shape {shape})"
            )
        self.input_name = inputs[0].name
        self.n_embeddings = shape[1]
        n_out = outputs[0].shape[-1]
        if not isinstance(n_out, int) or n_out < 1:
            raise RecorderError(f"model {spec.path}: unexpected output shape {outputs[0].shape}")
        if n_out == 1:
            self.names = [spec.name]
            self.columns = [0]
        else:  # multi-class: class 0 is background; labels may be in the output's name
            try:
                labels = {int(k): str(v) for k, v in json.loads(outputs[0].name).items()}
            except (ValueError, AttributeError):
                labels = {}
            self.columns = list(range(1, n_out))
            self.names = [f"{spec.name}:{labels.get(i, str(i))}" for i in self.columns]


class OpenWakeWordEngine:
    """Streaming melspectrogram -> embedding -> classifiers, one frame at a time."""

    def __init__(
        self,
        melspectrogram: Path,
        embedding: Path,
        wake_models: Sequence[WakeModelSpec],
        gate: SpeechDetector | None = None,
        new_gate: Callable[[], SpeechDetector] | None = None,
    ):
        """`gate`: a speech gate kept for the engine's life; `new_gate` instead makes one at
        the start and at each `reset`, so that a reset also forgets the room it heard."""
        if not wake_models:
            raise RecorderError("no wake-word model given")
        self._mel = _session(melspectrogram)
        self._emb = _session(embedding)
        self._classifiers = [_Classifier(spec) for spec in wake_models]
        names = [n for c in self._classifiers for n in c.names]
        if len(set(names)) != len(names):
            raise RecorderError(f"wake-word models with the same name: {', '.join(names)}")
        self.names: list[str] = names
        self._n_embeddings = max(c.n_embeddings for c in self._classifiers)
        self._mel_frames = self._n_embeddings + EMBEDDING_WINDOW // MEL_ROWS_PER_FRAME
        """Frames whose mel rows the classifier windows read (the oldest one in part)."""
        self._mel_capacity = EMBEDDING_WINDOW + MEL_ROWS_PER_FRAME * (self._n_embeddings - 1)
        self.gate = gate
        self._new_gate = new_gate
        self.hold_frames = self._n_embeddings + EMBEDDING_WINDOW // MEL_ROWS_PER_FRAME + 1
        """Frames the gate stays open after the last speech: every window holding it is scored."""
        self._zeros = dict.fromkeys(self.names, 0.0)
        silence = np.zeros((1, MEL_CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        self._silent_mel_row = self._melspectrogram(silence)[-1]
        window = np.tile(self._silent_mel_row, (EMBEDDING_WINDOW, 1))
        self._silent_embedding = self._embed(window[None])[0]
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
        # the raw audio of the frames the mel rows are made from, plus one for its context
        silent_frame = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._audio: deque[np.ndarray] = deque(
            [silent_frame] * (self._mel_frames + 1), maxlen=self._mel_frames + 1
        )
        self._mel_rows = np.tile(self._silent_mel_row, (self._mel_capacity, 1))
        self._embeddings = np.tile(self._silent_embedding, (self._n_embeddings, 1))
        self._stale_frames = 0  # the latest frames with neither mel rows nor embeddings yet
        self._since_speech = self.hold_frames  # the gate starts closed
        self._gate_open = False

    def _melspectrogram(self, audio: np.ndarray) -> np.ndarray:
        out = self._mel.run(None, {"input": audio})[0]
        rows: np.ndarray = np.squeeze(out, axis=(0, 1)) / 10.0 + 2.0
        return rows

    def _embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(n, 76, 32) mel windows -> (n, 96) embeddings, in one batch."""
        x = mel_windows.astype(np.float32)[:, :, :, None]
        out: np.ndarray = self._emb.run(None, {"input_1": x})[0]
        return out.reshape(len(mel_windows), EMBEDDING_DIM)

    def _window(self, frames_back: int) -> np.ndarray:
        end = len(self._mel_rows) - MEL_ROWS_PER_FRAME * frames_back
        return self._mel_rows[end - EMBEDDING_WINDOW : end]

    def process(self, samples: np.ndarray) -> dict[str, float]:
        frame = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        frame[: len(samples)] = samples[:FRAME_SAMPLES]
        self._audio.append(frame)
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
        """Mel rows, then embeddings, for the frames heard since the last ones computed.

        Each frame's mel rows come from its own audio and the 480 samples before it, and each
        embedding from the 76 mel rows ending at its frame, so these are the values the engine
        would hold had it computed every frame as it came.
        """
        stale, self._stale_frames = self._stale_frames, 0
        mel_frames = min(stale, self._mel_frames)
        audio = list(self._audio)
        rows = [
            self._melspectrogram(
                np.concatenate([audio[i - 1][-MEL_CONTEXT_SAMPLES:], audio[i]])[None]
            )
            for i in range(len(audio) - mel_frames, len(audio))
        ]
        self._mel_rows = np.concatenate([self._mel_rows, *rows])[-self._mel_capacity :]
        n = min(stale, self._n_embeddings)
        # one window per run: a batch would be no faster here, and its activations would raise
        # the peak memory by ~25 MB
        new = [self._embed(self._window(k)[None]) for k in range(n - 1, -1, -1)]
        self._embeddings = np.concatenate([self._embeddings[n:], *new])

    def recent_embeddings(self, n: int) -> np.ndarray:
        """The last `n` embeddings (n, 96), oldest first: what a second-stage verifier reads."""
        return self._embeddings[-n:].copy()

    def _classify(self) -> dict[str, float]:
        scores: dict[str, float] = {}
        for c in self._classifiers:
            window = self._embeddings[None, -c.n_embeddings :]  # a contiguous float32 view
            out = c.session.run(None, {c.input_name: window})[0][0]
            for name, col in zip(c.names, c.columns, strict=True):
                scores[name] = float(out[col])
        return scores
