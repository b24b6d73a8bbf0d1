"""The daemon's journal: what it did, as one record per happening, handed to every sink.

A record is a flat JSON-able dict with an `event` key (`started`, `stopped`, `reloaded`, `state`,
`wake`, `saved`, `transcribed`, `discarded`, `deleted`, `muted`, `unmuted`, `device_lost`,
`device_restored`), a sequence number `seq` (from 1 at each start) and the UTC time `time`,
plus the event's own fields: each event is a frozen dataclass in `recorder.records`, which
turns it into those fields. The processing loop publishes; sinks (the event stream's
subscribers, the audit log, the hand-off) each take the record and must not block: a sink that
raises is logged and removed, so one broken consumer never stops the loop or the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from recorder.recording import utc_iso
from recorder.records import EVENTS, JournalEvent

log = logging.getLogger("recorder")

Record = dict[str, Any]
Sink = Callable[[Record], None]


class Journal:
    """Numbers, stamps and fans out records; safe to subscribe from another thread."""

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()
        self.seq = 0

    def subscribe(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.append(sink)

    def unsubscribe(self, sink: Sink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def publish(self, event: JournalEvent | str, **fields: Any) -> Record:
        """Number, stamp and hand out the record of a typed event (`recorder.records`), or of
        an event name with its fields as given (a record replayed or made up by hand)."""
        if isinstance(event, JournalEvent):
            if fields:
                raise TypeError("a typed event carries its own fields")
            name, fields = event.event, event.fields()
        else:
            name = event
        if name not in EVENTS:
            raise ValueError(f"unknown journal event {name!r}")
        with self._lock:
            self.seq += 1
            record: Record = {
                "event": name,
                "seq": self.seq,
                "time": utc_iso(datetime.now(UTC)),
                **fields,
            }
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink(record)
            except Exception:
                log.exception("journal sink %r failed; removed", sink)
                self.unsubscribe(sink)
        return record
