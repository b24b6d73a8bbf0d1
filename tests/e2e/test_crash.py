"""kill -9 at random moments while requests are being saved: only complete pairs are visible."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from conftest import AUDIO, RECORDER, read_pcm, run_recorder

KILLS = 20
STREAM = np.tile(read_pcm(AUDIO / "two_requests.wav"), 30).tobytes()


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


def feed(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.write(STREAM)
        proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass


def listen_for_ready(path: Path) -> queue.Queue:
    """A queue that gets an item for every READY=1 sent to the notify socket at `path`; the
    socket is read all the time, so a daemon never waits to send its STATUS lines."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    ready: queue.Queue = queue.Queue()

    def read() -> None:
        while True:
            if notify.recv(4096).startswith(b"READY=1"):
                ready.put(True)

    threading.Thread(target=read, daemon=True).start()
    return ready


def kill_while_saving(
    tmp_path: Path, rec: Path, args: list[str], check: Callable[[Path], int], kills: int, seed: int
) -> int:
    """`kills` times: start `recorder run ARGS --source stdin` on a stream of requests, wait for
    READY=1, SIGKILL it at a random moment while it saves, then `check` what is visible (which
    returns the number of complete recordings: it never goes down). Returns the last count."""
    rng = random.Random(seed)
    saved_before = 0
    ready = listen_for_ready(tmp_path / "notify.sock")
    for _ in range(kills):
        proc = subprocess.Popen(
            [str(RECORDER), "run", *args, "--source", "stdin", "--recordings", str(rec)]
            + ["--runtime-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state")],
            stdin=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
        )
        writer = threading.Thread(target=feed, args=(proc,), daemon=True)
        writer.start()
        ready.get(timeout=60)  # the daemon is up: models loaded, reading the stream
        # A random moment while it saves, counted in saves rather than in seconds (a loaded
        # machine saves more slowly): after 1 to 3 more, then up to one save's time more.
        target = saved_before + rng.randint(1, 3)
        deadline = time.monotonic() + 120
        while len(list(rec.glob("*.json"))) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        writer.join(timeout=10)
        assert rec.exists()
        count = check(rec)
        assert count >= saved_before  # nothing that was complete was lost
        saved_before = count
    return saved_before


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
