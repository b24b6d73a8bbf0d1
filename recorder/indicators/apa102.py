"""APA102 LEDs over SPI (the ReSpeaker HATs' ring): every LED one colour per state.

spidev (and gpiozero, for the 4-mic array's LED power pin) come with the optional extra
`wakeword-recorder[pi]`. Like the GPIO LED, a ring that cannot be opened is a failed indicator.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from recorder.config import Apa102Settings
from recorder.indicators.base import IndicatorError
from recorder.indicators.devices import Devices, SpiPort
from recorder.machine import State

log = logging.getLogger("recorder.indicator")


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

    def __init__(self, settings: Apa102Settings, devices: Devices, gpiozero: Any = None):
        self.settings = settings
        self.devices = devices
        self.spi_factory = devices.spi()
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
            power = self.devices.gpio_output(self.gpiozero, s.power_pin, False, "apa102 power_pin")
            if not power.is_active:
                power.on()
        if self.chain is None or self.chain.closed:
            try:
                self.chain = self.devices.acquire(
                    self.key, lambda _chain: True, lambda: _Chain(self.spi_factory(s.bus, s.device))
                )
            except Exception as e:
                hint = " (is SPI enabled? dtparam=spi=on)" if isinstance(e, OSError) else ""
                raise IndicatorError(f"{self.name}: cannot open it: {e}{hint}") from None
        return self.chain

    def show(self, state: State, previous: State) -> None:
        chain = self._setup()
        color = self.settings.color(state)  # `off` (and anything unknown): all LEDs off
        try:
            chain.write([color] * self.settings.leds, self.global_brightness if any(color) else 0)
        except Exception as e:
            self.devices.release(self.key)  # opened afresh at the next state
            raise IndicatorError(f"{self.name}: {e}") from None
