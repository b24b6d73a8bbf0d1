"""kill -9 at random moments while requests are being saved: only complete pairs are visible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import AUDIO, read_pcm, run_recorder
from harness import kill_while_saving

KILLS = 20


def check_visible(rec: Path) -> int:
    """Every WAV is complete and matches its sidecar. A sidecar may briefly precede its WAV
    (the WAV is then a complete hidden temp file that the next start renames into place)."""
    for wav in rec.glob("*.wav"):
        meta = json.loads(wav.with_suffix(".json").read_text())
        samples = read_pcm(wav)
        assert len(samples) == meta["samples"]
        assert hashlib.sha256(samples.tobytes()).hexdigest() == meta["audio_sha256"]
    for sidecar in rec.glob("*.json"):
        if not sidecar.with_suffix(".wav").exists():
            tmp = rec / f".{sidecar.stem}.wav.tmp"
            assert tmp.exists(), f"{sidecar.name} has no WAV"
    return len(list(rec.glob("*.wav")))


def test_kill_9_never_leaves_a_broken_recording(tmp_path):
    rec = tmp_path / "rec"
    saved_before = kill_while_saving(
        tmp_path, rec, ["--model", "hey_jarvis"], check_visible, KILLS, seed=1234
    )
    assert saved_before >= KILLS  # every daemon had saved before it was killed
    # a clean start completes or removes whatever the last kill interrupted
    proc = run_recorder(
        "run", "--source", f"file:{AUDIO / 'jarvis_bare.wav'}", "--recordings", str(rec)
    )
    assert proc.returncode == 0
    assert check_visible(rec) >= saved_before
    assert sorted(p.stem for p in rec.glob("*.wav")) == sorted(p.stem for p in rec.glob("*.json"))
    assert [p.name for p in rec.iterdir() if p.name.startswith(".")] == []
