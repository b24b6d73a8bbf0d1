"""A second-stage verifier: logistic regression on the engine's embeddings, stored as `.npz`.

When a wake word's score reaches its threshold, the verifier looks at the last
`WINDOW` embeddings the engine computed (the classifier's own input) and accepts or rejects
the moment. Features: the mean and the maximum of each embedding dimension over the window,
standardized. Trained with Newton's method and an L2 penalty; stored with numpy only (no pickle):
weights, bias, the standardization, the model name and the feature spec.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recorder.errors import RecorderError

FEATURES = "mean_max_16"
WINDOW = 16
FEATURE_DIM = 2 * 96
"""The mean and the maximum of each of the 96 embedding dimensions."""


def features(embeddings: np.ndarray) -> np.ndarray:
    """(WINDOW, 96) embeddings -> the verifier's feature vector."""
    window = np.asarray(embeddings, dtype=np.float64)[-WINDOW:]
    return np.concatenate([window.mean(axis=0), window.max(axis=0)])


@dataclass(frozen=True)
class Verifier:
    model: str
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    decision: float = 0.5

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(wake word) for feature rows `x` (n, d) or one vector (d,)."""
        z = ((np.asarray(x) - self.mean) / self.scale) @ self.weights + self.bias
        p: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        return p

    def accepts(self, embeddings: np.ndarray) -> bool:
        return bool(self.probability(features(embeddings)) >= self.decision)

    def save(self, path: Path) -> None:
        """Written as `path` (.npz appended when missing, as numpy does) from a temp file of its
        own: never through a link planted there, and root's file in the service's state
        directory is the service's."""
        buf = io.BytesIO()
        np.savez(
            buf,
            weights=self.weights,
            bias=np.float64(self.bias),
            mean=self.mean,
            scale=self.scale,
            decision=np.float64(self.decision),
            model=np.array(self.model),
            features=np.array(FEATURES),
        )
        from recorder.calibration import write_atomic  # here: the daemon's start does not need it

        write_atomic(path if path.suffix == ".npz" else Path(f"{path}.npz"), buf.getvalue())


def load(path: Path) -> Verifier:
    """A verifier file; anything else is one clear error."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["features"]) != FEATURES:
                raise RecorderError(
                    f"verifier {path}: feature spec {str(f['features'])!r} is not {FEATURES!r}"
                )
            v = Verifier(
                str(f["model"]),
                f["weights"].astype(np.float64),
                float(f["bias"]),
                f["mean"].astype(np.float64),
                f["scale"].astype(np.float64),
                float(f["decision"]),
            )
    except FileNotFoundError:
        raise RecorderError(f"verifier {path}: no such file") from None
    except (OSError, ValueError, KeyError) as e:
        raise RecorderError(f"verifier {path}: not a verifier .npz ({e})") from None
    d = len(v.mean)
    if v.weights.shape != (d,) or v.scale.shape != (d,) or d != FEATURE_DIM:
        raise RecorderError(f"verifier {path}: arrays of the wrong shape")
    return v


def train(
    model: str,
    positives: np.ndarray,
    negatives: np.ndarray,
    l2: float = 1.0,
    decision: float = 0.5,
    iterations: int = 50,
) -> Verifier:
    """Fit on feature rows of wake-word moments (positives) and near misses (negatives); the
    two classes weigh the same whatever their counts."""
    if len(positives) < 2 or len(negatives) < 2:
        raise RecorderError("a verifier needs at least 2 positive and 2 negative examples")
    x = np.vstack([positives, negatives]).astype(np.float64)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    w_class = np.where(y == 1, len(y) / (2 * len(positives)), len(y) / (2 * len(negatives)))
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    theta = np.zeros(xs.shape[1])
    reg = np.full(xs.shape[1], l2)
    reg[-1] = 0.0  # the bias is not penalized
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xs @ theta, -50, 50)))
        grad = xs.T @ (w_class * (p - y)) + reg * theta
        hess = (xs * (w_class * p * (1 - p))[:, None]).T @ xs + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Verifier(model, theta[:-1], float(theta[-1]), mean, scale, decision)


def apply(
    scores: Mapping[str, float],
    embeddings: Callable[[], np.ndarray],
    verifiers: Mapping[str, Verifier],
    thresholds: Mapping[str, float],
) -> dict[str, float]:
    """The scores with each verified wake word's score held just below its threshold where
    its verifier rejects the moment (so the machine neither detects nor loses the onset)."""
    out = dict(scores)
    window: np.ndarray | None = None
    for name, v in verifiers.items():
        t = thresholds[name]
        if out.get(name, 0.0) >= t:
            window = embeddings() if window is None else window
            if not v.accepts(window):
                out[name] = float(np.nextafter(t, 0.0))
    return out
