"""An LED on a Raspberry Pi GPIO pin (gpiozero): a pattern (on, off, blink, pulse, dim) per state.

gpiozero comes with the optional extra `wakeword-recorder[pi]` and is imported only when
`gpio_led` is configured; without it the daemon refuses to start (one line, exit 2).

An LED that cannot be set up (pin in use, no GPIO device, ...) is a failed indicator, as a
failing command is: the daemon starts, every `show` retries the set-up and raises
IndicatorError while it fails, so with `[indicator] required = true` a request whose
`recording` state could not be shown is discarded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from recorder.indicators.base import IndicatorError
from recorder.indicators.devices import Devices
from recorder.machine import State

log = logging.getLogger("recorder.indicator")

BLINK_S = 0.25
"""`blink`: this long on, this long off."""
PULSE_S = 1.0
"""`pulse`: this long fading in, this long fading out (needs PWM)."""
DIM = 0.05
"""`dim`: steady at this fraction of full brightness (needs PWM); the default for listening, so
that a daemon that died (LED off) looks different from one that listens."""


class GpioLedIndicator:
    """One LED on a GPIO pin: a pattern (on, off, blink, pulse, dim) per state."""

    def __init__(self, gpiozero: Any, pin: int, patterns: Mapping[str, str], devices: Devices):
        self.gpiozero = gpiozero
        self.devices = devices
        self.pin = pin
        self.patterns = dict(patterns)
        self.pwm = bool({"pulse", "dim"} & set(self.patterns.values()))
        self.led: Any = None
        try:
            self._setup()
        except IndicatorError as e:
            log.error("%s; the indicator fails until it can be set up", e)

    def _setup(self) -> Any:
        if self.led is None or self.led.closed:
            self.led = self.devices.gpio_output(self.gpiozero, self.pin, self.pwm, "gpio_led")
        return self.led

    def show(self, state: State, previous: State) -> None:
        led = self._setup()
        pattern = self.patterns.get(state, "off")
        try:
            if pattern == "on":
                led.on()
            elif pattern == "blink":
                led.blink(on_time=BLINK_S, off_time=BLINK_S)
            elif pattern == "dim":
                led.value = DIM
            elif pattern == "pulse":
                led.pulse(fade_in_time=PULSE_S, fade_out_time=PULSE_S)
            else:
                led.off()
        except Exception as e:
            raise IndicatorError(f"gpio_led GPIO {self.pin}: {e}") from None
