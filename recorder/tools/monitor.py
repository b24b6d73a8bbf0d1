"""`recorder monitor`: a live meter of the pipeline's scores, VAD, state and input level.

Locally (`run`), it runs exactly what `recorder run --dry-run` runs (nothing is saved) on its
own source, a file paced in real time. Attached (`attach`), it opens no audio device: it
subscribes to the running daemon's `monitor` stream over the control socket, which carries
each frame's numbers (never audio) and the daemon's events. Both feed the same view
(`recorder.tools.meter`): a redrawn meter on a terminal, a line per second and per event off it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from recorder import daemon
from recorder.audio import Frame
from recorder.config import Config
from recorder.machine import State
from recorder.monitor_feed import frame_record
from recorder.mute import MuteSwitch
from recorder.pipeline import build_pipeline, thresholds
from recorder.sources import open_source
from recorder.tools.events import EXIT_CUT_OFF, EXIT_NOT_RUNNING, cut_off, records, subscribe
from recorder.tools.meter import View


class _Notes(logging.Handler):
    """The local pipeline's warnings, shown by the view instead of over it."""

    def __init__(self, view: View):
        super().__init__(logging.WARNING)
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        self.view.note(record.getMessage())


def run(config: Config, out: TextIO | None = None) -> int:
    """The daemon's pipeline in a dry run on its own source, with the view watching every
    frame and every journal record (on stdout unless `out` is given)."""
    out = out or sys.stdout
    view = View(out, out.isatty())
    root = logging.getLogger("recorder")
    root.addHandler(_Notes(view))
    root.setLevel(logging.INFO)
    root.propagate = False
    flags = daemon.Flags()
    flags.install()
    pipeline = build_pipeline(config, dry_run=True)
    view.thresholds = thresholds(config, pipeline.engine)
    source = open_source(config.audio.source, config.audio.realtime, audio=config.audio)

    def observe(frame: Frame, scores: dict[str, float], speech: bool, state: State) -> None:
        view.frame(frame_record(frame, scores, speech, state))

    try:
        d = daemon.build_daemon(
            config,
            source,
            MuteSwitch(config.base_dir),
            pipeline=pipeline,
            flags=flags,
            dry_run=True,
            observers=[observe],
        )
        d.journal.subscribe(view.record)
        d.run()
    finally:
        source.close()
        view.close()
    return 0


def attach(runtime_dirs: Iterable[Path], out: TextIO | None = None) -> int:
    """The running daemon's monitor stream, through the view (on stdout unless `out` is
    given), until the daemon stops (0), cuts this reader off (1) or the user interrupts (0);
    3 when no daemon answers."""
    out = out or sys.stdout
    tried = list(dict.fromkeys(runtime_dirs))
    subscribed = None
    for directory in tried:
        subscribed = subscribe(directory, "monitor")
        if subscribed is not None:
            break
    if subscribed is None:
        where = ", ".join(str(d) for d in tried)
        print(
            f"recorder: no daemon is running (no control socket answered in {where})",
            file=sys.stderr,
        )
        return EXIT_NOT_RUNNING
    sock, first = subscribed
    view = View(out, out.isatty(), dict(first.get("thresholds") or {}))
    shown = " ".join(f"{n}={t:g}" for n, t in view.thresholds.items())
    view.note(f"attached to the running daemon; thresholds {shown or '-'}")
    try:
        with sock, sock.makefile("rb") as lines:
            return _follow(lines, view)
    except KeyboardInterrupt:
        return 0
    finally:
        view.close()


def _follow(lines: Iterable[bytes], view: View) -> int:
    for record in records(lines):
        event = record.get("event")
        if event == "frame":
            view.frame(record)
        elif event == "cut_off":
            return cut_off(record)
        else:
            view.record(record)
            if event == "stopped":
                return 0
    print("recorder: the daemon closed the connection", file=sys.stderr)
    return EXIT_CUT_OFF
