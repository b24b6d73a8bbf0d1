"""End to end: `recorder run` keeps the engine's built graph in its cache directory (systemd's
`CacheDirectory=` here) and the next start uses it, saving what a start that built it saves."""

from __future__ import annotations

import json

from conftest import AUDIO, recordings, run_recorder


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

    first = run("first")
    entry = {p.suffix: p.stat().st_ino for p in cache.iterdir()}
    assert sorted(entry) == [".json", ".onnx", ".state"]
    assert json.loads(next(cache.glob("*.json")).read_text())["history"] == 16
    second = run("second")
    assert {p.suffix: p.stat().st_ino for p in cache.iterdir()} == entry  # read, not rewritten
    assert len(first) == len(second) == 1
    (meta1, audio1), (meta2, audio2) = first[0], second[0]
    assert (audio1 == audio2).all() and len(audio1) > 16000
    assert meta1["score"] == meta2["score"] and meta1["wake_word"] == meta2["wake_word"] == "alexa"
