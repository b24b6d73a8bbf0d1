"""openWakeWord's melspectrogram and embedding models, run one 80 ms frame at a time.

openWakeWord computes each frame's embedding from the last 76 mel rows (0.76 s) with the
whole embedding network: about 42 M multiply-adds every 80 ms. Along time, that network has
only unpadded convolutions (3 rows tall or 1) and three 2x max-pools, so its output stride is
8 mel rows, one frame, and two consecutive windows share all but their newest rows at every
layer. This module rewrites the two models into one onnxruntime graph that takes the power
spectrum of a frame's audio (with the 480 samples before it; `stft` computes it by FFT, where
the melspectrogram model spends 2.1 M multiply-adds on two convolutions) and, for each 3-tall
convolution, the two input rows it read last; it returns the embedding and those rows' next
values. Each layer computes only its new rows: about 5.6 M multiply-adds per frame, and from
the same mel rows the embedding is the one the whole network gives on the same window (the
same kernels add the same products); the FFT's spectrum is the convolutions' to float
rounding (the parity tests compare every frame).

The wake-word classifiers whose operator sets match go into the same graph: it keeps the last
embeddings (the longest classifier window) and gives each classifier its own last ones, so one
onnxruntime call per frame scores every model; a second model costs its own work (mostly
reading its weights once a frame) rather than a second call.

The graph is built from the model files as they ship (the feature models' hashes are checked by
`recorder.models`); `graph_cache` keeps it, keyed by the files' hashes, so that a start need
not build it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import recorder.engines.onnx_wire as wire
import recorder.engines.stft as stft
from recorder.audio import FRAME_SAMPLES
from recorder.engines.session import session
from recorder.errors import RecorderError

MEL_CONTEXT_SAMPLES = 480  # three 10-ms hops of history so each frame yields 8 mel rows
MEL_ROWS_PER_FRAME = 8
MEL_BINS = 32
EMBEDDING_WINDOW = 76  # mel rows per embedding
EMBEDDING_DIM = 96
CHUNK_SAMPLES = MEL_CONTEXT_SAMPLES + FRAME_SAMPLES

WARM_UP_FRAMES = -(-(EMBEDDING_WINDOW - MEL_ROWS_PER_FRAME) // MEL_ROWS_PER_FRAME) + 1
"""Frames after which the embedding no longer depends on the rows held before the first one:
from any held rows, the embedding of the 10th frame fed onwards is exact."""

_ELEMENTWISE = {"LeakyRelu", "Max", "Relu", "Add", "Mul", "Sub", "Div", "Sigmoid", "Clip"}


@dataclass(frozen=True)
class Held:
    """One convolution's held input rows: graph input `name`, output `name + "_next"`."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Built:
    """A streaming graph and what running it needs: the tensors it holds, which classifiers
    it runs, and how many embeddings it keeps for them."""

    model: bytes | Path
    """The serialized graph, or a file holding it."""
    held: list[Held]
    merged: list[int]
    history: int
    window: np.ndarray
    """The melspectrogram's analysis window, (512,) float32: the graph's input is the power
    spectrum of the frame's audio under it."""


@dataclass(frozen=True)
class Silence:
    """What a stream of digital silence leaves: the last embedding and every held tensor."""

    embedding: np.ndarray
    held: dict[str, np.ndarray]


def build_checked(
    label: Path,
    melspectrogram: bytes,
    embedding: bytes,
    classifiers: Sequence[wire.Graph] = (),
    history: int = 0,
) -> Built:
    """`build`, its errors one line naming `label` (the embedding model's file)."""
    try:
        model, held, merged, window = build(melspectrogram, embedding, classifiers, history)
    except (wire.WireError, ValueError, KeyError, IndexError, StopIteration) as e:
        raise RecorderError(f"model {label}: not openWakeWord's embedding network ({e})") from None
    return Built(model, held, merged, history, window)


