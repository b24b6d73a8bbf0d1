"""What `score` and `tune` share on the command line: config and flags, workers, plots."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from recorder import config as config_mod
from recorder.config import CONFIG_HELP, Config
from recorder.errors import RecorderError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, metavar="PATH", help=CONFIG_HELP)
    p.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="worker processes, one file each at a time (default: every core, "
        f"here {os.cpu_count() or 1})",
    )


def add_identity(p: argparse.ArgumentParser) -> None:
    """--identity: read sealed recordings (*.wav.age) too, decrypted in memory."""
    p.add_argument(
        "--identity",
        type=Path,
        metavar="FILE",
        help="age identity file: sealed recordings (*.wav.age) are decrypted in memory "
        "(needs wakeword-recorder[crypto])",
    )


def add_wake_flags(p: argparse.ArgumentParser) -> None:
    """--model, --threshold and --patience, as `recorder run` takes them."""
    p.add_argument(
        "--model",
        action="append",
        metavar="NAME_OR_PATH",
        help="wake-word model; repeat for several (overrides [wake] models)",
    )
    p.add_argument("--threshold", type=float, help="detection threshold for every model, 0-1")
    p.add_argument(
        "--patience",
        type=int,
        dest="patience_frames",
        metavar="FRAMES",
        help="consecutive 80 ms frames at or above the threshold, for every model",
    )


def load_config(args: argparse.Namespace, models: Sequence[str] | None = None) -> Config:
    """The config file, with --model and --threshold applied as `recorder run` applies them."""
    return config_mod.with_overrides(
        config_mod.load(config_mod.locate(args.config)),
        models=models,
        threshold=getattr(args, "threshold", None),
        patience=getattr(args, "patience_frames", None),
    )


def identity_arg(args: argparse.Namespace) -> str | None:
    """The --identity file, checked before any audio is processed."""
    if getattr(args, "identity", None) is None:
        return None
    from recorder.seal import Unsealer

    Unsealer(args.identity)  # a missing or bad file is a one-line error now, not per file
    return str(args.identity.expanduser().resolve())


def jobs_arg(args: argparse.Namespace) -> int:
    return args.jobs or os.cpu_count() or 1


def check_plot(args: argparse.Namespace) -> None:
    """Before any audio is processed: matplotlib is there and the PNG's directory exists."""
    if args.plot is None:
        return
    from recorder.tools import plots

    plots.require_matplotlib()
    parent = args.plot.expanduser().resolve().parent
    if not parent.is_dir():
        raise RecorderError(f"--plot {args.plot}: no such directory {parent}")
