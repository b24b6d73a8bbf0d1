"""A microphone's retries and health: when to try again, and whether the device is lost."""

from __future__ import annotations

import time

STALL_S = 2.0
BACKOFF_S = (0.5, 5.0)  # first retry delay, doubling up to the maximum


class Backoff:
    """Retry timing: the first retry after BACKOFF_S[0], doubling up to BACKOFF_S[1]."""

    def __init__(self) -> None:
        self.delay = BACKOFF_S[0]
        self.retry_at = 0.0

    def reset(self, now_too: bool = False) -> None:
        self.delay = BACKOFF_S[0]
        if now_too:
            self.retry_at = 0.0

    def wait(self) -> None:
        """Schedule the next retry after the current delay, then double the delay."""
        self.retry_at = time.monotonic() + self.delay
        self.delay = min(self.delay * 2, BACKOFF_S[1])

    def due(self) -> bool:
        return time.monotonic() >= self.retry_at

    def remaining(self) -> float:
        return max(0.0, self.retry_at - time.monotonic())


class Health:
    """Whether the device is lost, and why; says what to report on each change.

    A loss is reported once; while it lasts, a retry that fails the same way is not logged
    again. A reopened stream counts as restored when its first audio arrives, not when it
    opens: a device that opens but stays silent is still lost.
    """

    def __init__(self) -> None:
        self.lost_reason: str | None = None
        self.last_audio = time.monotonic()

    @property
    def lost(self) -> bool:
        return self.lost_reason is not None

    def opened(self) -> None:
        self.last_audio = time.monotonic()

    def silent_reason(self, active: bool) -> str | None:
        """Why a stream with no audio this tick counts as failed (None: it does not yet)."""
        if not active:
            return "stream stopped"
        if time.monotonic() - self.last_audio >= STALL_S:
            return f"no audio for {STALL_S:g} s"
        return None

    def fail(self, reason: str) -> tuple[bool, bool]:
        """Record a failure: (first loss, reason changed)."""
        first, changed = self.lost_reason is None, reason != self.lost_reason
        self.lost_reason = reason
        return first, changed

    def audio(self) -> bool:
        """Audio arrived; True if that ends a loss."""
        self.last_audio = time.monotonic()
        restored, self.lost_reason = self.lost_reason is not None, None
        return restored
