"""The streaming graph for a set of model files, built once and kept in a cache directory.

Building the graph (`streaming.build`) parses the three or more model files in Python: about
10 MB at its peak and a few tens of milliseconds, at every start. The graph depends only on the
model files' bytes and on the code that builds it, so it is kept under a key made of their
SHA-256s: `KEY.onnx` (the graph), `KEY.state` (the state a stream of digital silence leaves in
it, which the engine starts from) and `KEY.json` (what the engine needs to know of the graph and
of the classifiers, with the other two files' SHA-256s). A start whose key is there loads the
graph file directly once the hashes are checked; anything else (no cache directory, one not
this user's, a damaged or missing entry) builds the graph in memory, as without a cache, and
writes the entry when it can. The entries hold nothing but what the model files hold; deleting
them is safe.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import recorder.engines.onnx_wire as wire
import recorder.engines.stft as stft
import recorder.engines.streaming as streaming
from recorder import dirs
from recorder.digest import STORE, hexdigest, sha256, sha256_file
from recorder.engines.streaming import EMBEDDING_DIM, Built, Held, Silence
from recorder.errors import RecorderError

log = logging.getLogger(__name__)

FORMAT = 1
KEEP = 8
"""Entries kept: the newest, by the time they were written."""


@dataclass(frozen=True)
class ClassifierInfo:
    """What the engine reads from a classifier's graph: its input, window and outputs."""

    input_name: str
    n_embeddings: int
    n_out: int
    labels: dict[int, str]
    """Multi-class models' labels by output column, when the output's name holds them."""


@dataclass(frozen=True)
class StreamingGraph:
    built: Built
    classifiers: list[ClassifierInfo]
    silence: Silence | None = None
    """The state silence leaves, from the cache."""
    entry: Path | None = None
    """Where the entry goes (without its suffix) once the silence is known: a graph built
    with a usable cache directory."""


def remember(graph: StreamingGraph, silence: Silence) -> None:
    """Write the cache entry of a graph just built (each file whole, or not at all), then drop
    the oldest beyond KEEP. A cache that cannot be written costs only the next start's build."""
    if graph.entry is None:
        return
    try:
        _store(graph.entry, graph, silence)
        _prune(graph.entry.parent)
    except OSError as e:
        log.debug("graph cache %s not written: %s", graph.entry.parent, e.strerror or e)


def discard(graph: StreamingGraph) -> None:
    """Remove the entry `graph` came from (onnxruntime refused its graph file: it changed
    after its hash was checked, or with none of its times), so the next build writes it anew."""
    if isinstance(graph.built.model, Path):
        for suffix in (".json", ".onnx", ".state"):  # the description first: it names the others
            try:
                graph.built.model.with_suffix(suffix).unlink(missing_ok=True)
            except OSError as e:
                log.debug("graph cache entry %s not removed: %s", graph.built.model, e)


def streaming_graph(
    melspectrogram: Path, embedding: Path, classifiers: Sequence[Path], cache: Path | None
) -> StreamingGraph:
    """The graph for these model files: from `cache` when it holds it, else built (and kept
    there when `cache` is usable). Errors name the model file at fault."""
    directory = usable(cache)
    paths = [melspectrogram, embedding, *classifiers]
    if directory is not None:
        try:
            key = _key([sha256_file(p) for p in paths])
        except OSError:
            key = None  # reading them again below names the one that cannot be read
        if key is not None and (found := _load(directory, key, len(classifiers))) is not None:
            log.debug("streaming graph from %s", directory / f"{key}.onnx")
            return found
    data = [_read(p) for p in paths]
    graphs = [_parse(p, d) for p, d in zip(classifiers, data[2:], strict=True)]
    infos = [classifier_info(p, g) for p, g in zip(classifiers, graphs, strict=True)]
    history = max((i.n_embeddings for i in infos), default=0)
    built = streaming.build_checked(embedding, data[0], data[1], graphs, history)
    entry = None
    if directory is not None:
        try:
            entry = directory / _key([hexdigest(d) for d in data])
        except OSError:
            entry = None
    return StreamingGraph(built, infos, entry=entry)


