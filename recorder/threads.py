"""Threads the daemon's promises depend on (control socket, mic closer, chime player).

`start()` runs a target on a daemon thread and records it if the target ends by an exception
(or returns while it was meant to keep running). The daemon loop polls `WATCH.failure()`
between frames and stops with an error rather than running on without, say, its mute switch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("recorder")


@dataclass(frozen=True)
class ThreadFailure:
    name: str
    reason: str

    def __str__(self) -> str:
        return f"the {self.name} thread died: {self.reason}"


class ThreadWatch:
    """Records the first unexpected end of a watched thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failure: ThreadFailure | None = None

    def start(
        self,
        name: str,
        target: Callable[..., Any],
        *args: Any,
        keeps_running: Callable[[], bool] | None = None,
    ) -> threading.Thread:
        """Start `target(*args)` on a daemon thread named `name`.

        An exception escaping `target` is a failure. With `keeps_running`, so is a return
        while `keeps_running()` is still true (the thread was meant to run until told to stop).
        """

        def run() -> None:
            try:
                target(*args)
            except BaseException as e:  # noqa: BLE001 - any end by exception is the failure
                self.report(name, f"{e.__class__.__name__}: {e}".rstrip(": "), e)
                return
            if keeps_running is not None and keeps_running():
                self.report(name, "it returned while it should have kept running")

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def report(self, name: str, reason: str, exc: BaseException | None = None) -> None:
        """Record a failure (the first one is kept) and log it, with its traceback if any."""
        with self._lock:
            if self._failure is None:
                self._failure = ThreadFailure(name, reason)
        log.error("the %s thread died: %s", name, reason, exc_info=exc)

    def failure(self) -> ThreadFailure | None:
        with self._lock:
            return self._failure

    def clear(self) -> None:
        with self._lock:
            self._failure = None


WATCH = ThreadWatch()
"""The process's watch: the daemon polls it; the modules that start critical threads use it."""


def start(
    name: str,
    target: Callable[..., Any],
    *args: Any,
    keeps_running: Callable[[], bool] | None = None,
) -> threading.Thread:
    """`WATCH.start(...)`."""
    return WATCH.start(name, target, *args, keeps_running=keeps_running)
