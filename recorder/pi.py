"""Raspberry Pi indicators: an LED on a GPIO pin (gpiozero) and APA102 LEDs over SPI (spidev).

Both libraries come with the optional extra `recorder[pi]` and are imported only when such an
indicator is configured; without them the daemon refuses to start (one line, exit 2).

An LED that cannot be set up (pin in use, no GPIO or SPI device, SPI not enabled, ...) is a
failed indicator, as a failing command is: the daemon starts, every `show` retries the set-up
and raises IndicatorError while it fails, so with `[indicator] required = true` a request whose
`recording` state could not be shown is discarded.

A process owns each pin and SPI device once: a new configuration (SIGHUP) takes over the
devices of the previous one, and closes those it no longer uses. Every device is turned off
and closed at exit.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from recorder.errors import RecorderError
from recorder.indicator import Indicator, IndicatorError
from recorder.machine import State

if TYPE_CHECKING:
    from recorder.config import IndicatorConfig

log = logging.getLogger("recorder.indicator")

EXTRA = "pip install 'recorder[pi]'"
PATTERNS = ("on", "off", "blink", "pulse")
GPIO_STATES = (State.RECORDING, State.LISTENING, State.MUTED, State.ERROR)
"""The states with a configurable pattern (`gpio_<state>`); `off` always turns the LED off."""
BLINK_S = 0.25
"""`blink`: this long on, this long off."""
PULSE_S = 1.0
"""`pulse`: this long fading in, this long fading out (needs PWM)."""

APA102_KEYS = ("leds", "brightness", "bus", "device", "power_pin", "colors")
DEFAULT_COLORS = {
    State.RECORDING: "#0000ff",  # blue, like the Echo's ring
    State.LISTENING: "#000000",  # off
    State.MUTED: "#ff0000",
    State.ERROR: "#ff6000",  # orange, steady
}
SPI_SPEED_HZ = 8_000_000
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


# --- configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class Apa102Settings:
    leds: int
    brightness: float = 0.5
    bus: int = 0
    device: int = 1
    power_pin: int | None = None
    colors: Mapping[State, tuple[int, int, int]] | None = None

    def color(self, state: State) -> tuple[int, int, int]:
        return (self.colors or {}).get(state, (0, 0, 0))


def _int(where: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RecorderError(f"{where}: must be an integer from {lo} to {hi}, got {value!r}")
    return value


def parse_color(where: str, value: Any) -> tuple[int, int, int]:
    if not isinstance(value, str) or not _COLOR.fullmatch(value):
        raise RecorderError(f'{where}: must be a colour like "#0000ff", got {value!r}')
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def parse_apa102(table: Mapping[str, Any], where: str = "[indicator] apa102") -> Apa102Settings:
    """`{ leds = 3, brightness = 0.5, bus = 0, device = 1, power_pin = 5, colors = {...} }`."""
    unknown = [k for k in table if k not in APA102_KEYS]
    if unknown:
        raise RecorderError(f"{where}: unknown key {unknown[0]!r} (known: "
                            f"{', '.join(APA102_KEYS)})")
    if "leds" not in table:
        raise RecorderError(f"{where}: needs leds, the number of LEDs (3 on the ReSpeaker "
                            "2-mic HAT, 12 on the 4-mic array)")
    brightness = table.get("brightness", 0.5)
    if isinstance(brightness, bool) or not isinstance(brightness, int | float) \
            or not 0.0 <= brightness <= 1.0:
        raise RecorderError(f"{where} brightness: must be a number from 0 to 1, "
                            f"got {brightness!r}")
    power_pin = table.get("power_pin")
    colors_table = table.get("colors", {})
    if not isinstance(colors_table, dict):
        raise RecorderError(f"{where} colors: must be a table like "
                            '{ recording = "#0000ff", muted = "#ff0000" }')
    names = [s.value for s in GPIO_STATES]
    colors = {s: parse_color(f"{where} colors.{s.value}", c) for s, c in DEFAULT_COLORS.items()}
    for name, value in colors_table.items():
        if name not in names:
            raise RecorderError(f"{where} colors: unknown state {name!r} (known: "
                                f"{', '.join(names)})")
        colors[State(name)] = parse_color(f"{where} colors.{name}", value)
    return Apa102Settings(
        leds=_int(f"{where} leds", table["leds"], 1, 1024),
        brightness=float(brightness),
        bus=_int(f"{where} bus", table.get("bus", 0), 0, 9),
        device=_int(f"{where} device", table.get("device", 1), 0, 9),
        power_pin=None if power_pin is None else _int(f"{where} power_pin", power_pin, 0, 27),
        colors=colors,
    )


def gpio_patterns(ind: IndicatorConfig) -> dict[State, str]:
    """The LED's pattern per state, from the `gpio_<state>` keys (checked)."""
    patterns = {State.OFF: "off"}
    for state in GPIO_STATES:
        key = f"gpio_{state.value}"
        value = getattr(ind, key)
        if value not in PATTERNS:
            raise RecorderError(f"[indicator] {key}: must be one of {', '.join(PATTERNS)}, "
                                f"got {value!r}")
        patterns[state] = value
    return patterns