def build(
    melspectrogram: bytes,
    embedding: bytes,
    classifiers: Sequence[wire.Graph] = (),
    history: int = 0,
) -> tuple[bytes, list[Held], list[int], np.ndarray]:
    """The streaming graph (serialized), the tensors it holds between frames, which of the
    classifiers it runs (those of the feature models' operator sets; the others need their
    own session), and the melspectrogram's analysis window.

    Inputs: `power` (1, 1, 8, 257), the power spectrum of the frame's eight 512-sample windows
    (`stft.PowerSpectrum`), and each held tensor; outputs: the
    embedding (1, 1, 1, 96), each held tensor's next value, then each classifier's output.
    With classifiers, `history` embeddings (oldest first) are held too, under the name
    `history`. Raises `WireError` for an embedding model whose time axis is not
    openWakeWord's (unpadded, stride 8 overall)."""
    mel, emb = wire.read_model(melspectrogram), wire.read_model(embedding)
    nodes, initializers, held, window = _feature_nodes(mel, emb)
    inputs = [wire.value_info("power", stft.SHAPE)]
    inputs += [wire.value_info(h.name, h.shape) for h in held]
    outputs: list[wire.Buf] = [wire.value_info(emb.outputs[0], (1, 1, 1, EMBEDDING_DIM))]
    outputs += [wire.value_info(h.name + "_next", h.shape) for h in held]
    more = b""
    opsets = emb.opset_versions()
    merged = [
        i
        for i, c in enumerate(classifiers)
        if all(opsets.get(d) == v for d, v in c.opset_versions().items())
    ]
    if merged:
        history_held = Held("history", (1, history, EMBEDDING_DIM))
        held.append(history_held)
        inputs.append(wire.value_info("history", history_held.shape))
        outputs.append(wire.value_info("history_next", history_held.shape))
        chosen = [classifiers[i] for i in merged]
        c_nodes, c_inits, more, c_outputs = _classifier_nodes(emb.outputs[0], chosen, history)
        nodes += c_nodes
        initializers += c_inits
        outputs += c_outputs
    model = wire.write_model(
        nodes,
        initializers,
        inputs,
        outputs,
        emb.opsets,
        max(g.ir_version for g in (mel, emb, *classifiers)),
        "openwakeword_streaming",
        more,
    )
    return model, held, merged, window


def _feature_nodes(
    mel: wire.Graph, emb: wire.Graph
) -> tuple[list[wire.Node], list[wire.Buf], list[Held], np.ndarray]:
    """The melspectrogram after its Fourier transform, openWakeWord's scaling of it, and the
    streaming embedding layers: their nodes, initializers and held tensors; and the window of
    the transform, which `stft.PowerSpectrum` computes."""
    if len(mel.inputs) != 1 or len(mel.outputs) != 1 or len(emb.inputs) != 1:
        raise wire.WireError("expected one input and one output")
    if mel.opset_versions().get("") != emb.opset_versions().get(""):
        raise wire.WireError("the feature models use different operator sets")
    nodes, initializers, window = _mel_nodes(mel)
    first = emb.nodes[0]
    if first.op != "Reshape" or first.inputs[0] != emb.inputs[0]:
        raise wire.WireError("the embedding model does not start by reshaping its input")
    # openWakeWord feeds the embedding model melspectrogram / 10 + 2
    for name, value in (("scale", 10.0), ("offset", 2.0)):
        initializers.append(wire.tensor(f"mel/{name}", np.array(value, dtype=np.float32)))
    nodes.append(wire.Node("Div", ["mel/output", "mel/scale"], ["mel/scaled"]))
    nodes.append(wire.Node("Add", ["mel/scaled", "mel/offset"], [first.outputs[0]]))
    layer_nodes, held = _streaming_layers(emb)
    nodes += layer_nodes
    used = {i for n in layer_nodes for i in n.inputs}
    initializers += [t for name, t in emb.initializers.items() if name in used]
    initializers += [
        wire.tensor(f"{h.name}/{part}", np.array([v], dtype=np.int64))
        for h in held
        for part, v in (("start", -h.shape[2]), ("end", 1 << 62), ("axis", 2))
    ]
    return nodes, initializers, held, window


