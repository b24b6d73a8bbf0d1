"""The streaming graph's cache: a start from it scores exactly as one that built the graph, and
anything wrong with the cache costs only a build."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, read_pcm

from recorder import digest, dirs, models
from recorder.audio import FRAME_SAMPLES
from recorder.engines import OpenWakeWordEngine
from recorder.engines import graph_cache as gc

NAMES = ["alexa", "hey_jarvis", "timer"]  # timer: a multi-class model with a longer window


def engine(manifest, cache: Path | None, names=NAMES) -> OpenWakeWordEngine:
    return OpenWakeWordEngine(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [models.resolve_wake_model(manifest, n) for n in names],
        cache=cache,
    )


def scores(e: OpenWakeWordEngine, audio: np.ndarray) -> np.ndarray:
    frames = range(0, len(audio) - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    out = [e.process(audio[i : i + FRAME_SAMPLES].astype(np.float32)) for i in frames]
    return np.array([[s[n] for n in e.names] for s in out])


@pytest.fixture(scope="module")
def audio():
    return read_pcm(AUDIO / "alexa_command.wav")


@pytest.fixture(scope="module")
def reference(manifest, audio):
    """Scores with the graph built in memory, no cache."""
    return scores(engine(manifest, None), audio)


def graph(manifest, cache: Path | None, names=NAMES) -> gc.StreamingGraph:
    return gc.streaming_graph(
        manifest.path(manifest.features["melspectrogram"]),
        manifest.path(manifest.features["embedding"]),
        [manifest.path(manifest.wakewords[n]) for n in names],
        cache,
    )


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


def test_a_start_from_the_cache_scores_every_frame_as_a_build(manifest, audio, reference, tmp_path):
    cache = tmp_path / "cache"
    first = engine(manifest, cache)
    assert np.array_equal(scores(first, audio), reference)
    names = entries(cache)
    assert [n.rsplit(".", 1)[1] for n in names] == ["json", "onnx", "state"]
    assert (cache.stat().st_mode & 0o777) == 0o700
    found = graph(manifest, cache)
    assert found.silence is not None and isinstance(found.built.model, Path)  # from the cache
    second = engine(manifest, cache)
    assert np.array_equal(scores(second, audio), reference)
    assert second.names == first.names and any(":" in n for n in second.names)
    assert entries(cache) == names


@pytest.mark.parametrize(
    "damage",
    [
        ("onnx", lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:]),  # one bit
        ("state", lambda b: b[:-4]),
        ("json", lambda b: b"{not json"),
        ("json", lambda b: re.sub(rb'"history": \d+', b'"history": "x"', b)),
        ("json", lambda b: b.replace(b'"n_out": 1', b'"n_out": 3', 1)),  # still valid JSON
    ],
)
def test_a_damaged_entry_is_built_again(manifest, audio, reference, tmp_path, damage):
    cache = tmp_path / "cache"
    engine(manifest, cache)
    suffix, change = damage
    (path,) = cache.glob(f"*.{suffix}")
    path.write_bytes(change(path.read_bytes()))
    assert graph(manifest, cache).silence is None  # not used
    assert np.array_equal(scores(engine(manifest, cache), audio), reference)
    assert graph(manifest, cache).silence is not None  # written whole again


def test_a_cached_graph_onnxruntime_refuses_is_built_and_kept_anew(
    manifest, audio, reference, tmp_path, monkeypatch
):
    """Bytes changed with none of the file's times (a card's decay): the remembered hash
    passes, onnxruntime refuses the graph, and the engine builds it and writes the entry
    again, so the next start has a good one."""
    monkeypatch.setattr(digest, "_hashed", {})
    cache = tmp_path / "cache"
    engine(manifest, cache)
    (onnx,) = cache.glob("*.onnx")
    meta = json.loads(onnx.with_suffix(".json").read_bytes())
    onnx.write_bytes(b"not a graph" * 100)
    st = os.stat(onnx)
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest._hashed[identity] = meta["onnx_sha256"]  # as if hashed before the decay
    assert graph(manifest, cache).silence is not None  # the entry passes the checks
    assert np.array_equal(scores(engine(manifest, cache), audio), reference)
    found = graph(manifest, cache)
    assert found.silence is not None and found.built.model.read_bytes()[:11] != b"not a graph"


def test_a_changed_model_file_is_another_entry(manifest, audio, tmp_path):
    """The key is the files' contents: a custom model replaced in place is never served stale."""
    cache = tmp_path / "cache"
    custom = tmp_path / "mine.onnx"
    custom.write_bytes(manifest.path(manifest.wakewords["alexa"]).read_bytes())
    spec = models.WakeModelSpec("mine", custom)
    mel, emb = (manifest.path(manifest.features[k]) for k in ("melspectrogram", "embedding"))
    a = scores(OpenWakeWordEngine(mel, emb, [spec], cache=cache), audio)
    custom.write_bytes(manifest.path(manifest.wakewords["hey_mycroft"]).read_bytes())
    b = scores(OpenWakeWordEngine(mel, emb, [spec], cache=cache), audio)
    fresh = scores(OpenWakeWordEngine(mel, emb, [spec]), audio)
    assert np.array_equal(b, fresh) and not np.array_equal(a, b)
    assert len(list(cache.glob("*.json"))) == 2


