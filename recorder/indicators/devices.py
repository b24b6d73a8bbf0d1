"""The GPIO pins and SPI ports a daemon owns, handed from one configuration to the next.

A process owns each pin and SPI device once: a new configuration (SIGHUP) takes over the devices
of the previous one and closes those it no longer uses. Every device is turned off and closed
when the daemon stops (and at exit, should it not).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import warnings
from collections.abc import Callable, Hashable, Iterator
from typing import Any, Protocol

from recorder.errors import RecorderError
from recorder.indicators.base import IndicatorError

log = logging.getLogger("recorder.indicator")

EXTRA = "pip install 'wakeword-recorder[pi]'"
SPI_SPEED_HZ = 8_000_000


class SpiPort(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


SpiFactory = Callable[[int, int], SpiPort]
"""(bus, device) -> an open SPI port; raises OSError (or anything) when it cannot."""


def require(module: str, what: str) -> Any:
    """An optional library of the `pi` extra, or a one-line error naming the extra."""
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


def spidev_factory() -> SpiFactory:
    spidev = require("spidev", "apa102")
    return lambda bus, device: _Spidev(spidev, bus, device)


Key = tuple[Hashable, ...]
"""("gpio", pin) or ("spi", bus, device)."""


class Devices:
    """The devices owned by one daemon. `spi_factory` opens SPI ports (None: spidev)."""

    def __init__(self, spi_factory: SpiFactory | None = None):
        self.spi_factory = spi_factory
        self._owned: dict[Key, Any] = {}
        self._claimed: set[Key] | None = None  # what the configuration being built uses
        self._atexit_registered = False

    def spi(self) -> SpiFactory:
        return self.spi_factory or spidev_factory()

    @contextlib.contextmanager
    def configuring(self) -> Iterator[None]:
        """Build a configuration's indicators inside: what they do not use is released."""
        self._claimed = set()
        try:
            yield
            for key in set(self._owned) - self._claimed:
                self.release(key)
        finally:
            self._claimed = None

    def acquire(
        self, key: Key, compatible: Callable[[Any], bool], opener: Callable[[], Any]
    ) -> Any:
        """The device for `key`: the one owned if compatible, else a newly opened one."""
        if self._claimed is not None:
            self._claimed.add(key)
        dev = self._owned.get(key)
        if dev is not None and not dev.closed and compatible(dev):
            return dev
        self.release(key)
        dev = opener()
        self._owned[key] = dev
        if not self._atexit_registered:
            atexit.register(self.close_all)
            self._atexit_registered = True
        return dev

    def release(self, key: Key) -> None:
        """Turn a device off and close it (best effort)."""
        dev = self._owned.pop(key, None)
        if dev is None:
            return
        try:
            if key[0] == "gpio":
                dev.off()
            dev.close()
        except Exception as e:
            log.warning("closing %s: %s", ":".join(map(str, key)), e)

    def close_all(self) -> None:
        """Turn off and close every device owned."""
        for key in list(self._owned):
            self.release(key)

    def gpio_output(self, gpiozero: Any, pin: int, pwm: bool, what: str) -> Any:
        """A gpiozero LED (PWMLED when `pwm`) on `pin`; IndicatorError when it cannot be."""

        def compatible(dev: Any) -> bool:
            return isinstance(dev, gpiozero.PWMLED) == pwm

        def opener() -> Any:
            with warnings.catch_warnings():  # gpiozero's pin factory fallbacks: in the error
                warnings.simplefilter("ignore")
                return (gpiozero.PWMLED if pwm else gpiozero.LED)(pin)

        try:
            return self.acquire(("gpio", pin), compatible, opener)
        except Exception as e:
            hint = (
                " (is this a Raspberry Pi, with lgpio installed?)"
                if type(e).__name__ == "BadPinFactory"
                else ""
            )
            raise IndicatorError(f"{what}: cannot set up GPIO {pin}: {e}{hint}") from None
