"""The melspectrogram's STFT by FFT: the spectrum the model's convolutions compute, and a
model that does not start with that transform refused."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AUDIO, read_pcm

import recorder.engines.onnx_wire as wire
from recorder.engines import stft


@pytest.fixture(scope="module")
def mel(manifest) -> wire.Graph:
    return wire.read_model(manifest.path(manifest.features["melspectrogram"]).read_bytes())


def conv_weights(mel: wire.Graph) -> list[tuple[str, np.ndarray]]:
    convs = [n for n in mel.nodes if n.op == "Conv"]
    return [(c.inputs[1], wire.tensor_array(mel.initializers[c.inputs[1]])) for c in convs]


def test_the_fft_gives_the_convolutions_spectrum_on_real_speech(mel):
    """The model's own weights applied as its convolutions do (in double precision), against
    the FFT, on every chunk of a recording of a person."""
    _, _, window = stft.split(mel)
    (_, w0), (_, w1) = conv_weights(mel)
    audio = read_pcm(AUDIO / "alexa_command.wav").astype(np.float32)
    spectrum = stft.PowerSpectrum(window)
    out = np.zeros(stft.SHAPE, dtype=np.float32)
    worst = 0.0
    for start in range(0, len(audio) - 1760, 1280):
        chunk = audio[start : start + 1760]
        frames = np.stack([chunk[i * 160 : i * 160 + 512] for i in range(8)]).astype(np.float64)
        reference = (frames @ w0[:, 0].T.astype(np.float64)) ** 2
        reference += (frames @ w1[:, 0].T.astype(np.float64)) ** 2
        spectrum.into(chunk, out)
        scale = max(float(reference.max()), 1.0)
        worst = max(worst, float(np.abs(out[0, 0] - reference).max()) / scale)
    assert 0 < worst < 1e-6


def test_a_model_that_is_not_the_windowed_dft_is_refused(mel, manifest):
    name, weights = conv_weights(mel)[0]
    changed = weights.copy()
    changed[5, 0, 100] *= 1.001  # one weight of 131 584
    mel.initializers[name] = wire.tensor(name, changed)
    try:
        with pytest.raises(wire.WireError, match="not a windowed DFT"):
            stft.split(mel)
    finally:
        mel.initializers[name] = wire.tensor(name, weights)
    stft.split(mel)  # as it ships
    emb = wire.read_model(manifest.path(manifest.features["embedding"]).read_bytes())
    with pytest.raises(wire.WireError, match="does not start with its Fourier transform"):
        stft.split(emb)