def test_only_the_newest_entries_are_kept(manifest, tmp_path, monkeypatch):
    monkeypatch.setattr(gc, "KEEP", 2)
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    foreign = ["2026-12-07T10-00-00.json", "0" * 32 + ".onnx", "notes.json", ".notes.json.7.tmp"]
    stale = [f".{'1' * 32}.onnx.7.tmp", f".{digest.STORE}.7.tmp"]  # left by killed writes
    for name in foreign + stale:  # a directory named by mistake: what is not the cache's stays
        (cache / name).write_text("{}")
        os.utime(cache / name, (1, 1))
    for names in (["alexa"], ["hey_jarvis"], ["hey_mycroft"]):
        for p in cache.glob("*"):  # older than the entry about to be written
            os.utime(p, (p.stat().st_mtime - 10,) * 2)
        engine(manifest, cache, names)
    assert len(list(cache.iterdir())) == 6 + len(foreign)
    assert all((cache / name).exists() for name in foreign)
    assert not any((cache / name).exists() for name in stale)
    assert graph(manifest, cache, ["alexa"]).silence is None  # the oldest went
    assert graph(manifest, cache, ["hey_mycroft"]).silence is not None


def test_a_cache_that_cannot_be_used_costs_only_a_build(manifest, audio, reference, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # others may write there: not used
    assert np.array_equal(scores(engine(manifest, shared), audio), reference)
    assert entries(shared) == []
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert np.array_equal(scores(engine(manifest, blocked / "cache"), audio), reference)


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    for var in ("RECORDER_CACHE_DIR", "CACHE_DIRECTORY", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert dirs.default_cache_dir() == tmp_path / ".cache" / "recorder"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dirs.default_cache_dir() == tmp_path / "xdg" / "recorder"
    monkeypatch.setenv("CACHE_DIRECTORY", f"{tmp_path / 'unit'}:{tmp_path / 'other'}")
    assert dirs.default_cache_dir() == tmp_path / "unit"
    monkeypatch.setenv("RECORDER_CACHE_DIR", str(tmp_path / "mine"))
    assert dirs.default_cache_dir() == tmp_path / "mine"


@pytest.mark.skipif(os.geteuid() != 0, reason="root's own rules")
def test_root_makes_no_cache_in_another_users_directory(manifest, tmp_path):
    """`sudo -E recorder score` with a user's $HOME: root neither creates a directory in the
    user's home nor follows the user's link."""
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    assert graph(manifest, home / ".cache" / "recorder").entry is None
    assert list(home.iterdir()) == []
    elsewhere = tmp_path / "root-only"
    elsewhere.mkdir(mode=0o700)
    link = home / "cache"
    link.symlink_to(elsewhere)
    os.lchown(link, 1000, 1000)
    assert graph(manifest, link).entry is None
    assert graph(manifest, tmp_path / "root-cache").entry is not None  # root's own: used
