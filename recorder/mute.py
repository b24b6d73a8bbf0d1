"""Mute: the persistent switch (a file in the state directory, so a restart never unmutes), an
optional physical one on a GPIO pin that forces mute while it is on, an optional push button
that toggles mute as `recorder mute` and `unmute` do, and `MuteControl`, which decides from them
what the daemon's loop does."""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.dirs import hand_over, private_dir
from recorder.errors import RecorderError

MUTE_FILE = "muted"
BOUNCE_S = 0.05
"""A push button's press counts only after it has been up this long: its contacts' bounce, on
press and on release, is not a press."""

log = logging.getLogger("recorder")


class MuteSwitch:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.path = state_dir / MUTE_FILE

    def prepare(self) -> None:
        """Create the state directory (0700), or refuse one that others can write to."""
        private_dir(self.state_dir, "state directory")

    def is_muted(self) -> bool:
        """Anything named `muted` mutes, even a dangling symlink: the switch fails safe."""
        return os.path.lexists(self.path)

    def set(self, muted: bool) -> None:
        """Persist the switch durably (fsync of the file and the directory). The file is
        created afresh, never written through a link."""
        self.prepare()
        try:
            if muted:
                if not self.path.is_symlink() and self.path.is_file():
                    return
                self.path.unlink(missing_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    hand_over(fd, self.state_dir)
                    os.write(fd, b"muted\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                self.path.unlink(missing_ok=True)
            dfd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as e:
            raise RecorderError(f"mute switch {self.path}: {e.strerror}") from None


def _gpio_button(key: str, pin: int, pin_factory: Any) -> Any:
    """gpiozero's `Button` on `pin` (to ground, internal pull-up) for the `[indicator]` key."""
    try:
        from gpiozero import Button
    except ImportError:
        raise RecorderError(
            f"[indicator] {key} needs gpiozero: pip install 'wakeword-recorder[pi]'"
        ) from None
    try:
        return Button(pin, pull_up=True, pin_factory=pin_factory)
    except Exception as e:
        raise RecorderError(f"[indicator] {key}: GPIO {pin}: {e}") from None


class MuteButton:
    """A switch (to ground, internal pull-up) on a GPIO pin, read with gpiozero's `Button`;
    closed means muted."""

    def __init__(self, pin: int, pin_factory: Any = None):
        self._button = _gpio_button("mute_switch", pin, pin_factory)

    def is_on(self) -> bool:
        return bool(self._button.is_pressed)

    def close(self) -> None:
        self._button.close()


class MutePushButton:
    """A momentary push button (to ground, internal pull-up) on a GPIO pin, like the ReSpeaker
    HATs' button on GPIO17: `pressed` is called once per press, on gpiozero's thread, when the
    button goes down after having been up for `BOUNCE_S`."""

    def __init__(
        self,
        pin: int,
        pressed: Callable[[], None],
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._pressed, self._clock = pressed, clock
        self._up_since = -math.inf  # up since before the daemon started; inf: down
        self._button = _gpio_button("mute_button", pin, pin_factory)
        self._button.when_pressed = self._down
        self._button.when_released = self._up

    def _down(self) -> None:
        up_since, self._up_since = self._up_since, math.inf
        if self._clock() - up_since >= BOUNCE_S:
            self._pressed()

    def _up(self) -> None:
        self._up_since = self._clock()

    def close(self) -> None:
        self._button.close()


@dataclass(frozen=True)
class MuteChange:
    """A change of the mute state to apply now: asked for by `uid` over the control socket
    (None: by no one on it) or with the push button (`by_button`), or made by the physical mute
    switch (`by_switch`)."""

    muted: bool
    uid: int | None
    by_switch: bool
    by_button: bool = False


@dataclass(frozen=True)
class MuteStep:
    """What the loop does next: `close_device` (True: release the device, False: reopen it,
    None: the source has none to close), then `change` (None: not yet, the device is still
    being released; `muted` is shown only once it is)."""

    close_device: bool | None
    change: MuteChange | None


SWITCH_OVERRIDES = "the mute switch is on; it overrides unmute"


class MuteControl:
    """Mute arbitration, without I/O: the requests of the control socket (which also sets the
    switch file), the physical switch that forces mute while it is on, and a source that
    releases its device before `muted` is shown. The loop passes in what it reads."""

    def __init__(self, muted: bool) -> None:
        self.requested = muted
        """The mute asked for by the control socket or the switch file (at first: the start's)."""
        self.uid: int | None = None
        """Who asked for it over the control socket."""
        self.by_button = False
        """Whether the push button asked for it."""
        self._forced_before = False

    @staticmethod
    def refusal(muted: bool, forced: bool) -> str | None:
        """Why the control socket refuses a request (None: it is taken)."""
        return SWITCH_OVERRIDES if forced and not muted else None

    @staticmethod
    def shown_muted(switch_file: bool, forced: bool) -> bool:
        """What the status reports: the switch file or the physical switch mutes."""
        return switch_file or forced

    def request(self, muted: bool, uid: int | None, by_button: bool = False) -> None:
        self.requested, self.uid, self.by_button = muted, uid, by_button

    def step(self, *, muted: bool, forced: bool, closable: bool, closed: bool) -> MuteStep | None:
        """The next step from the machine's state (`muted`), the physical switch (`forced`)
        and the source's device; None when the state is already the one asked for."""
        want = self.requested or forced
        if want == muted:
            return None
        if closable and want and not closed:
            return MuteStep(close_device=True, change=None)
        by_switch = forced or (not want and self._forced_before)
        self._forced_before = forced
        change = MuteChange(
            want, None if by_switch else self.uid, by_switch, not by_switch and self.by_button
        )
        return MuteStep(close_device=want if closable else None, change=change)


class MuteRequests:
    """Mute as the daemon keeps it: the switch file, the physical switch, the requests that the
    control thread and the push button queue, and the `MuteControl` that the loop steps between
    frames."""

    def __init__(self, switch: MuteSwitch, muted: bool) -> None:
        self.switch = switch
        self.button: MuteButton | None = None
        """A physical switch that forces mute while it is on."""
        self.push_button: MutePushButton | None = None
        """A push button that toggles mute."""
        self.control = MuteControl(muted)
        self.queue: queue.SimpleQueue[tuple[bool, int | None, bool]] = queue.SimpleQueue()
        """(muted, uid, by_button) from the control and button threads, taken by the loop
        between frames."""
        self._lock = threading.RLock()

    def attach(self, switch_pin: int | None, button_pin: int | None) -> None:
        """`[indicator] mute_switch` and `mute_button` on their GPIO pins."""
        if switch_pin is not None:
            self.button = MuteButton(switch_pin)
        if button_pin is not None:
            self.push_button = MutePushButton(button_pin, self.toggle)

    def close(self) -> None:
        for pin in (self.button, self.push_button):
            if pin is not None:
                pin.close()

    def forced(self) -> bool:
        return self.button is not None and self.button.is_on()

    def ask(self, muted: bool, uid: int | None, by_button: bool = False) -> str | None:
        """On the control thread: the switch file set and the request queued for the loop, or
        why not."""
        with self._lock:
            refusal = MuteControl.refusal(muted, forced=self.forced())
            if refusal is not None:
                return refusal
            try:
                self.switch.set(muted)
            except RecorderError as e:
                return str(e)
            self.queue.put((muted, uid, by_button))
            return None

    def toggle(self) -> None:
        """On the push button's thread: mute, or unmute when muted, as `recorder mute` and
        `unmute` do (persisted; unmute is refused while the mute switch forces mute)."""
        with self._lock:
            muted = not self.shown_muted()
            refusal = self.ask(muted, None, by_button=True)
        if refusal is None:
            log.info("mute button: %s", "mute" if muted else "unmute")
        else:
            log.warning("mute button: %s", refusal)

    def shown_muted(self) -> bool:
        return MuteControl.shown_muted(self.switch.is_muted(), forced=self.forced())

    def next_step(self, *, muted: bool, closable: bool, closed: bool) -> MuteStep | None:
        """On the loop: the queued requests taken, then `MuteControl.step`."""
        while not self.queue.empty():
            self.control.request(*self.queue.get_nowait())
        return self.control.step(
            muted=muted, forced=self.forced(), closable=closable, closed=closed
        )
