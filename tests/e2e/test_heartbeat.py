"""A visible heartbeat: `status` and the state file tell when audio last arrived."""

from __future__ import annotations

import os
import time

from harness import QUIET, Daemon


def test_status_and_the_state_file_show_when_audio_last_arrived(tmp_path):
    state = tmp_path / "state.txt"
    config = tmp_path / "c.toml"
    config.write_text(f'[indicator]\nstate_file = "{state}"\n')
    with Daemon(tmp_path, "--config", str(config), model=None, state_file=state) as d:
        assert state.read_text() == "listening\n"
        before = d.status()
        assert before["last_audio_at"] is None and before["last_audio_s_ago"] is None
        old = time.time() - 100
        os.utime(state, (old, old))  # as if no audio had come for 100 s
        d.feed(QUIET)  # 1 s of silence, taken in
        after = d.status()
        assert after["audio_s"] >= 0.9
        assert after["state"] == "listening" and 0 <= after["last_audio_s_ago"] < 10
        assert after["last_audio_at"].endswith("Z")
        assert time.time() - state.stat().st_mtime < 10  # refreshed by the audio
        d.stop()
