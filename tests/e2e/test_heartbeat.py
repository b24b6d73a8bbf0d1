"""A visible heartbeat: `status` and the state file tell when audio last arrived."""

from __future__ import annotations

import json
import os
import subprocess
import time

from conftest import RECORDER, run_recorder, wait_for


def test_status_and_the_state_file_show_when_audio_last_arrived(tmp_path):
    state = tmp_path / "state"
    config = tmp_path / "c.toml"
    config.write_text(f'[indicator]\nstate_file = "{state}"\n')
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            str(RECORDER),
            "run",
            "--source",
            "stdin",
            "--config",
            str(config),
            "--recordings",
            str(tmp_path / "rec"),
            "--runtime-dir",
            str(run_dir),
            "--state-dir",
            str(tmp_path / "state.d"),
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def status() -> dict:
        reply = run_recorder(
            "status",
            "--json",
            "--runtime-dir",
            str(run_dir),
            "--state-dir",
            str(tmp_path / "state.d"),
        )
        return json.loads(reply.stdout) if reply.returncode == 0 else {}

    try:
        wait_for(lambda: state.exists() and state.read_text() == "listening\n")
        before = status()
        assert before["last_audio_at"] is None and before["last_audio_s_ago"] is None
        old = time.time() - 100
        os.utime(state, (old, old))  # as if no audio had come for 100 s
        proc.stdin.write(bytes(32000))  # 1 s of silence
        proc.stdin.flush()
        after = wait_for(lambda: (s := status()).get("audio_s", 0) >= 0.9 and s)
        assert after["state"] == "listening" and 0 <= after["last_audio_s_ago"] < 10
        assert after["last_audio_at"].endswith("Z")
        assert time.time() - state.stat().st_mtime < 10  # refreshed by the audio
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert proc.returncode == 0
