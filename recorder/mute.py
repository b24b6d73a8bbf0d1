"""Mute switches: the persistent one (a file in the state directory, so a restart never
unmutes) and an optional physical one on a GPIO pin that forces mute while it is on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recorder.dirs import private_dir
from recorder.errors import RecorderError

MUTE_FILE = "muted"


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


class MuteButton:
    """A switch (to ground, internal pull-up) on a GPIO pin, read with gpiozero's `Button`;
    closed means muted."""

    def __init__(self, pin: int, pin_factory: Any = None):
        try:
            from gpiozero import Button
        except ImportError:
            raise RecorderError(
                "[indicator] mute_switch needs gpiozero: pip install 'recorder[pi]'"
            ) from None
        try:
            self._button = Button(pin, pull_up=True, pin_factory=pin_factory)
        except Exception as e:
            raise RecorderError(f"[indicator] mute_switch: GPIO {pin}: {e}") from None

    def is_on(self) -> bool:
        return bool(self._button.is_pressed)

    def close(self) -> None:
        self._button.close()
