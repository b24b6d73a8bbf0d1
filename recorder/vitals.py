"""What a running daemon has done so far and the signs of life it gives: the counts, the
state file's heartbeat, the service manager's watchdog, and the status it reports."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from recorder.audio import frames_to_s
from recorder.machine import State
from recorder.notify import Notifier
from recorder.pipeline import Pipeline
from recorder.recording import utc_iso
from recorder.sources import Source

if TYPE_CHECKING:  # a daemon without a hand-off starts without its module
    from recorder.handoff import Handoff

HEARTBEAT_S = 10.0


@dataclass
class Vitals:
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    saved: int = 0
    frames_seen: int = 0
    last_audio_at: float | None = None
    """Wall-clock time of the last frame from the source (None: none yet)."""
    _last_heartbeat: float = 0.0
    _last_watchdog: float = 0.0

    def count_saved(self) -> None:
        self.saved += 1

    def audio(self) -> None:
        """A frame arrived from the source."""
        self.frames_seen += 1
        self.last_audio_at = time.time()

    def heartbeat(self, pipeline: Pipeline) -> None:
        """While audio arrives, the state file's modification time is refreshed every
        HEARTBEAT_S: a state file older than that means no audio (or no daemon)."""
        state_file = pipeline.config.indicator.state_file
        if (
            not state_file
            or self.last_audio_at is None
            or self.last_audio_at - self._last_heartbeat < HEARTBEAT_S
        ):
            return
        self._last_heartbeat = self.last_audio_at
        with contextlib.suppress(OSError):  # a state file that fails shows at the next change
            os.utime(pipeline.config.path(state_file))

    def watchdog(self, notifier: Notifier) -> None:
        """Tells the service manager the loop still runs, as often as it asks."""
        if notifier.watchdog_interval_s is not None:
            now = time.monotonic()
            if now - self._last_watchdog >= notifier.watchdog_interval_s:
                notifier.send("WATCHDOG=1")
                self._last_watchdog = now

    def status(
        self,
        state: State,
        muted: bool,
        pipeline: Pipeline,
        source: Source,
        fault: str | None,
        handoff: Handoff | None,
    ) -> dict[str, Any]:
        kept = pipeline.storage.list()
        return {
            "state": State.MUTED.value if muted and state is State.LISTENING else state.value,
            "muted": muted,
            "recordings": len(kept),
            "recordings_bytes": sum(r.size_bytes() for r in kept),
            "saved_since_start": self.saved,
            "uptime_s": round((datetime.now(UTC) - self.started_at).total_seconds(), 1),
            "audio_s": round(frames_to_s(self.frames_seen), 2),
            "source": source.description,
            "models": list(pipeline.engine.names),
            "recordings_dir": str(pipeline.storage.directory),
            "pid": os.getpid(),
            "last_audio_at": (
                None
                if self.last_audio_at is None
                else utc_iso(datetime.fromtimestamp(self.last_audio_at, UTC))
            ),
            "last_audio_s_ago": (
                None if self.last_audio_at is None else round(time.time() - self.last_audio_at, 1)
            ),
            **({"fault": fault} if fault else {}),
            **({"handoff": handoff.status()} if handoff else {}),
        }

    def status_line(self, state: State, pipeline: Pipeline, source: Source) -> str:
        return (
            f"{state.value} on {source.description} for {', '.join(pipeline.engine.names)}; "
            f"{self.saved} saved"
        )
