"""Raspberry Pi indicators: an LED on gpiozero's mock pins and APA102 LEDs on a fake SPI device,
driven by the real daemon (engine, VAD, machine, storage) on a real scene."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import gpiozero
import pytest
from conftest import AUDIO, recordings, run_recorder
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from harness import wait_for

from recorder import daemon
from recorder.config import Config, IndicatorConfig, StorageConfig, WakeConfig
from recorder.indicators import Devices, build_indicators, build_lights
from recorder.indicators.devices import SpiPort
from recorder.indicators.gpio import DIM
from recorder.machine import State
from recorder.mute import MuteSwitch
from recorder.pipeline import build_pipeline
from recorder.sources import FileSource

SCENE = AUDIO / "jarvis_pause_command.wav"
PIN = 17
OFF, LISTENING, RECORDING = State.OFF, State.LISTENING, State.RECORDING


@pytest.fixture(autouse=True)
def devices():
    """gpiozero's own mock pins (PWM-capable unless a test says otherwise), and the registry of
    the devices a test's daemon owns, opening SPI ports with FakeSpi."""
    previous = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    FakeSpi.opened = []
    owned = Devices(spi_factory=FakeSpi)
    yield owned
    owned.close_all()
    gpiozero.Device.pin_factory.reset()
    gpiozero.Device.pin_factory = previous


def pin_state() -> float:
    return gpiozero.Device.pin_factory.pin(PIN).state


class FakeSpi:
    """Records every write; `fail` makes opening it fail as a missing /dev/spidev would."""

    opened: list[FakeSpi] = []

    def __init__(self, bus: int, device: int):
        self.bus, self.device = bus, device
        self.writes: list[bytes] = []
        self.closed = False
        FakeSpi.opened.append(self)

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def spi():
    return FakeSpi.opened


