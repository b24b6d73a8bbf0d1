"""Microphone faults through the real sounddevice -> PortAudio -> ALSA path of `recorder run`.

The virtual microphone (virtual_mic.py) fakes the faults: `pause()` stops feeding it (a stalled
device: the daemon's ALSA read blocks), `unplug()` / `plug()` remove and restore its definition
in the `.asoundrc` that alsa-lib reads (a device that disappears or appears; the daemon sees it
when it re-initialises PortAudio). The daemon must report a fault (state `error`, one log line),
keep a request in progress (`device_lost`), not spin while the device is gone, reopen the
device by itself once it is back (state `listening`), and still stop promptly on SIGTERM.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from conftest import AUDIO, SCENES, read_pcm, recordings, run_recorder
from harness import Daemon, mic_daemon
from virtual_mic import VirtualMic

RATE = 16000
ERROR_WITHIN_S = 2.5  # a stall (2 s without audio) is reported within this of the pause
RECOVER_WITHIN_S = 3.0  # back to listening after the device is back (first retry is at once)
LEAD_S = 1.0  # of each scene's 2 s leading quiet, to keep the tests short
MAX_CPU_PER_S = 0.3  # CPU seconds per wall second while the device is lost
EXIT_WITHIN_S = 1.0  # SIGTERM to exit while the device is lost
# The device missing: named, or, on a machine with no other input device, none at all.
MISSING = re.compile(r"input device 'virtualmic' not found|no audio input device found")


def scene(name: str) -> tuple[np.ndarray, dict]:
    """A test scene without the first LEAD_S of its leading quiet; times shifted to match."""
    audio, times = read_pcm(AUDIO / f"{name}.wav"), SCENES[name]
    shifted = {
        k: [t - LEAD_S for t in v] if isinstance(v, list) else v - LEAD_S for k, v in times.items()
    }
    return audio[round(LEAD_S * RATE) :], shifted


def located(mic: VirtualMic, meta: dict, samples: np.ndarray) -> int:
    """Index in mic.fed of the saved audio, found by exact search.

    The daemon numbers its samples on across a reopen, but a reopened stream starts wherever
    the pipe then is (what a stuck read had taken is lost), so the daemon's offset can only lag
    the fed stream's, by little.
    """
    assert len(samples) == meta["samples"] > 0
    found = mic.find(samples)
    assert len(found) == 1, f"saved audio found in the fed stream at {found}"
    offset = found[0]
    lag_s = (offset - round(meta["source_offset_s"] * RATE)) / RATE
    assert 0 <= lag_s < 1.0, (lag_s, meta)
    return offset


def stalled_s(d: Daemon) -> float:
    """How long ago the daemon took in its last audio (0 before any)."""
    return d.request("status")["last_audio_s_ago"] or 0.0


def check_lost_quietly(d: Daemon, cpu0: float, t0: float) -> None:
    """Since t0 (CPU time cpu0) the daemon has idled rather than spun."""
    cpu_s, wall_s = d.cpu_s() - cpu0, time.monotonic() - t0
    assert cpu_s < MAX_CPU_PER_S * wall_s, f"{cpu_s:.2f} s of CPU in {wall_s:.2f} s lost"


def test_stall_is_reported_and_recovered_without_spinning(tmp_path):
    audio, times = scene("jarvis_pause_command")
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path) as d:
        d.wait_state("listening")
        d.wait_audio(len(mic.fed) / RATE)  # a stream that delivers, caught up; then it stalls
        cpu0, t0 = d.cpu_s(), time.monotonic()
        mic.pause()
        took = d.wait_state("error", ERROR_WITHIN_S + 2)
        assert took <= ERROR_WITHIN_S, (took, d.log())
        assert "audio source mic:virtualmic failed: no audio for 2 s" in d.log()
        # The device stays lost for a while of wall time (the thing under test: the daemon
        # waits in state error, quietly, and reports nothing more).
        time.sleep(max(0.0, t0 + 3.5 - time.monotonic()))  # lost for 1.5 s
        assert d.state() == "error"
        check_lost_quietly(d, cpu0, t0)
        mic.resume()
        d.wait_state("listening", RECOVER_WITHIN_S)

        start = mic.play(audio)
        d.wait_for("a recording", lambda: any(d.rec.glob("*.json")), times["duration_s"] + 10)
        took = d.terminate()
        log = d.log()
        assert d.returncode == 0, log
        assert d.states() == ["listening", "error", "listening", "recording", "listening", "off"], (
            log
        )
        # One report of the failure, one of the recovery: nothing repeated while it lasted.
        assert log.count("failed") == 1 and log.count("retrying") == 0, log
        assert log.count("restored") == 1, log
        assert "Traceback" not in log, log

        ((meta, samples),) = recordings(d.rec)
        assert meta["end_reason"] == "silence", log
        offset = located(mic, meta, samples)
        first_s = (offset - start) / RATE
        last_s = first_s + len(samples) / RATE
        assert times["wake"][0] <= first_s <= times["command"][0], (first_s, log)
        assert last_s >= times["command"][1], (last_s, log)


def test_stall_during_a_request_saves_it_as_device_lost(tmp_path):
    audio, times = scene("jarvis_long_command")
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path) as d:
        d.wait_state("listening")
        start = mic.play(audio)
        d.wait_state("recording", times["duration_s"])
        # The daemon's stream is the fed one from its start: 1.5 s into the command.
        d.wait_audio(start / RATE + times["command"][0] + 1.5, times["duration_s"])
        mic.pause()
        fed_at_pause = len(mic.fed)
        d.wait_for("a recording", lambda: any(d.rec.glob("*.json")), ERROR_WITHIN_S + 2)
        d.wait_state("error", 1)
        mic.resume()
        d.wait_state("listening", RECOVER_WITHIN_S)
        log = d.log()
        assert d.states() == ["listening", "recording", "error", "listening"], log

        ((meta, samples),) = recordings(d.rec)
        assert meta["end_reason"] == "device_lost", log
        offset = located(mic, meta, samples)
        first_s = (offset - start) / RATE
        last_s = first_s + len(samples) / RATE
        assert times["wake"][0] <= first_s <= times["command"][0], (first_s, log)
        # Everything captured up to the stall is kept: the saved audio ends where feeding did
        # (give or take the block a blocked read had taken), well into the command.
        end_lag_s = (fed_at_pause - (offset + len(samples))) / RATE
        assert 0 <= end_lag_s <= 0.25, (end_lag_s, log)
        assert last_s > times["command"][0] + 1.0, (last_s, log)


def test_device_missing_at_start_is_waited_for(tmp_path):
    audio, times = scene("jarvis_pause_command")
    mic = VirtualMic(tmp_path, plugged=False)
    mic.pause()  # nothing to feed: the device is not there
    with mic, mic_daemon(mic, tmp_path, "--wait-for-device") as d:
        d.wait_state("error")
        cpu0, t0 = d.cpu_s(), time.monotonic()
        d.wait_log(re.compile(f"^WARNING ({MISSING.pattern}).*; retrying$", re.M), 1)
        # Retries 0.5 and 1.5 s after the first attempt (backoff doubling from 0.5 s), on the
        # wall clock: this waits for the one at 0.5 s to fail too (the thing under test: a
        # failure that repeats is not reported again; nothing marks such a retry)...
        time.sleep(1.0)
        assert d.state() == "error", d.log()

        # ... so the one at 1.5 s, re-initialising PortAudio, finds the device plugged in and
        # opens it; but it delivers nothing yet, which is not a recovery.
        mic.plug()
        d.wait_log(
            re.compile("^WARNING audio source mic:virtualmic: no audio for 2 s; retrying$", re.M),
            5.0,
        )
        assert d.proc.poll() is None and d.state() == "error", d.log()
        check_lost_quietly(d, cpu0, t0)

        mic.resume()  # now it does: reopened at the next retry (3.5 s after the last)
        d.wait_state("listening", 4.0 + RECOVER_WITHIN_S)
        start = mic.play(audio)
        d.wait_for("a recording", lambda: any(d.rec.glob("*.json")), times["duration_s"] + 10)
        log = d.log()
        # Each kind of failure reported once, not at every retry.
        assert len(MISSING.findall(log)) == 1 and log.count("no audio for") == 1, log
        assert log.count("restored") == 1, log
        states = d.states()
        if states[:1] == ["listening"]:  # announced once the models are loaded (daemon.py)
            states = states[1:]
        assert states[:3] == ["error", "listening", "recording"], d.states()

        ((meta, samples),) = recordings(d.rec)
        assert meta["end_reason"] == "silence", log
        offset = located(mic, meta, samples)
        first_s = (offset - start) / RATE
        assert times["wake"][0] <= first_s <= times["command"][0], (first_s, log)
        assert first_s + len(samples) / RATE >= times["command"][1], log


def test_device_missing_at_start_without_waiting_is_one_line_exit_2(tmp_path):
    with VirtualMic(tmp_path, plugged=False) as mic:
        proc = run_recorder(
            "run",
            "--source",
            "mic:virtualmic",
            "--model",
            "hey_jarvis",
            "--recordings",
            str(tmp_path / "recordings"),
            "--runtime-dir",
            str(tmp_path / "run"),
            "--state-dir",
            str(tmp_path / "state.d"),
            env=mic.env,
            timeout=60,
        )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("recorder: error: ") and MISSING.search(lines[0]), err
    assert not (tmp_path / "recordings").exists() or not any((tmp_path / "recordings").iterdir())


def test_unplugged_device_is_reopened_when_plugged_back(tmp_path):
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path) as d:
        d.wait_state("listening")
        mic.unplug()
        mic.pause()
        d.wait_state("error", ERROR_WITHIN_S + 2)
        cpu0, t0 = d.cpu_s(), time.monotonic()
        # Audio flows into the pipe again, which frees the daemon's blocked read; its
        # re-initialised PortAudio no longer lists the device.
        mic.resume()
        d.wait_log(MISSING, RECOVER_WITHIN_S)
        # A retry or two on the wall clock while the device is gone (the thing under test:
        # the daemon stays in error, idle, and reports the loss once).
        time.sleep(1.0)
        assert d.state() == "error", d.log()
        check_lost_quietly(d, cpu0, t0)
        mic.plug()
        d.wait_state("listening", 5.0 + RECOVER_WITHIN_S)
        fed = len(mic.fed)
        d.wait_for("audio after the reopen", lambda: len(mic.fed) > fed + RATE, 3)
        assert d.state() == "listening", d.log()
        took = d.terminate()
        log = d.log()
        assert d.returncode == 0 and took < EXIT_WITHIN_S, (took, log)
        assert d.states() == ["listening", "error", "listening", "off"], log
        assert log.count("failed") == 1 and len(MISSING.findall(log)) == 1, log


@pytest.mark.parametrize("fault", ["stalling", "stalled", "missing"])
def test_sigterm_while_the_device_is_lost_exits_promptly(tmp_path, fault):
    """Stalling: the daemon's read is blocked, the stall not yet reported; stalled: reported,
    the blocked stream still closing; missing: the device is not there to open."""
    mic = VirtualMic(tmp_path, plugged=fault != "missing")
    args = ["--wait-for-device"] if fault == "missing" else []
    with mic, mic_daemon(mic, tmp_path, *args) as d:
        if fault == "missing":
            d.wait_state("error")
        else:
            d.wait_state("listening")
            mic.pause()  # the daemon's read blocks, and stays blocked
            if fault == "stalled":
                d.wait_state("error", ERROR_WITHIN_S + 2)
        if fault == "stalling":
            # no audio for half a second, but not yet the 2 s that make a stall
            d.wait_for("a blocked read", lambda: stalled_s(d) >= 0.5, ERROR_WITHIN_S)
            assert d.state() == "listening", d.log()
        else:
            # Half a second into the fault, on the wall clock (the thing under test: a stop
            # while the blocked stream still closes, or between two attempts to reopen).
            time.sleep(0.5)
        took = d.terminate()
        log = d.log()
        assert d.returncode == 0, log
        assert took < EXIT_WITHIN_S, (took, log)
        assert d.state() == "off", log
        assert "Traceback" not in log, log
