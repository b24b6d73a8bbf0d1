"""systemd's notify protocol: one datagram to $NOTIFY_SOCKET, no C library needed."""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends READY=1, STATUS=..., WATCHDOG=1, STOPPING=1; does nothing outside systemd."""

    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 2e6 if watchdog else None
        """Half of systemd's watchdog timeout, or None when no watchdog is set."""

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), self.address)
        except OSError:
            pass  # systemd is gone or the socket is not ours: nothing useful to do