def _classifier_nodes(
    embedding: str, classifiers: Sequence[wire.Graph], history: int
) -> tuple[list[wire.Node], list[wire.Buf], bytes, list[wire.Buf]]:
    """The nodes that move the `history` held embeddings on by one, a slice of them for each
    classifier (none for one that reads them all) and (encoded, under `clf<i>/`) the
    classifiers themselves; and their outputs."""
    one = wire.tensor("history/one", np.array([1], dtype=np.int64))
    end = wire.tensor("history/end", np.array([1 << 62], dtype=np.int64))
    shape = wire.tensor("history/row", np.array([1, 1, EMBEDDING_DIM], dtype=np.int64))
    inits: list[wire.Buf] = [one, end, shape]
    nodes = [
        wire.Node("Slice", ["history", "history/one", "history/end", "history/one"], ["h/older"]),
        wire.Node("Reshape", [embedding, "history/row"], ["h/newest"]),
        wire.Node("Concat", ["h/older", "h/newest"], ["history_next"], [_axis(1)]),
    ]
    more = b""
    outputs: list[wire.Buf] = []
    for i, c in enumerate(classifiers):
        prefix = f"clf{i}/"
        n = wire.value_info_shape(c.input_infos[0])[1]
        if not isinstance(n, int):
            raise wire.WireError("a classifier without a fixed window")
        window = "history_next" if n == history else prefix + c.inputs[0]
        if n != history:
            inits.append(wire.tensor(f"{prefix}start", np.array([-n], dtype=np.int64)))
            slice_inputs = ["history_next", f"{prefix}start", "history/end", "history/one"]
            nodes.append(wire.Node("Slice", slice_inputs, [window]))
        rename = _prefixer(prefix, c.inputs[0], window)
        renamed = wire.renamed_graph(c.raw, rename)
        more += wire.graph_fields(renamed, {1, 5})  # its nodes and initializers
        outputs.append(wire.renamed_value_info(c.output_infos[0], rename))
    return nodes, inits, more, outputs


def _prefixer(prefix: str, source: str, window: str) -> Callable[[str], str]:
    """Every name under `prefix`, but the classifier's input `source`, which is `window`."""

    def rename(name: str) -> str:
        return window if name == source else prefix + name

    return rename


def _axis(value: int) -> bytes:
    return wire.int_attribute("axis", value)


def _mel_nodes(mel: wire.Graph) -> tuple[list[wire.Node], list[wire.Buf], np.ndarray]:
    """The melspectrogram's nodes after its Fourier transform (`stft`) and their initializers,
    every name under `mel/`, their input the graph's `power` and their output `mel/output`;
    and the transform's window."""
    spectrum, nodes, window = stft.split(mel)

    def name(n: str) -> str:
        return "power" if n == spectrum else (f"mel/{n}" if n else "")

    nodes = [
        wire.Node(n.op, [name(i) for i in n.inputs], [name(o) for o in n.outputs], n.attributes)
        for n in nodes
    ]
    for n in nodes:
        n.outputs = ["mel/output" if o == name(mel.outputs[0]) else o for o in n.outputs]
    used = {i for n in nodes for i in n.inputs}
    initializers: list[wire.Buf] = [
        wire.rename_tensor(t, name(k)) for k, t in mel.initializers.items() if name(k) in used
    ]
    return nodes, initializers, window


def _streaming_layers(emb: wire.Graph) -> tuple[list[wire.Node], list[Held]]:
    """The embedding model's nodes after its input reshape, each 3-tall convolution fed its
    held rows and the frame's new ones, with the checks that make this exact."""
    height, new_rows, width, channels = EMBEDDING_WINDOW, MEL_ROWS_PER_FRAME, MEL_BINS, 1
    nodes: list[wire.Node] = []
    held: list[Held] = []
    for node in emb.nodes[1:]:
        if node.op == "Conv":
            out_ch, in_ch, kh, kw = emb.dims[node.inputs[1]]
            pads = node.attribute("pads") or [0, 0, 0, 0]
            strides = node.attribute("strides") or [1, 1]
            dilations = node.attribute("dilations") or [1, 1]
            if in_ch != channels or pads[0] or pads[2] or strides != [1, 1] or dilations != [1, 1]:
                raise wire.WireError(f"convolution {node.outputs[0]} pads or strides along time")
            if kh > 1:
                h = Held(f"held{len(held)}", (1, in_ch, kh - 1, width))
                held.append(h)
                joined = f"{h.name}/joined"
                nodes.append(wire.Node("Concat", [h.name, node.inputs[0]], [joined], [_axis(2)]))
                parts = [f"{h.name}/{p}" for p in ("start", "end", "axis")]
                nodes.append(wire.Node("Slice", [joined, *parts], [h.name + "_next"]))
                node = wire.Node(node.op, [joined, *node.inputs[1:]], node.outputs, node.attributes)
            height -= kh - 1
            width += pads[1] + pads[3] - kw + 1
            channels = out_ch
        elif node.op == "MaxPool":
            kh, kw = node.attribute("kernel_shape") or [1, 1]
            sh, sw = node.attribute("strides") or [1, 1]
            if any(node.attribute("pads") or []) or kh != sh or height % sh or new_rows % sh:
                raise wire.WireError(f"pooling {node.outputs[0]} does not tile the time axis")
            height, new_rows, width = height // sh, new_rows // sh, (width - kw) // sw + 1
        elif node.op == "Reshape" and node is emb.nodes[-1]:
            if height != 1 or new_rows != 1 or width * channels != EMBEDDING_DIM:
                raise wire.WireError("the network's output is not one row per frame")
        elif node.op not in _ELEMENTWISE:
            raise wire.WireError(f"unexpected operator {node.op}")
        nodes.append(node)
    if height != 1 or new_rows != 1:
        raise wire.WireError("the network's output is not one row per frame")
    return nodes, held


