"""The Raspberry Pi lights' keys of `[indicator]` (`gpio_*`, `apa102`): their patterns, the
APA102 table and its colours, by state name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recorder.errors import RecorderError

LED_PATTERNS = ("on", "off", "blink", "pulse", "dim")
LED_STATES = ("recording", "listening", "muted", "error")
"""The states with a configurable light (`gpio_<state>`, apa102 colours); `off` is always off."""
APA102_KEYS = ("leds", "brightness", "bus", "device", "power_pin", "colors")
DEFAULT_COLORS = {
    "recording": "#0000ff",  # blue, like the Echo's ring
    "listening": "#001000",  # a dim green: alive and listening (a dead daemon is dark)
    "muted": "#ff0000",
    "error": "#ff6000",  # orange, steady
}
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Apa102Settings:
    leds: int
    brightness: float = 0.5
    bus: int = 0
    device: int = 1
    power_pin: int | None = None
    colors: Mapping[str, tuple[int, int, int]] | None = None
    """Per state name (a `State` looks its colour up as well)."""

    def color(self, state: str) -> tuple[int, int, int]:
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
        raise RecorderError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(APA102_KEYS)})"
        )
    if "leds" not in table:
        raise RecorderError(
            f"{where}: needs leds, the number of LEDs (3 on the ReSpeaker "
            "2-mic HAT, 12 on the 4-mic array)"
        )
    brightness = table.get("brightness", 0.5)
    if (
        isinstance(brightness, bool)
        or not isinstance(brightness, int | float)
        or not 0.0 <= brightness <= 1.0
    ):
        raise RecorderError(f"{where} brightness: must be a number from 0 to 1, got {brightness!r}")
    power_pin = table.get("power_pin")
    colors_table = table.get("colors", {})
    if not isinstance(colors_table, dict):
        raise RecorderError(
            f'{where} colors: must be a table like {{ recording = "#0000ff", muted = "#ff0000" }}'
        )
    names = list(LED_STATES)
    colors = {s: parse_color(f"{where} colors.{s}", c) for s, c in DEFAULT_COLORS.items()}
    for name, value in colors_table.items():
        if name not in names:
            raise RecorderError(
                f"{where} colors: unknown state {name!r} (known: {', '.join(names)})"
            )
        colors[name] = parse_color(f"{where} colors.{name}", value)
    return Apa102Settings(
        leds=_int(f"{where} leds", table["leds"], 1, 1024),
        brightness=float(brightness),
        bus=_int(f"{where} bus", table.get("bus", 0), 0, 9),
        device=_int(f"{where} device", table.get("device", 1), 0, 9),
        power_pin=None if power_pin is None else _int(f"{where} power_pin", power_pin, 0, 27),
        colors=colors,
    )


def gpio_patterns(keys: Mapping[str, str]) -> dict[str, str]:
    """The LED's pattern per state name, from the `gpio_<state>` keys (checked)."""
    patterns = {"off": "off"}
    for state in LED_STATES:
        key = f"gpio_{state}"
        value = keys[key]
        if value not in LED_PATTERNS:
            raise RecorderError(
                f"[indicator] {key}: must be one of {', '.join(LED_PATTERNS)}, got {value!r}"
            )
        patterns[state] = value
    return patterns


def check_lights(gpio: Mapping[str, str], gpio_led: int | None, apa102: Mapping[str, Any]) -> None:
    """Every Pi light key is checked on creation, configured or not: the `gpio_<state>`
    patterns, the `apa102` table, and its power pin against the LED's."""
    gpio_patterns(gpio)
    if apa102:
        settings = parse_apa102(apa102)
        if gpio_led is not None and settings.power_pin == gpio_led:
            raise RecorderError(
                f"[indicator] apa102 power_pin: GPIO {gpio_led} is already gpio_led's pin"
            )