def check_config(ind: IndicatorConfig) -> None:
    """Called by IndicatorConfig on creation: every value is checked, configured or not."""
    gpio_patterns(ind)
    if ind.apa102:
        settings = parse_apa102(ind.apa102)
        if ind.gpio_led is not None and settings.power_pin == ind.gpio_led:
            raise RecorderError(f"[indicator] apa102 power_pin: GPIO {ind.gpio_led} is "
                                "already gpio_led's pin")


# --- devices owned by this process ---------------------------------------------------------
class SpiPort(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


SpiFactory = Callable[[int, int], SpiPort]
"""(bus, device) -> an open SPI port; raises OSError (or anything) when it cannot."""

SPI_FACTORY: SpiFactory | None = None
"""Replaces spidev (tests inject a fake device here); None: spidev."""

_owned: dict[tuple, Any] = {}  # ("gpio", pin) -> gpiozero device; ("spi", bus, dev) -> _Chain
_claimed: set[tuple] | None = None  # what the build in progress uses
_atexit_registered = False


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise RecorderError(f"{what} needs {module}: {EXTRA}") from None


class _Spidev:
    def __init__(self, spidev: Any, bus: int, device: int):
        self.dev = spidev.SpiDev()
        try:
            self.dev.open(bus, device)
            self.dev.max_speed_hz = SPI_SPEED_HZ
            self.dev.mode = 0
        except BaseException:
            self.dev.close()
            raise

    def write(self, data: bytes) -> None:
        self.dev.writebytes2(data)

    def close(self) -> None:
        self.dev.close()


def _spidev_factory() -> SpiFactory:
    spidev = _require("spidev", "apa102")
    return lambda bus, device: _Spidev(spidev, bus, device)


class _Chain:
    """An open SPI port and the longest chain of LEDs written to it (all turned off on close)."""

    def __init__(self, port: SpiPort):
        self.port = port
        self.leds = 0
        self.closed = False

    def write(self, colors: list[tuple[int, int, int]], brightness: int) -> None:
        self.leds = max(self.leds, len(colors))
        self.port.write(apa102_frame(colors, brightness))

    def close(self) -> None:
        self.closed = True
        try:
            if self.leds:
                self.port.write(apa102_frame([(0, 0, 0)] * self.leds, 0))
        finally:
            self.port.close()


def _acquire(key: tuple, compatible: Callable[[Any], bool], opener: Callable[[], Any]) -> Any:
    """This process's device for `key`: the one it owns if compatible, else a new one."""
    global _atexit_registered
    if _claimed is not None:
        _claimed.add(key)
    dev = _owned.get(key)
    if dev is not None and not dev.closed and compatible(dev):
        return dev
    _release(key)
    dev = opener()
    _owned[key] = dev
    if not _atexit_registered:
        atexit.register(close_all)
        _atexit_registered = True
    return dev


def _release(key: tuple) -> None:
    """Turn a device off and close it (best effort)."""
    dev = _owned.pop(key, None)
    if dev is None:
        return
    try:
        if key[0] == "gpio":
            dev.off()
        dev.close()
    except Exception as e:
        log.warning("closing %s: %s", ":".join(map(str, key)), e)


def close_all() -> None:
    """Turn off and close every device this process owns (at exit; also for tests)."""
    for key in list(_owned):
        _release(key)


def _open_gpio(gpiozero: Any, pin: int, pwm: bool, what: str) -> Any:
    def compatible(dev: Any) -> bool:
        return isinstance(dev, gpiozero.PWMLED) == pwm

    def opener() -> Any:
        with warnings.catch_warnings():  # gpiozero's pin factory fallbacks: in the error
            warnings.simplefilter("ignore")
            return (gpiozero.PWMLED if pwm else gpiozero.LED)(pin)

    try:
        return _acquire(("gpio", pin), compatible, opener)
    except Exception as e:
        hint = " (is this a Raspberry Pi, with lgpio installed?)" \
            if type(e).__name__ == "BadPinFactory" else ""
        raise IndicatorError(f"{what}: cannot set up GPIO {pin}: {e}{hint}") from None


# --- the indicators ------------------------------------------------------------------------
class GpioLedIndicator:
    """One LED on a GPIO pin: a pattern (on, off, blink, pulse) per state."""

    def __init__(self, gpiozero: Any, pin: int, patterns: Mapping[State, str]):
        self.gpiozero = gpiozero
        self.pin = pin
        self.patterns = dict(patterns)
        self.pwm = "pulse" in self.patterns.values()
        self.led: Any = None
        try:
            self._setup()
        except IndicatorError as e:
            log.error("%s; the indicator fails until it can be set up", e)

    def _setup(self) -> Any:
        if self.led is None or self.led.closed:
            self.led = _open_gpio(self.gpiozero, self.pin, self.pwm, "gpio_led")
        return self.led

    def show(self, state: State, previous: State) -> None:
        led = self._setup()
        pattern = self.patterns.get(state, "off")
        try:
            if pattern == "on":
                led.on()
            elif pattern == "blink":
                led.blink(on_time=BLINK_S, off_time=BLINK_S)
            elif pattern == "pulse":
                led.pulse(fade_in_time=PULSE_S, fade_out_time=PULSE_S)
            else:
                led.off()
        except Exception as e:
            raise IndicatorError(f"gpio_led GPIO {self.pin}: {e}") from None


def apa102_frame(colors: list[tuple[int, int, int]], brightness: int) -> bytes:
    """One update of an APA102 chain: a start frame (4 zero bytes), per LED 0xE0 | brightness
    (0-31) then blue, green, red, and an end frame of zeros: 4 bytes (SK9822 clones latch on
    them) plus one byte per 16 LEDs, since each LED delays the data by half a clock."""
    out = bytearray(4)
    for r, g, b in colors:
        out += bytes((0xE0 | brightness, b, g, r))
    out += bytes(4 + math.ceil(len(colors) / 16))
    return bytes(out)


class Apa102Indicator:
    """APA102 LEDs on SPI (the ReSpeaker HATs' ring): every LED one colour per state."""

    def __init__(self, settings: Apa102Settings, spi_factory: SpiFactory,
                 gpiozero: Any = None):
        self.settings = settings
        self.spi_factory = spi_factory
        self.gpiozero = gpiozero
        self.global_brightness = round(settings.brightness * 31)
        self.key = ("spi", settings.bus, settings.device)
        self.name = f"apa102 on /dev/spidev{settings.bus}.{settings.device}"
        self.chain: _Chain | None = None
        try:
            self._setup()
        except IndicatorError as e:
            log.error("%s; the indicator fails until it can be set up", e)

    def _setup(self) -> _Chain:
        s = self.settings
        if s.power_pin is not None:
            power = _open_gpio(self.gpiozero, s.power_pin, False, "apa102 power_pin")
            if not power.is_active:
                power.on()
        if self.chain is None or self.chain.closed:
            try:
                self.chain = _acquire(self.key, lambda _chain: True,
                                      lambda: _Chain(self.spi_factory(s.bus, s.device)))
            except Exception as e:
                hint = " (is SPI enabled? dtparam=spi=on)" if isinstance(e, OSError) else ""
                raise IndicatorError(f"{self.name}: cannot open it: {e}{hint}") from None
        return self.chain

    def show(self, state: State, previous: State) -> None:
        chain = self._setup()
        color = self.settings.color(state)  # `off` (and anything unknown): all LEDs off
        try:
            chain.write([color] * self.settings.leds,
                        self.global_brightness if any(color) else 0)
        except Exception as e:
            _release(self.key)  # opened afresh at the next state
            raise IndicatorError(f"{self.name}: {e}") from None


def build_indicators(ind: IndicatorConfig) -> list[Indicator]:
    """The configured hardware indicators. A missing library is a RecorderError (at start);
    hardware that cannot be set up makes a failed indicator (see the module's docstring)."""
    global _claimed
    gpiozero = None
    if ind.gpio_led is not None:
        gpiozero = _require("gpiozero", "gpio_led")
    apa = parse_apa102(ind.apa102) if ind.apa102 else None
    if apa is not None and apa.power_pin is not None:
        gpiozero = _require("gpiozero", "apa102 power_pin")
    spi_factory = (SPI_FACTORY or _spidev_factory()) if apa is not None else None
    parts: list[Indicator] = []
    _claimed = set()
    try:
        if ind.gpio_led is not None:
            parts.append(GpioLedIndicator(gpiozero, ind.gpio_led, gpio_patterns(ind)))
        if apa is not None and spi_factory is not None:
            parts.append(Apa102Indicator(apa, spi_factory, gpiozero))
        for key in set(_owned) - _claimed:  # what the previous configuration used
            _release(key)
    finally:
        _claimed = None
    return parts