def classifier_info(path: Path, graph: wire.Graph) -> ClassifierInfo:
    try:
        infos = graph.input_infos
        shape = wire.value_info_shape(infos[0]) if len(infos) == 1 else ()
        out_shape = wire.value_info_shape(graph.output_infos[0])
    except (wire.WireError, ValueError, IndexError, StopIteration) as e:
        raise RecorderError(f"model {path}: cannot be loaded ({e})") from None
    if len(shape) != 3 or shape[2] != EMBEDDING_DIM or not isinstance(shape[1], int):
        raise RecorderError(
            f"model {path}: not an openWakeWord classifier (input shape {list(shape)})"
        )
    n_out = out_shape[-1] if out_shape else None
    if not isinstance(n_out, int) or n_out < 1:
        raise RecorderError(f"model {path}: unexpected output shape {list(out_shape)}")
    labels: dict[int, str] = {}
    if n_out > 1:  # labels may be in the output's name, as JSON
        try:
            labels = {int(k): str(v) for k, v in json.loads(graph.outputs[0]).items()}
        except (ValueError, AttributeError):
            labels = {}
    return ClassifierInfo(graph.inputs[0], shape[1], n_out, labels)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise RecorderError(f"model {path}: cannot be read ({e.strerror})") from None


def _parse(path: Path, data: bytes) -> wire.Graph:
    try:
        return wire.read_model(data)
    except (wire.WireError, ValueError, IndexError, StopIteration) as e:
        raise RecorderError(f"model {path}: cannot be loaded ({e})") from None


def _key(model_hashes: list[str]) -> str:
    """The models' hashes, the building and caching code's, and the versions of numpy and
    onnxruntime that computed the silent state: a change to any is another entry. Raises
    OSError when the code cannot be read (no cache then)."""
    import onnxruntime

    modules = (streaming, stft, wire, sys.modules[__name__])
    code = [sha256_file(Path(m.__file__ or "")) for m in modules]
    versions = f"numpy {np.__version__} onnxruntime {onnxruntime.__version__}"
    h = sha256(f"recorder streaming graph {FORMAT} {versions}\n".encode())
    for part in [*code, *model_hashes]:
        h.update(part.encode() + b"\n")
    return str(h.hexdigest())[:32]


def usable(cache: Path | None) -> Path | None:
    """`cache`, made as the daemon's private directories are (`dirs.private_dir`: 0700, no
    one else may write to it), when it is this user's own; otherwise None (the graph is built
    in memory). Root makes it only in a directory of root's, so it never makes one in a
    user's home, and `private_dir` follows no other user's link for root."""
    if cache is None:
        return None
    uid = os.geteuid()
    try:
        if uid == 0 and os.stat(cache.parent).st_uid != 0:
            raise OSError("its parent is not root's")
        dirs.private_dir(cache, "cache directory")
        if os.stat(cache).st_uid != uid:
            raise OSError("not this user's")
    except (OSError, RecorderError) as e:
        log.debug("no graph cache in %s: %s", cache, getattr(e, "strerror", None) or e)
        return None
    return cache


def _load(directory: Path, key: str, n_classifiers: int) -> StreamingGraph | None:
    """The entry `key`, or None when it is missing or does not hold together (anything
    wrong with it: it is only a cache)."""
    onnx, state = directory / f"{key}.onnx", directory / f"{key}.state"
    try:
        meta = json.loads((directory / f"{key}.json").read_bytes())
        if meta.get("format") != FORMAT or meta.get("meta_sha256") != _meta_sha256(meta):
            return None
        if sha256_file(onnx) != meta["onnx_sha256"]:
            return None
        built, infos = _read_meta(meta, onnx)
        data = state.read_bytes()
        if hexdigest(data) != meta["state_sha256"]:
            return None
        if len(infos) != n_classifiers:
            raise ValueError("another number of classifiers")
        silence = _silence(built.held, data)
        os.utime(directory / f"{key}.json")  # the entries in use are the last pruned
    except Exception as e:  # noqa: BLE001 - whatever is wrong with an entry means a build
        if not isinstance(e, FileNotFoundError):
            log.debug("graph cache entry %s not used: %s", key, e)
        return None
    return StreamingGraph(built, infos, silence)


