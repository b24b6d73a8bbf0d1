"""The persistent mute switch: a file in the state directory, so a restart never unmutes."""

from __future__ import annotations

import os
from pathlib import Path

from recorder.errors import RecorderError

MUTE_FILE = "muted"


class MuteSwitch:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.path = state_dir / MUTE_FILE

    def prepare(self) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise RecorderError(f"state directory {self.state_dir}: {e.strerror}") from None

    def is_muted(self) -> bool:
        return self.path.exists()

    def set(self, muted: bool) -> None:
        """Persist the switch durably (fsync of the file and the directory)."""
        try:
            self.prepare()
            if muted:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
