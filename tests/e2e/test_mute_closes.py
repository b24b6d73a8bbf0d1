"""Mute closes the microphone: while muted the daemon holds no descriptor on the device, and
`muted` is shown only once it is released; unmute reopens it and requests are saved again.
The physical mute switch (gpiozero's mock pins) forces mute and overrides unmute; the mute
button toggles mute as `recorder mute` and `unmute` do."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import gpiozero
import pytest
from conftest import AUDIO, read_pcm, recordings, run_recorder
from gpiozero.pins.mock import MockFactory
from harness import mic_daemon
from virtual_mic import VirtualMic

from recorder import daemon as daemon_mod
from recorder.config import Config, IndicatorConfig, StorageConfig, WakeConfig
from recorder.mute import BOUNCE_S, MuteButton, MuteSwitch
from recorder.sources import FileSource
from recorder.sources.base import Unclosable


def holds(pid: int, path: Path) -> bool:
    """Whether process `pid` has an open descriptor on `path`."""
    fds = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fds):
        try:
            if os.readlink(fds / fd) == str(path):
                return True
        except OSError:
            continue
    return False


def test_mute_releases_the_device_and_unmute_records_again(tmp_path):
    audio = read_pcm(AUDIO / "jarvis_pause_command.wav")
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path) as d:
        d.wait_state("listening")
        pid = d.proc.pid
        assert holds(pid, mic.fifo)  # the open stream reads the device
        proc = d.cli("mute")
        assert proc.returncode == 0, proc.stderr.decode()
        d.wait_state("muted", timeout=10)
        assert not holds(pid, mic.fifo), d.log()  # shown muted: already released
        assert list(d.rec.glob("*.json")) == []
        proc = d.cli("unmute")
        assert proc.returncode == 0, proc.stderr.decode()
        d.wait_state("listening", timeout=10)
        d.wait_for("the device reopened", lambda: holds(pid, mic.fifo), 10)
        start = mic.play(audio)
        d.wait_for("a saved request", lambda: any(d.rec.glob("*.json")), 30)
        d.terminate()
        [(meta, samples)] = recordings(d.rec)
        found = mic.find(samples)  # bit-exact audio from the device, played after the unmute
        assert found and found[0] >= start, d.log()
        audit = (d.state_dir / "audit.log").read_text()
        assert f'"event":"muted","by":"daemon","uid":{os.getuid()}' in audit


def test_a_daemon_started_muted_never_holds_the_device(tmp_path):
    state_dir = tmp_path / "state.d"
    MuteSwitch(state_dir).set(True)
    with VirtualMic(tmp_path) as mic, mic_daemon(mic, tmp_path, state_dir=state_dir) as d:
        d.wait_state("muted")
        assert not holds(d.proc.pid, mic.fifo), d.log()


@pytest.fixture
def pins():
    previous = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = MockFactory()
    yield gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory.reset()
    gpiozero.Device.pin_factory = previous


class SwitchedAt(Unclosable):
    """A file source during which the test flips the mute switch at given frames."""

    def __init__(self, inner: FileSource, actions: dict[int, object]):
        self.inner, self.actions = inner, actions
        self.description, self.live = inner.description, inner.live

    def frames(self, should_stop):
        for frame in self.inner.frames(should_stop):
            action = self.actions.get(frame.index)
            if action is not None:
                action()
            yield frame

    def close(self) -> None:
        self.inner.close()


def test_the_mute_switch_forces_mute_and_overrides_unmute(tmp_path, pins):
    pin = pins.pin(17)
    config = Config(
        wake=WakeConfig(models=("hey_jarvis",)),
        storage=StorageConfig(directory=str(tmp_path / "rec")),
        base_dir=tmp_path,
    )
    replies = []
    source = SwitchedAt(
        FileSource(AUDIO / "two_requests.wav"),
        {
            1: lambda: pin.drive_low(),  # switch closed (to ground): muted
            10: lambda: replies.append(d.control("unmute")),
            75: lambda: pin.drive_high(),  # 6.0 s, between the two requests: open again
        },
    )
    d = daemon_mod.build_daemon(config, source, MuteSwitch(tmp_path / "state"))
    d.muting.button = MuteButton(17)
    d.p.storage.prepare()
    records = []
    d.journal.subscribe(records.append)
    d.run()
    d.muting.close()
    assert replies and replies[0]["ok"] is False and "switch" in replies[0]["error"]
    events = [(r["event"], r.get("switch")) for r in records if "muted" in r["event"]]
    assert events == [("muted", True), ("unmuted", True)]
    recs = recordings(tmp_path / "rec")
    assert len(recs) == 1  # the first request fell inside the switch's mute
    assert recs[0][0]["source_offset_s"] > 6.0


def test_the_mute_button_toggles_mute_like_the_control_socket(tmp_path, pins):
    pin = pins.pin(17)
    state = tmp_path / "state"
    config = Config(
        wake=WakeConfig(models=("hey_jarvis",)),
        storage=StorageConfig(directory=str(tmp_path / "rec")),
        indicator=IndicatorConfig(mute_button=17),
        base_dir=tmp_path,
    )
    released: list[float] = []
    persisted: list[bool] = []

    def press() -> None:
        while released and time.monotonic() - released[-1] < BOUNCE_S * 1.5:
            time.sleep(0.01)  # a finger's press: the button was up longer than a bounce
        pin.drive_low()
        pin.drive_high()
        released.append(time.monotonic())
        persisted.append(MuteSwitch(state).is_muted())

    source = SwitchedAt(
        FileSource(AUDIO / "two_requests.wav"),
        {1: press, 30: lambda: persisted.append(MuteSwitch(state).is_muted()), 75: press},
    )
    d = daemon_mod.build_daemon(
        config, source, MuteSwitch(state), service=daemon_mod.Service(state, obey_mute=True)
    )
    d.p.storage.prepare()
    records = []
    d.journal.subscribe(records.append)
    try:
        d.run()
    finally:
        daemon_mod._release(d)
    assert persisted == [True, True, False]  # each press set the switch file, as mute does
    events = [(r["event"], r.get("button")) for r in records if "muted" in r["event"]]
    assert events == [("muted", True), ("unmuted", True)]
    recs = recordings(tmp_path / "rec")
    assert len(recs) == 1  # the first request fell inside the mute
    assert recs[0][0]["source_offset_s"] > 6.0
    audit = [json.loads(line) for line in (state / "audit.log").read_text().splitlines()]
    assert [(e["event"], e["uid"], e["button"]) for e in audit if "muted" in e["event"]] == [
        ("muted", None, True),
        ("unmuted", None, True),
    ]
    assert pin.function == "input"  # released with the daemon


@pytest.mark.parametrize("other", ["mute_switch", "gpio_led"])
def test_the_mute_button_on_a_pin_already_used_is_one_line_exit_2(tmp_path, other):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[indicator]\n{other} = 17\nmute_button = 17\n")
    proc = run_recorder(
        "run",
        "--config",
        str(cfg),
        "--source",
        f"file:{AUDIO / 'jarvis_bare.wav'}",
        "--recordings",
        str(tmp_path / "rec"),
    )
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        f"recorder: error: {cfg}: [indicator] mute_button: GPIO 17 is also {other}'s pin\n"
    )
    assert not (tmp_path / "rec").exists()


def test_mute_button_without_gpiozero_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[indicator]\nmute_button = 17\n")
    proc = run_recorder(
        "run",
        "--config",
        str(cfg),
        "--source",
        f"file:{AUDIO / 'jarvis_bare.wav'}",
        "--recordings",
        str(tmp_path / "rec"),
        "--state-dir",
        str(tmp_path / "state"),
        env={"GPIOZERO_PIN_FACTORY": "nonexistent"},
    )
    assert proc.returncode == 2
    [line] = proc.stderr.decode().strip().splitlines()[-1:]
    assert line.startswith("recorder: error: [indicator] mute_button: GPIO 17: "), proc.stderr


def test_mute_switch_without_gpiozero_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[indicator]\nmute_switch = 17\n")
    env = {"GPIOZERO_PIN_FACTORY": "nonexistent"}
    proc = run_recorder(
        "run",
        "--config",
        str(cfg),
        "--source",
        f"file:{AUDIO / 'jarvis_bare.wav'}",
        "--recordings",
        str(tmp_path / "rec"),
        env=env,
    )
    assert proc.returncode == 2
    [line] = proc.stderr.decode().strip().splitlines()[-1:]
    assert line.startswith("recorder: error: [indicator] mute_switch"), proc.stderr


def test_a_file_source_with_a_state_dir_honours_a_persisted_mute(tmp_path):
    state, rec = tmp_path / "state", tmp_path / "rec"
    scene = f"file:{AUDIO / 'jarvis_pause_command.wav'}"
    assert (
        run_recorder(
            "mute", "--state-dir", str(state), "--runtime-dir", str(tmp_path / "r")
        ).returncode
        == 0
    )
    proc = run_recorder(
        "run", "--source", scene, "--recordings", str(rec), "--state-dir", str(state)
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"(muted)" in proc.stderr and list(rec.glob("*.json")) == []
    MuteSwitch(state).set(False)
    proc = run_recorder(
        "run", "--source", scene, "--recordings", str(rec), "--state-dir", str(state)
    )
    assert proc.returncode == 0 and len(list(rec.glob("*.json"))) == 1
    # the default state directory muted: a file source without --state-dir does not obey it
    assert run_recorder("mute", "--runtime-dir", str(tmp_path / "r")).returncode == 0
    proc = run_recorder("run", "--source", scene, "--recordings", str(tmp_path / "rec2"))
    assert proc.returncode == 0 and len(list((tmp_path / "rec2").glob("*.json"))) == 1
