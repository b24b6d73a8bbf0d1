"""The melspectrogram's short-time Fourier transform, by numpy's FFT.

openWakeWord's melspectrogram model starts with the power spectrum of each chunk's eight
512-sample windows (160 samples apart): two convolutions, the window times the DFT's cosines
and its sines, 257 x 512 multiply-adds each per window. That is 2.1 M multiply-adds a frame,
a quarter of the streaming graph's, and a third of its time, for what an FFT does in a few
thousand. `split` checks that the model starts with exactly that transform (its operators and
its weights) and returns the rest of the model, whose input is the power spectrum;
`PowerSpectrum` computes it, in double precision, for each chunk. The spectrum is the
convolutions' to float rounding (about 1e-6 of its largest value); the parity tests hold the
embeddings and scores to the whole network's.
"""

from __future__ import annotations

import numpy as np

import recorder.engines.onnx_wire as wire

N_FFT, HOP, FRAMES = 512, 160, 8
BINS = N_FFT // 2 + 1
SHAPE = (1, 1, FRAMES, BINS)
"""The power spectrum as the model's later operators read it: (1, 1, window, bin)."""

_PREFIX = ["Constant", "Unsqueeze", "Conv", "Conv"]
_PREFIX += ["Constant", "Unsqueeze", "Transpose"] * 2 + ["Constant", "Pow"] * 2 + ["Add"]


def split(mel: wire.Graph) -> tuple[str, list[wire.Node], np.ndarray]:
    """The power spectrum's tensor in `mel`, the nodes after it, and the analysis window
    (512,) float32. Raises WireError for a model that does not start with openWakeWord's
    transform."""
    head, rest = mel.nodes[: len(_PREFIX)], mel.nodes[len(_PREFIX) :]
    if [n.op for n in head] != _PREFIX or not rest:
        raise wire.WireError("the melspectrogram does not start with its Fourier transform")
    made = {o: n for n in head for o in n.outputs}
    convs = [n for n in head if n.op == "Conv"]
    add = head[-1]
    squared = [made[i] for i in add.inputs if i in made]
    paths = [_path(made, p) for p in squared if p.op == "Pow" and len(p.inputs) == 2]
    if len(paths) != 2 or {c for c, _ in paths} != {id(c) for c in convs}:
        raise wire.WireError("the melspectrogram's spectrum is not the sum of two squares")
    if any(_constant(made, p.inputs[1]).tolist() != 2.0 for p in squared):
        raise wire.WireError("the melspectrogram squares nothing")
    if any(_constant(made, u.inputs[1]).tolist() != [1] for u in [head[1], *(u for _, u in paths)]):
        raise wire.WireError("the melspectrogram's axes are not openWakeWord's")
    source = head[1].inputs[0]
    for c in convs:
        if c.inputs[0] != head[1].outputs[0] or source != mel.inputs[0] or not _is_stft(c):
            raise wire.WireError("the melspectrogram's convolutions are not its transform")
    weights = [wire.tensor_array(mel.initializers[c.inputs[1]]) for c in convs]
    return add.outputs[0], rest, _window(weights)


def _path(made: dict[str, wire.Node], power: wire.Node) -> tuple[int, wire.Node]:
    """The convolution a squared tensor comes from (by id), through Transpose and Unsqueeze;
    and that Unsqueeze."""
    transpose = made[power.inputs[0]]
    unsqueeze = made[transpose.inputs[0]]
    if transpose.op != "Transpose" or transpose.attribute("perm") != [0, 1, 3, 2]:
        raise wire.WireError("the melspectrogram's layout is not openWakeWord's")
    if unsqueeze.op != "Unsqueeze":
        raise wire.WireError("the melspectrogram's layout is not openWakeWord's")
    return id(made[unsqueeze.inputs[0]]), unsqueeze


def _constant(made: dict[str, wire.Node], name: str) -> np.ndarray:
    node = made.get(name)
    if node is None or node.op != "Constant":
        raise wire.WireError(f"{name} is not a constant")
    for raw in node.attributes:
        value = dict(wire.fields(raw)).get(5)
        if isinstance(value, memoryview):
            return wire.tensor_array(value)
    raise wire.WireError(f"{name} has no value")


def _is_stft(conv: wire.Node) -> bool:
    return (
        conv.attribute("kernel_shape") == [N_FFT]
        and conv.attribute("strides") == [HOP]
        and not any(conv.attribute("pads") or [])
        and (conv.attribute("dilations") or [1]) == [1]
        and (conv.attribute("group") or [1]) == [1]
        and len(conv.inputs) == 2
    )


def _window(weights: list[np.ndarray]) -> np.ndarray:
    """The window whose products with the DFT's cosines and sines the two weights are."""
    if any(w.shape != (BINS, 1, N_FFT) for w in weights):
        raise wire.WireError("the melspectrogram's transform is not 512 points")
    re, im = sorted((w[:, 0].astype(np.float64) for w in weights), key=lambda w: -abs(w[0]).max())
    window = re[0]
    angle = 2 * np.pi * np.outer(np.arange(BINS), np.arange(N_FFT)) / N_FFT
    tolerance = 1e-6 * max(float(np.abs(window).max()), 1e-30)
    sine = window * np.sin(angle)
    if (
        np.abs(re - window * np.cos(angle)).max() > tolerance
        or min(np.abs(im - sine).max(), np.abs(im + sine).max()) > tolerance
    ):
        raise wire.WireError("the melspectrogram's convolutions are not a windowed DFT")
    found: np.ndarray = window.astype(np.float32)
    return found


class PowerSpectrum:
    """Each chunk's (1760 samples) power spectrum, into the graph's input buffer."""

    def __init__(self, window: np.ndarray):
        self._window = np.asarray(window, dtype=np.float64)
        self._index = np.arange(FRAMES)[:, None] * HOP + np.arange(N_FFT)

    def into(self, chunk: np.ndarray, out: np.ndarray) -> None:
        frames = np.asarray(chunk, dtype=np.float64)[self._index]
        frames *= self._window
        spectrum = np.fft.rfft(frames)
        power = spectrum.real * spectrum.real
        power += spectrum.imag * spectrum.imag
        np.copyto(out.reshape(FRAMES, BINS), power, casting="same_kind")
