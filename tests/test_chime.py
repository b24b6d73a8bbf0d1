"""The chime player on a fake output stream: when it plays, and that it never blocks."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from conftest import tone

from recorder.indicators.chime import ChimePlayer, Output
from recorder.machine import State, StateChanged

RATE = 16000
OFF, LISTENING, RECORDING, ERROR = State.OFF, State.LISTENING, State.RECORDING, State.ERROR


class FakeSd:
    class PortAudioError(Exception):
        pass

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate
        self.writing = threading.Event()
        self.played: list[np.ndarray] = []

    def OutputStream(self, **kwargs):  # noqa: N802 (sounddevice's name)
        return FakeStream(self, kwargs)


class FakeStream:
    def __init__(self, sd: FakeSd, kwargs: dict):
        self.sd, self.kwargs, self.data = sd, kwargs, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sd.played.append(np.concatenate(self.data))

    def write(self, data: np.ndarray) -> None:
        self.sd.writing.set()
        if self.sd.gate is not None:
            self.sd.gate.wait()
        self.data.append(data)

    def abort(self) -> None:
        pass


def test_player_chimes_on_recording_start_and_end_only():
    sd = FakeSd()
    awake, done = tone(880, 0.1), tone(660, 0.05)
    player = ChimePlayer(
        sd, Output(None, "fake", 48000, 2), {"awake_sound": awake, "done_sound": done}
    )
    player.on_state(StateChanged(0, OFF, LISTENING))
    player.on_state(StateChanged(36, LISTENING, RECORDING))
    assert player.awake_meta(36) == {"chime_offset_s": 2.96, "chime_duration_s": 0.1}
    player.on_state(StateChanged(70, RECORDING, LISTENING))
    assert player.awake_meta(80) == {}  # a later request without a chime of its own
    player.on_state(StateChanged(80, LISTENING, RECORDING), discarded=True)  # light failed
    player.on_state(StateChanged(81, RECORDING, ERROR))  # ... so no done chime either
    player.on_state(StateChanged(90, ERROR, State.MUTED))
    player.on_state(StateChanged(99, LISTENING, RECORDING))
    player.on_state(StateChanged(120, RECORDING, OFF))  # the daemon stops: no done chime
    player.close(wait_s=5)
    assert [len(p) for p in sd.played] == [4800, 2400, 4800]  # awake, done, awake at 48 kHz
    assert all(p.shape[1] == 2 and np.array_equal(p[:, 0], p[:, 1]) for p in sd.played)


def test_player_never_blocks_the_caller(caplog):
    gate = threading.Event()  # the device takes nothing until set
    sd = FakeSd(gate)
    player = ChimePlayer(
        sd,
        Output(None, "fake", 16000, 1),
        {"awake_sound": tone(880, 0.1), "done_sound": tone(660, 0.1)},
    )
    player.on_state(StateChanged(0, LISTENING, RECORDING))
    assert sd.writing.wait(5)  # the chime thread is stuck in its first write
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="recorder.chime"):
        for i in range(1, 20):
            player.on_state(StateChanged(2 * i, LISTENING, RECORDING))
            player.on_state(StateChanged(2 * i + 1, RECORDING, LISTENING))
        assert time.monotonic() - t0 < 0.5
        assert "skipped: the output device is not keeping up" in caplog.text
        t0 = time.monotonic()
        player.close(wait_s=0.2)
        assert time.monotonic() - t0 < 0.5
        assert "takes no audio" in caplog.text
    gate.set()
    player._thread.join(5)
    assert not player._thread.is_alive()
