"""Lost audio is told, never hidden: blocks dropped while the processing thread is held up
show as gaps in the sidecar, the saved WAV is the delivered audio bit-exact, and the offsets
count the lost samples, so they stay true to the device's time."""

from __future__ import annotations

import signal

import numpy as np
from conftest import AUDIO, read_pcm, recordings
from harness import wait_for
from virtual_mic import VirtualMic

from recorder import daemon
from recorder.config import Config, StorageConfig, WakeConfig
from recorder.machine import State
from recorder.mute import MuteSwitch
from recorder.sources import mic as mic_mod

STALL_BLOCKS = 4


def test_dropped_blocks_are_gaps_and_offsets_stay_true(tmp_path, monkeypatch):
    audio = read_pcm(AUDIO / "jarvis_long_command.wav")
    monkeypatch.setattr(mic_mod, "QUEUE_BLOCKS", 3)  # 240 ms of slack
    with VirtualMic(tmp_path) as mic:
        monkeypatch.setenv("HOME", str(mic.home))
        sd = mic_mod._sounddevice()
        sd._terminate()  # PortAudio reads the virtual mic's ALSA configuration afresh
        sd._initialize()
        source = mic_mod.MicSource("virtualmic")
        config = Config(
            wake=WakeConfig(models=("hey_jarvis",)),
            storage=StorageConfig(directory=str(tmp_path / "rec")),
            base_dir=tmp_path,
        )
        flags = daemon.Flags()
        d = daemon.build_daemon(config, source, MuteSwitch(tmp_path / "state"), flags=flags)
        d.p.storage.prepare()
        seen = {"frames": 0, "recording": 0, "start": None, "stalled": 0}

        def observe(frame, scores, speech, state):
            seen["frames"] += 1
            if seen["start"] is None:
                seen["start"] = mic.play(audio)
            if state is State.RECORDING:
                seen["recording"] += 1
            if seen["recording"] == 8 and not seen["stalled"]:
                # hold the processing thread until the callback has dropped blocks
                before = source.dropped_blocks
                wait_for(lambda: source.dropped_blocks >= before + STALL_BLOCKS, timeout=20)
                seen["stalled"] = source.dropped_blocks - before
            if d.saved or seen["frames"] > 600:
                flags.stop_signal = signal.SIGTERM

        d.observers.append(observe)
        try:
            d.run()
        finally:
            source.close()
            sd._terminate()
            sd._initialize()
        assert seen["stalled"] >= STALL_BLOCKS
        [(meta, samples)] = recordings(tmp_path / "rec")
        gaps = meta["gaps"]
        assert gaps and all(g["samples"] % 1280 == 0 for g in gaps), gaps
        assert sum(g["samples"] for g in gaps) >= STALL_BLOCKS * 1280
        assert meta["samples"] == len(samples)

        # the saved audio is the delivered audio: each piece between gaps is found in what
        # the device was fed, and the next piece starts exactly `samples` later
        fed = mic.fed
        cuts = [round(g["offset_s"] * 16000) for g in gaps]
        pieces = np.split(samples, cuts)
        where = mic.find(pieces[0])
        assert len(where) == 1
        position = where[0]
        assert abs(meta["source_offset_s"] * 16000 - position) <= 2  # lost samples counted
        for i, piece in enumerate(pieces):
            assert np.array_equal(fed[position : position + len(piece)], piece), i
            position += len(piece) + (gaps[i]["samples"] if i < len(gaps) else 0)