def parse_apa102(data: bytes, leds: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Check an APA102 update's structure; its global brightness and (r, g, b) per LED."""
    assert data[:4] == b"\0\0\0\0"  # start frame
    body, end = data[4 : 4 + 4 * leds], data[4 + 4 * leds :]
    assert len(end) >= math.ceil(leds / 16) and set(end) <= {0}  # end frame: >= n/2 clocks
    frames = [body[i : i + 4] for i in range(0, len(body), 4)]
    assert all(f[0] & 0xE0 == 0xE0 for f in frames)
    assert len({f[0] for f in frames}) == 1
    return frames[0][0] & 0x1F, [(f[3], f[2], f[1]) for f in frames]  # sent as B, G, R


@dataclasses.dataclass
class Run:
    shown: list[tuple[State, object]]  # each state shown, and the probe just after
    at_save: list[object]  # the probe while each recording is being written
    recs: list
    log: str


def run_daemon(tmp_path: Path, caplog, probe, devices: Devices, **indicator) -> Run:
    """The real daemon on a real scene, in-process, probing the light at every state shown
    and while each recording is saved."""
    config = Config(
        wake=WakeConfig(models=("hey_jarvis",)),
        storage=StorageConfig(directory=str(tmp_path / "rec")),
        indicator=IndicatorConfig(**indicator),
        base_dir=tmp_path,
    )
    pipeline = build_pipeline(config, devices=devices)
    run = Run([], [], [], "")
    show, save = pipeline.indicator.show, pipeline.storage.save

    def probed_show(state: State, previous: State) -> None:
        try:
            show(state, previous)
        finally:
            run.shown.append((state, probe()))

    def probed_save(*args, **kwargs):
        run.at_save.append(probe())
        return save(*args, **kwargs)

    pipeline.indicator.show = probed_show
    pipeline.storage.save = probed_save
    d = daemon.build_daemon(
        config,
        FileSource(SCENE),
        MuteSwitch(tmp_path / "state"),
        pipeline=pipeline,
        devices=devices,
    )
    with caplog.at_level(logging.INFO, logger="recorder"):
        d.run()
    run.recs = recordings(tmp_path / "rec")
    run.log = caplog.text
    return run


@pytest.mark.parametrize(
    "pin_class, patterns, listening",
    [
        (MockPWMPin, {}, DIM),  # the defaults: listening dim, muted pulses, so a PWMLED
        (MockPin, {"gpio_muted": "blink", "gpio_listening": "off"}, 0),  # a plain LED on any pin
    ],
)
def test_gpio_led_is_on_while_a_request_is_saved_and_off_otherwise(
    tmp_path, caplog, devices, pin_class, patterns, listening
):
    gpiozero.Device.pin_factory = MockFactory(pin_class=pin_class)
    run = run_daemon(tmp_path, caplog, pin_state, devices, gpio_led=PIN, **patterns)
    assert run.shown == [(LISTENING, listening), (RECORDING, 1), (LISTENING, listening), (OFF, 0)]
    assert run.at_save == [1]  # on while the audio is persisted
    [(meta, samples)] = run.recs
    assert meta["end_reason"] == "silence" and "chime_offset_s" not in meta


def toggles(pin) -> int:
    values = [s.state for s in pin.states]
    return sum(1 for a, b in zip(values, values[1:], strict=False) if (a > 0.5) != (b > 0.5))


def test_gpio_patterns_blink_on_error_pulse_when_muted_and_are_configurable(devices):
    [led] = build_lights(Config(indicator=IndicatorConfig(gpio_led=PIN)), devices)
    pin = gpiozero.Device.pin_factory.pin(PIN)
    led.show(State.ERROR, LISTENING)
    wait_for(lambda: toggles(pin) >= 3, 5, "three toggles")  # blink: 0.25 s on, 0.25 s off
    pin.clear_states()
    led.show(State.MUTED, State.ERROR)

    def levels() -> list[float]:
        return [s.state for s in pin.states if 0.0 < s.state < 1.0]

    wait_for(lambda: len(levels()) >= 5, 5, "five levels")  # pulse: fading in over 1 s ...
    assert levels()[:5] == sorted(levels()[:5])  # ... through rising levels
    led.show(LISTENING, State.MUTED)
    assert pin.state == DIM  # listening: dim, so a live daemon shows
    pin.clear_states()
    time.sleep(0.3)  # a while of wall time: the light must not change in it
    assert [s.state for s in pin.states] == [DIM]  # and it stays so
    led.show(OFF, LISTENING)
    assert pin.state == 0
    led.show(OFF, LISTENING)
    assert pin.state == 0

    devices.close_all()
    [led] = build_lights(
        Config(
            indicator=IndicatorConfig(
                gpio_led=PIN, gpio_recording="blink", gpio_listening="on", gpio_error="off"
            )
        ),
        devices,
    )
    pin = gpiozero.Device.pin_factory.pin(PIN)
    led.show(LISTENING, OFF)
    assert pin.state == 1
    led.show(State.ERROR, LISTENING)
    assert pin.state == 0
    pin.clear_states()
    led.show(RECORDING, LISTENING)
    wait_for(lambda: toggles(pin) >= 2, 5, "two toggles")


@pytest.mark.parametrize("why", ["pin in use", "no PWM for pulse", "no SPI device"])
def test_a_light_that_cannot_be_set_up_discards_the_request(tmp_path, caplog, devices, spi, why):
    indicator: dict = {"gpio_led": PIN}
    if why == "pin in use":
        holder = gpiozero.LED(PIN)  # another device has the pin
    elif why == "no PWM for pulse":
        gpiozero.Device.pin_factory = MockFactory(pin_class=MockPin)
    else:
        indicator = {"apa102": {"leds": 3}}
        devices.spi_factory = _missing_spi
    run = run_daemon(tmp_path, caplog, lambda: None, devices, **indicator)
    assert run.recs == [] and run.at_save == []  # nothing was written
    assert "indicator failed, discarding the request" in run.log
    assert [s for s, _ in run.shown] == [LISTENING, RECORDING, State.ERROR, LISTENING, OFF]
    if why == "pin in use":
        assert holder.value == 0  # the other device's pin was left alone


def _missing_spi(bus: int, device: int) -> SpiPort:
    raise FileNotFoundError(2, "No such file or directory", f"/dev/spidev{bus}.{device}")


def test_a_failed_light_is_retried_and_only_discards_when_required(tmp_path, caplog, devices):
    holder = gpiozero.LED(PIN)
    run = run_daemon(tmp_path / "a", caplog, lambda: None, devices, gpio_led=PIN, required=False)
    assert len(run.recs) == 1  # not required: kept, with a warning
    assert "indicator failed: gpio_led: cannot set up GPIO 17" in run.log
    holder.close()  # the pin is free again: set up at the next state change
    run = run_daemon(tmp_path / "b", caplog, pin_state, devices, gpio_led=PIN)
    assert run.shown == [(LISTENING, DIM), (RECORDING, 1), (LISTENING, DIM), (OFF, 0)]
    assert len(run.recs) == 1


def test_apa102_frames_carry_the_colour_of_each_state_and_end_all_off(
    tmp_path, caplog, devices, spi
):
    def last_frame():
        [port] = spi
        return parse_apa102(port.writes[-1], 3)

    run = run_daemon(
        tmp_path,
        caplog,
        last_frame,
        devices,
        apa102={"leds": 3, "brightness": 0.5, "colors": {"listening": "#102030"}},
    )
    dim = round(0.5 * 31)
    assert run.shown == [
        (LISTENING, (dim, [(0x10, 0x20, 0x30)] * 3)),
        (RECORDING, (dim, [(0, 0, 255)] * 3)),  # the default: blue
        (LISTENING, (dim, [(0x10, 0x20, 0x30)] * 3)),
        (OFF, (0, [(0, 0, 0)] * 3)),
    ]
    assert run.at_save == [(dim, [(0, 0, 255)] * 3)]
    [port] = spi
    assert (port.bus, port.device) == (0, 1) and len(port.writes) == 4
    assert len(port.writes[0]) == 4 + 3 * 4 + 4 + 1
    devices.close_all()
    assert port.closed and parse_apa102(port.writes[-1], 3) == (0, [(0, 0, 0)] * 3)


def test_apa102_defaults_and_options(devices, spi):
    [ring] = build_lights(
        Config(
            indicator=IndicatorConfig(
                apa102={
                    "leds": 12,
                    "brightness": 1,
                    "bus": 1,
                    "device": 0,
                    "power_pin": 5,
                    "colors": {"error": "#00ff00"},
                }
            )
        ),
        devices,
    )
    [port] = spi
    assert (port.bus, port.device) == (1, 0)
    assert gpiozero.Device.pin_factory.pin(5).state == 1  # the 4-mic array's LED power
    expect = {
        State.MUTED: (255, 0, 0),
        State.ERROR: (0, 255, 0),
        LISTENING: (0, 0x10, 0),
        RECORDING: (0, 0, 255),
        OFF: (0, 0, 0),
    }
    for state, color in expect.items():
        ring.show(state, LISTENING)
        brightness, colors = parse_apa102(port.writes[-1], 12)
        assert colors == [color] * 12 and brightness == (31 if any(color) else 0)
    assert len(port.writes[-1]) == 4 + 12 * 4 + 4 + 1
    devices.close_all()
    assert port.closed and gpiozero.Device.pin_factory.pin(5).state == 0


def test_a_new_configuration_takes_over_the_lights(devices, spi):
    """SIGHUP builds a new indicator while the old one still owns the pin: it takes it over
    (no "pin in use"), and releases what the new configuration no longer has."""
    first = build_indicators(
        Config(indicator=IndicatorConfig(gpio_led=PIN, apa102={"leds": 3})), devices
    )
    first.show(RECORDING, LISTENING)
    second = build_indicators(Config(indicator=IndicatorConfig(gpio_led=PIN)), devices)
    second.show(LISTENING, RECORDING)  # raises if the pin could not be set up
    assert pin_state() == DIM
    [port] = spi
    assert port.closed and parse_apa102(port.writes[-1], 3)[1] == [(0, 0, 0)] * 3
    second.show(RECORDING, LISTENING)
    assert pin_state() == 1
    third = build_indicators(
        Config(indicator=IndicatorConfig(gpio_led=PIN, gpio_muted="blink", gpio_listening="off")),
        devices,
    )  # no pulse, no dim: a plain LED replaces the PWMLED
    third.show(RECORDING, LISTENING)
    assert pin_state() == 1 and not isinstance(devices._owned[("gpio", PIN)], gpiozero.PWMLED)
    build_indicators(Config(), devices)  # no light configured: released, turned off
    assert pin_state() == 0 and gpiozero.Device.pin_factory.pin(PIN).function == "input"


BLOCK = """import sys

class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("gpiozero", "spidev"):
            raise ModuleNotFoundError(f"No module named {name!r}")

sys.meta_path.insert(0, _Missing())
"""


@pytest.mark.parametrize(
    "body, message",
    [
        ("gpio_led = 17", "gpio_led needs gpiozero: pip install 'wakeword-recorder[pi]'"),
        ("apa102 = { leds = 3 }", "apa102 needs spidev: pip install 'wakeword-recorder[pi]'"),
    ],
)
def test_without_the_pi_extra_a_hardware_light_is_a_start_error(tmp_path, body, message):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    config = tmp_path / "c.toml"
    config.write_text(f"[indicator]\n{body}\n")
    proc = run_recorder(
        "run",
        "--config",
        str(config),
        "--source",
        f"file:{SCENE}",
        "--recordings",
        str(tmp_path / "rec"),
        env={"PYTHONPATH": str(site)},
    )
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.decode().splitlines() == [f"recorder: error: {message}"]
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir())


def test_recorder_run_with_a_gpio_led_on_mock_pins(tmp_path):
    """The installed command, end to end, on gpiozero's mock pin factory."""
    config = tmp_path / "c.toml"
    config.write_text("[indicator]\ngpio_led = 17\n")
    proc = run_recorder(
        "run",
        "--config",
        str(config),
        "--source",
        f"file:{SCENE}",
        "--recordings",
        str(tmp_path / "rec"),
        env={"GPIOZERO_PIN_FACTORY": "mock", "GPIOZERO_MOCK_PIN_CLASS": "mockpwmpin"},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"indicator failed" not in proc.stderr
    assert len(recordings(tmp_path / "rec")) == 1
