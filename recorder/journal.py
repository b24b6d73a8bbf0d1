"""The daemon's journal: what it did, as one record per happening, handed to every sink.

A record is a flat JSON-able dict with an `event` key (`started`, `stopped`, `reloaded`, `state`,
`wake`, `wake_ignored`, `saved`, `transcribed`, `discarded`, `deleted`, `muted`, `unmuted`,
`device_lost`, `device_restored`), a sequence number `seq` (from 1 at each start) and the UTC time
`time`, plus the event's own fields: each event is a frozen dataclass in `recorder.records`, which
turns it into those fields. The processing loop publishes; sinks (the event stream's subscribers,
the audit log, the hand-off) each take the record and must not block: a sink that raises is logged
and removed, so one broken consumer never stops the loop or the others. The audit log is a gate: it
takes each record first, and a saved request whose line it could not write is refused (`Refused`),
so no request is kept without its line in the audit trail.
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


class Refused(Exception):
    """Raised by a gate that could not take a record (the audit log could not write a saved
    request's line): the record goes to no sink, and its publisher undoes what it says."""


class Journal:
    """Numbers, stamps and fans out records; safe to subscribe from another thread.

    A gate (`subscribe(sink, gate=True)`, the audit log) takes each record before any sink
    does, and may refuse it by raising `Refused`, which `publish` and `check` raise on."""

    def __init__(self) -> None:
        self._gates: list[Sink] = []
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()
        self.seq = 0

    def subscribe(self, sink: Sink, gate: bool = False) -> None:
        with self._lock:
            (self._gates if gate else self._sinks).append(sink)

    def unsubscribe(self, sink: Sink) -> None:
        with self._lock:
            for sinks in (self._gates, self._sinks):
                if sink in sinks:
                    sinks.remove(sink)

    def publish(self, event: JournalEvent | str, **fields: Any) -> Record:
        """Number, stamp and hand out the record of a typed event (`recorder.records`), or of
        an event name with its fields as given (a record replayed or made up by hand). Raises
        `Refused` when a gate refused it."""
        record = self.stamp(event, **fields)
        self.check(record)
        self.deliver(record)
        return record

    def stamp(self, event: JournalEvent | str, **fields: Any) -> Record:
        """The record, numbered and stamped, not yet handed out."""
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
            return {
                "event": name,
                "seq": self.seq,
                "time": utc_iso(datetime.now(UTC)),
                **fields,
            }

    def check(self, record: Record) -> None:
        """The record to every gate; raises `Refused` when one refused it."""
        with self._lock:
            gates = list(self._gates)
        self._hand(gates, record)

    def deliver(self, record: Record) -> None:
        """The record to every sink."""
        with self._lock:
            sinks = list(self._sinks)
        self._hand(sinks, record)

    def _hand(self, sinks: list[Sink], record: Record) -> None:
        for sink in sinks:
            try:
                sink(record)
            except Refused:
                raise
            except Exception:
                log.exception("journal sink %r failed; removed", sink)
                self.unsubscribe(sink)
