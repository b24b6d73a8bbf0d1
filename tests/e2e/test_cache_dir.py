"""End to end: `recorder run` keeps the engine's built graph in its cache directory (systemd's
`CacheDirectory=` here) and the next start uses it, saving what a start that built it saves.
The directory also keeps the hashes of the model files verified."""

from __future__ import annotations

import json
import os

from conftest import AUDIO, recordings, run_recorder

from recorder import digest, models


def test_a_second_start_uses_the_cached_graph_and_saves_the_same(tmp_path, monkeypatch):
    monkeypatch.delenv("RECORDER_CACHE_DIR", raising=False)
    cache = tmp_path / "cache"
    env = {"CACHE_DIRECTORY": str(cache)}

    def run(rec: str) -> list:
        proc = run_recorder(
            "run",
            "--source",
            f"file:{AUDIO / 'alexa_command.wav'}",
            "--recordings",
            str(tmp_path / rec),
            "--model",
            "alexa",
            "--model",
            "hey_jarvis",
            env=env,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        return recordings(tmp_path / rec)

    def graph() -> dict[str, int]:
        return {p.suffix: p.stat().st_ino for p in cache.iterdir() if p.name != digest.STORE}

    first = run("first")
    entry = graph()
    assert sorted(entry) == [".json", ".onnx", ".state"]
    meta = next(p for p in cache.glob("*.json") if p.name != digest.STORE)
    assert json.loads(meta.read_text())["history"] == 16
    second = run("second")
    assert graph() == entry  # read, not rewritten
    manifest = models.load_manifest()
    files = [manifest.features["melspectrogram"], manifest.wakewords["alexa"]]
    remembered = {
        tuple(row[:5]): row[5] for row in json.loads((cache / digest.STORE).read_bytes())["files"]
    }
    for f in files:
        st = os.stat(manifest.path(f))
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        assert remembered[identity] == f.sha256
    assert len(first) == len(second) == 1
    (meta1, audio1), (meta2, audio2) = first[0], second[0]
    assert (audio1 == audio2).all() and len(audio1) > 16000
    assert meta1["score"] == meta2["score"] and meta1["wake_word"] == meta2["wake_word"] == "alexa"