def _read_meta(meta: dict[str, Any], onnx: Path) -> tuple[Built, list[ClassifierInfo]]:
    held = [Held(str(n), tuple(int(d) for d in s)) for n, s in meta["held"]]
    infos = [
        ClassifierInfo(
            str(c["input_name"]),
            int(c["n_embeddings"]),
            int(c["n_out"]),
            {int(k): str(v) for k, v in c["labels"].items()},
        )
        for c in meta["classifiers"]
    ]
    window = np.array(meta["window"], dtype=np.float32)
    merged = [int(i) for i in meta["merged"]]
    history = int(meta["history"])
    if (
        window.shape != (stft.N_FFT,)
        or merged != sorted(set(merged))
        or not all(0 <= i < len(infos) for i in merged)
        or any(c.n_out < 1 or c.n_embeddings < 1 for c in infos)
        or history != max((c.n_embeddings for c in infos), default=0)
    ):
        raise ValueError("the entry's description does not hold together")
    return Built(onnx, held, merged, history, window), infos


def _meta_sha256(meta: dict[str, Any]) -> str:
    """The hash of the entry's description, itself left out."""
    rest = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hexdigest(json.dumps(rest, sort_keys=True).encode())


def _silence(held: list[Held], data: bytes) -> Silence:
    """The held tensors, then the embedding, as float32 one after the other."""
    values = np.frombuffer(data, dtype=np.float32)
    sizes = [int(np.prod(h.shape)) for h in held]
    if len(values) != sum(sizes) + EMBEDDING_DIM:
        raise ValueError("the silent state's size does not match the graph's")
    parts = np.split(values.copy(), np.cumsum(sizes))
    state = {h.name: p.reshape(h.shape) for h, p in zip(held, parts, strict=False)}
    return Silence(parts[-1], state)


def _store(entry: Path, graph: StreamingGraph, silence: Silence) -> None:
    built = graph.built
    assert isinstance(built.model, bytes)
    state = b"".join(
        np.ascontiguousarray(a, dtype=np.float32).tobytes()
        for a in [*(silence.held[h.name] for h in built.held), silence.embedding]
    )
    meta = {
        "format": FORMAT,
        "onnx_sha256": hexdigest(built.model),
        "state_sha256": hexdigest(state),
        "held": [[h.name, list(h.shape)] for h in built.held],
        "merged": built.merged,
        "history": built.history,
        "window": built.window.tolist(),
        "classifiers": [
            {
                "input_name": c.input_name,
                "n_embeddings": c.n_embeddings,
                "n_out": c.n_out,
                "labels": {str(k): v for k, v in c.labels.items()},
            }
            for c in graph.classifiers
        ],
    }
    meta["meta_sha256"] = _meta_sha256(meta)
    dirs.replace_file(entry.with_suffix(".onnx"), built.model)
    dirs.replace_file(entry.with_suffix(".state"), state)
    # the description last: it names the others
    dirs.replace_file(entry.with_suffix(".json"), json.dumps(meta).encode())


_ENTRY = re.compile(r"[0-9a-f]{32}\.json")
_TEMP = re.compile(rf"\.([0-9a-f]{{32}}\.(json|onnx|state)|{re.escape(STORE)})\.[0-9]+\.tmp")


def _prune(directory: Path) -> None:
    """Drop the entries beyond the KEEP newest, and temporary files older than an hour (a
    write that was killed). Only the cache's own names are touched: a directory named by
    mistake loses nothing else."""
    names = os.listdir(directory)
    entries = [directory / n for n in names if _ENTRY.fullmatch(n)]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)
        for suffix in (".onnx", ".state"):
            old.with_suffix(suffix).unlink(missing_ok=True)
    for name in names:
        path = directory / name
        if _TEMP.fullmatch(name) and path.lstat().st_mtime < time.time() - 3600:
            path.unlink(missing_ok=True)
