#!/usr/bin/env python3
"""Multiply-adds per 80 ms frame: openWakeWord's features against the streaming graph's.

Counted from the model files themselves (every convolution, matrix product and Gemm), for the
melspectrogram (its convolutions, as openWakeWord runs them, and by FFT, as the streaming
engine does), the embedding network over its whole 76-row window (what openWakeWord runs every
frame) and over the frame's new rows only (what the streaming graph runs), and each
classifier. A Pi's time per frame scales with these counts far more than with anything else
the engine does, so their ratio is the estimate of the gain on a Pi.

    .venv/bin/python scripts/macs.py [MODEL ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import recorder.engines.onnx_wire as wire  # noqa: E402
from recorder import models  # noqa: E402
from recorder.engines.streaming import EMBEDDING_WINDOW, MEL_BINS, MEL_ROWS_PER_FRAME  # noqa: E402


def embedding_macs(g: wire.Graph, rows_in: int) -> int:
    """Multiply-adds of the embedding network computing `rows_in` rows of its first layer's
    output onwards: the whole window (rows_in = 76) or a frame's new rows (8)."""
    height, new, width, total = EMBEDDING_WINDOW, rows_in, MEL_BINS, 0
    whole = rows_in == EMBEDDING_WINDOW
    for node in g.nodes:
        if node.op == "Conv":
            cout, cin, kh, kw = g.dims[node.inputs[1]]
            pads = node.attribute("pads") or [0, 0, 0, 0]
            height -= kh - 1
            width += pads[1] + pads[3] - kw + 1
            rows = height if whole else new
            total += rows * width * cout * cin * kh * kw
        elif node.op == "MaxPool":
            kh, kw = node.attribute("kernel_shape") or [1, 1]
            sh, sw = node.attribute("strides") or [1, 1]
            height, width = height // sh, (width - kw) // sw + 1
            new = max(1, new // sh)
    return total


def mel_macs(g: wire.Graph, samples: int = 1760) -> int:
    total = 0
    for node in g.nodes:
        if node.op == "Conv":
            cout, _, k = g.dims[node.inputs[1]]
            stride = (node.attribute("strides") or [1])[0]
            total += ((samples - k) // stride + 1) * cout * k
        elif node.op == "MatMul":
            bins, out = g.dims[node.inputs[1]]
            total += MEL_ROWS_PER_FRAME * bins * out
    return total


def fft_mel_macs(g: wire.Graph) -> int:
    """The streaming engine's melspectrogram: the eight windows' real FFTs by numpy (counted
    as a radix-2 transform, N/4 log2 N complex products of 4 real multiply-adds each, plus the
    window and the squares), then the model's mel matrix."""
    n = 512
    fft = n // 4 * (n.bit_length() - 1) * 4 + n + n
    mel_matrix = sum(
        MEL_ROWS_PER_FRAME * g.dims[node.inputs[1]][0] * g.dims[node.inputs[1]][1]
        for node in g.nodes
        if node.op == "MatMul"
    )
    return MEL_ROWS_PER_FRAME * fft + mel_matrix


def classifier_macs(g: wire.Graph) -> int:
    total = 0
    for node in g.nodes:
        if node.op in ("Gemm", "MatMul") and node.inputs[1] in g.dims:
            a, b = g.dims[node.inputs[1]]
            total += a * b
    return total


def main() -> int:
    manifest = models.load_manifest()
    mel = wire.read_model(manifest.path(manifest.features["melspectrogram"]).read_bytes())
    emb = wire.read_model(manifest.path(manifest.features["embedding"]).read_bytes())
    m, whole, stream = mel_macs(mel), embedding_macs(emb, 76), embedding_macs(emb, 8)
    fm = fft_mel_macs(mel)
    names = sys.argv[1:] or ["hey_jarvis"]
    clf = {
        n: classifier_macs(wire.read_model(manifest.path(manifest.wakewords[n]).read_bytes()))
        for n in names
    }
    c = sum(clf.values())
    print(f"melspectrogram            {m / 1e6:7.2f} M   (openWakeWord: 512-tap convolutions)")
    print(f"melspectrogram by FFT     {fm / 1e6:7.2f} M   (the streaming engine)")
    print(f"embedding, whole window   {whole / 1e6:7.2f} M   (openWakeWord, every frame)")
    print(f"embedding, new rows only  {stream / 1e6:7.2f} M   (the streaming graph)")
    for n, v in clf.items():
        print(f"classifier {n:<14} {v / 1e6:7.2f} M")
    theirs, ours = m + whole + c, fm + stream + c
    print(
        f"per frame: openWakeWord {theirs / 1e6:.2f} M, streaming {ours / 1e6:.2f} M: "
        f"{theirs / ours:.1f}x fewer (embedding alone {whole / stream:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
