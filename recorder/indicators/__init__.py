"""Showing the recorder's state: one interface (`base.Indicator`), one module per kind.

`command` (the hook), `state_file`, `gpio` (an LED on a Pi's pin), `apa102` (the ReSpeaker
ring), all fail-closed; `chime` plays sounds on state changes (a courtesy, never the privacy
indicator). `build_indicators` assembles what a configuration asks for.
"""

from __future__ import annotations

from recorder.config import Config
from recorder.indicators.base import Indicator, IndicatorError, Indicators, LogIndicator
from recorder.indicators.command import CommandIndicator
from recorder.indicators.devices import Devices, require
from recorder.indicators.state_file import StateFileIndicator

__all__ = [
    "CommandIndicator",
    "Devices",
    "Indicator",
    "IndicatorError",
    "Indicators",
    "LogIndicator",
    "StateFileIndicator",
    "build_indicators",
    "build_lights",
]


def build_lights(config: Config, devices: Devices) -> list[Indicator]:
    """The configured Pi lights. A missing library is a RecorderError (at start); hardware that
    cannot be set up makes a failed indicator. Devices the previous configuration held and this
    one does not use are released."""
    ind = config.indicator
    apa = ind.apa102_settings()
    gpiozero = None
    if ind.gpio_led is not None:
        gpiozero = require("gpiozero", "gpio_led")
    if apa is not None and apa.power_pin is not None:
        gpiozero = require("gpiozero", "apa102 power_pin")
    parts: list[Indicator] = []
    with devices.configuring():
        if ind.gpio_led is not None:
            from recorder.indicators.gpio import GpioLedIndicator

            parts.append(GpioLedIndicator(gpiozero, ind.gpio_led, ind.led_patterns(), devices))
        if apa is not None:
            from recorder.indicators.apa102 import Apa102Indicator

            parts.append(Apa102Indicator(apa, devices, gpiozero))
    return parts


def build_indicators(config: Config, devices: Devices) -> Indicators:
    """The log line, the Pi's lights (first, so they show at once), the state file, the hook."""
    ind = config.indicator
    parts: list[Indicator] = [LogIndicator(), *build_lights(config, devices)]
    if ind.state_file:
        parts.append(StateFileIndicator(config.path(ind.state_file)))
    if ind.command:
        parts.append(CommandIndicator(ind.command, ind.timeout_s))
    return Indicators(parts)