class StreamingEmbedding:
    """A frame's audio in, its embedding (and the merged classifiers' outputs) out; the rows
    each layer needs next, and the last embeddings, kept here."""

    def __init__(self, graph: Built, label: Path, silent: Silence | None = None):
        """`label`: the embedding model's file, named in the error when onnxruntime refuses
        the graph. `silent`: the state digital silence leaves (`silence`), when known; else it
        is computed here."""
        self._held, self.merged = graph.held, graph.merged
        self._spectrum = stft.PowerSpectrum(graph.window)
        self._session: Any = session(graph.model, label)
        self._bind()
        if silent is None:
            audio = np.zeros(CHUNK_SAMPLES, dtype=np.float32)
            warmed = [self.step(audio) for _ in range(WARM_UP_FRAMES + graph.history)]
            silent = Silence(warmed[-1], {k: v.copy() for k, v in self._held_now().items()})
        self.silence = silent
        self.silent_embedding = silent.embedding
        self._silent_state = silent.held
        self.reset()

    def _bind(self) -> None:
        """Every input and output in a buffer of its own, bound once: the held tensors in two
        sets, read from one and written to the other, the two bindings taking turns. A frame
        then costs one call with nothing to convert or allocate."""
        import onnxruntime as ort

        self._power = np.zeros(stft.SHAPE, dtype=np.float32)
        self._sets = [
            {h.name: np.zeros(h.shape, dtype=np.float32) for h in self._held} for _ in range(2)
        ]
        # one plain call on zeros for the shapes of the classifiers' outputs
        probe = self._session.run(None, {"power": self._power, **self._sets[0]})
        self._outputs = [np.zeros_like(o) for o in probe]
        names = [o.name for o in self._session.get_outputs()]
        n = len(self._held)
        self._bindings = []
        for now, after in ((0, 1), (1, 0)):
            binding = self._session.io_binding()
            binding.bind_ortvalue_input("power", ort.OrtValue.ortvalue_from_numpy(self._power))
            for h in self._held:
                held_now = ort.OrtValue.ortvalue_from_numpy(self._sets[now][h.name])
                held_next = ort.OrtValue.ortvalue_from_numpy(self._sets[after][h.name])
                binding.bind_ortvalue_input(h.name, held_now)
                binding.bind_ortvalue_output(h.name + "_next", held_next)
            for i, name in enumerate(names):
                if not 1 <= i <= n:  # the embedding and the classifiers' outputs
                    binding.bind_ortvalue_output(
                        name, ort.OrtValue.ortvalue_from_numpy(self._outputs[i])
                    )
            self._bindings.append(binding)
        self._now = 0
        self.outputs: list[np.ndarray] = self._outputs[n + 1 :]
        """The classifiers' outputs of the last frame, in the buffers the next one writes."""

    def _held_now(self) -> dict[str, np.ndarray]:
        """The held tensors the next frame reads."""
        return self._sets[self._now]

    def reset(self) -> None:
        """As if only digital silence had been heard."""
        for name, held in self._held_now().items():
            np.copyto(held, self._silent_state[name])

    def step(self, chunk: np.ndarray) -> np.ndarray:
        """The embedding (96,) of the frame whose audio ends `chunk` (1760 samples: the
        frame and the 480 samples before it); the classifiers' outputs are in `outputs`."""
        self.advance(chunk)
        embedding: np.ndarray = self._outputs[0].reshape(EMBEDDING_DIM).copy()
        return embedding

    def advance(self, chunk: np.ndarray) -> None:
        """`step` without its embedding: the held rows and history move on by this frame,
        and `outputs` holds the classifiers' outputs (until the next frame overwrites them:
        copy what is kept)."""
        self._spectrum.into(chunk, self._power)
        self._session.run_with_iobinding(self._bindings[self._now])
        self._now ^= 1

    @property
    def history(self) -> np.ndarray:
        """The last embeddings held, (history, 96), oldest first (a copy)."""
        held: np.ndarray = self._held_now()["history"][0].copy()
        return held
