"""`recorder train-verifier`: a second-stage verifier learned on the device, from the owner's
enrolled clips (positives, `recorder enroll`) and the room's near misses (negatives, kept while
calibrating), with its held-out figures.

Nothing is trained from audio here: both sets are verifier feature vectors already in the state
directory. The figures come from stratified k-fold cross-validation (each example is scored by a
verifier that did not see it); the verifier written is then trained on everything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from recorder import config as config_mod
from recorder import models
from recorder.errors import RecorderError
from recorder.near_misses import load as load_near_misses
from recorder.tools import enroll
from recorder.tools.report import emit
from recorder.verifier import train

MIN_POSITIVES = 5
MIN_NEGATIVES = 20
FOLDS = 5


def add_parser(sub: Any) -> None:
    """Register `train-verifier` on the `recorder` command's subparsers."""
    tv = sub.add_parser(
        "train-verifier",
        help="learn a verifier from enrolled clips and the room's near misses",
        description="Train a logistic-regression verifier for one openWakeWord model from the "
        "owner's enrolled clips (`recorder enroll`) and the near misses kept while "
        "calibrating ([wake] calibrate), report how it does on held-out examples, and write "
        "it as .npz for [wake.per_model.NAME] verifier.",
    )
    tv.add_argument("--model", required=True, metavar="NAME", help="the wake word")
    tv.add_argument("--config", type=Path, metavar="PATH", help=config_mod.CONFIG_HELP)
    tv.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="where enroll and the daemon keep their data (default: as for `recorder run`: "
        "$STATE_DIRECTORY, else [storage] state_dir, else ~/.local/state/recorder)",
    )
    tv.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="where to write the verifier (default: STATE_DIR/verifier-NAME.npz)",
    )
    tv.add_argument("--json", action="store_true", help="print one JSON object")


def folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`n` indices shuffled and dealt into `k` folds."""
    order = rng.permutation(n)
    return [order[i::k] for i in range(k)]


def cross_validate(
    model: str, positives: np.ndarray, negatives: np.ndarray, k: int = FOLDS, seed: int = 0
) -> dict[str, Any]:
    """Held-out rates: positives rejected (false rejects added by the verifier) and near
    misses accepted, each example judged by a verifier trained without it."""
    rng = np.random.default_rng(seed)
    k = max(2, min(k, len(positives), len(negatives)))
    pos_folds, neg_folds = folds(len(positives), k, rng), folds(len(negatives), k, rng)
    rejected = accepted = 0
    for i in range(k):
        pos_train = np.delete(positives, pos_folds[i], axis=0)
        neg_train = np.delete(negatives, neg_folds[i], axis=0)
        v = train(model, pos_train, neg_train)
        rejected += int((v.probability(positives[pos_folds[i]]) < v.decision).sum())
        accepted += int((v.probability(negatives[neg_folds[i]]) >= v.decision).sum())
    return {
        "folds": k,
        "positives": len(positives),
        "negatives": len(negatives),
        "positives_rejected": rejected,
        "negatives_accepted": accepted,
        "false_reject_rate": rejected / len(positives),
        "near_miss_accept_rate": accepted / len(negatives),
    }


def cmd_train_verifier(args: argparse.Namespace) -> int:
    config = config_mod.load(config_mod.locate(args.config))
    state_dir = args.state_dir or config_mod.state_dir(config)
    name = args.model
    manifest = models.load_manifest(
        config.path(config.wake.models_dir) if config.wake.models_dir else None
    )
    if models.is_micro(manifest, name):
        raise RecorderError(
            f"train-verifier: {name} is a microWakeWord model; a verifier reads openWakeWord's "
            "embeddings, so only openWakeWord models take one"
        )
    positives = enroll.load_features(state_dir).get(name)
    near = load_near_misses(state_dir).get(name)
    n_pos = 0 if positives is None else len(positives)
    n_neg = 0 if near is None else len(near[0])
    if positives is None or n_pos < MIN_POSITIVES:
        raise RecorderError(
            f"train-verifier: {n_pos} enrolled clip(s) of {name} in {state_dir}; "
            f"needs {MIN_POSITIVES} (run `recorder enroll --model {name} CLIP...`)"
        )
    if near is None or n_neg < MIN_NEGATIVES:
        raise RecorderError(
            f"train-verifier: {n_neg} near miss(es) of {name} in {state_dir}; needs "
            f"{MIN_NEGATIVES} (run the daemon with [wake] calibrate = true for longer)"
        )
    negatives = near[0]
    figures = cross_validate(name, positives, negatives)
    out = args.out or state_dir / f"verifier-{name}.npz"
    verifier = train(name, positives, negatives)
    try:
        verifier.save(out)
    except OSError as e:
        raise RecorderError(f"--out {out}: {e.strerror or e}") from None
    if args.json:
        emit(json.dumps({"model": name, "file": str(out), "held_out": figures}) + "\n")
        return 0
    emit(
        f"model {name}: {n_pos} enrolled clip(s), {n_neg} near miss(es) from the room "
        f"({near[1]} seen)\n"
        f"held out ({figures['folds']}-fold): the verifier rejects "
        f"{figures['positives_rejected']}/{n_pos} of the owner's clips "
        f"({100 * figures['false_reject_rate']:.1f} % more false rejects) and accepts "
        f"{figures['negatives_accepted']}/{n_neg} near misses "
        f"({100 * figures['near_miss_accept_rate']:.1f} %)\n"
        f"written to {out}; to use it:\n"
        f'[wake.per_model.{name}]\nverifier = "{out}"\n'
    )
    return 0
