"""`recorder run`, `monitor`, `mute`/`unmute` and `status`: the daemon started or watched, or
asked through its control socket."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from recorder import config as config_mod
from recorder import control_client, human
from recorder.cli_args import (
    add_config,
    add_dirs,
    add_json,
    audit,
    audit_log,
    load_config,
    setup_logging,
    state_dir,
)
from recorder.dirs import SYSTEM_RUNTIME_DIR, default_runtime_dir
from recorder.errors import RecorderError
from recorder.mute import MuteSwitch
from recorder.tools.options import add_wake_flags


def add_run(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the daemon",
        description="Listen for the wake word and keep the request after it.",
    )
    add_config(run)
    run.add_argument(
        "--source",
        help="mic, mic:NAME_OR_INDEX, file:PATH.wav, stdin, or sample (a recording that comes "
        'with the package: talk, then a request after "Hey Jarvis")',
    )
    add_wake_flags(run)
    run.add_argument(
        "--indicator-command", metavar="CMD", help="run CMD STATE on every state change"
    )
    run.add_argument("--realtime", action="store_true", help="pace a file source at 1x")
    run.add_argument(
        "--log-level", choices=config_mod.LOG_LEVELS, help="how much to log (overrides [log] level)"
    )
    add_models_dir(run)
    run.add_argument(
        "--wait-for-device",
        action="store_true",
        help="wait for a missing microphone instead of exiting",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="log what would be saved (offsets, duration, reason); write no audio",
    )
    run.add_argument(
        "--calibrate",
        action="store_true",
        help="keep counters of activations per threshold in the state directory "
        "(no audio) for `recorder calibrate`",
    )
    add_dirs(run, runtime=True, state=True)


def cmd_run(args: argparse.Namespace) -> int:
    from recorder import daemon

    cfg = load_config(args)
    setup_logging(cfg.log.level)
    return daemon.run(
        cfg,
        args.runtime_dir,
        state_dir(args, cfg),
        args.wait_for_device,
        reload_config=lambda: load_config(args),
        dry_run=args.dry_run,
        explicit_state_dir=args.state_dir is not None,
    )


def add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="where the models are installed (overrides [wake] models_dir)",
    )


MONITOR_ATTACH_FLAGS = ("config", "source", "model", "threshold", "patience_frames", "models_dir")
"""The local pipeline's flags, which --attach (the daemon's own pipeline) does not take."""


def add_monitor(sub: Any) -> None:
    mon = sub.add_parser(
        "monitor",
        help="live meter of the scores, VAD, state and input level",
        description="A live meter of each wake word's score, the VAD, the state and the input "
        "level (dBFS): of a dry run of the pipeline on its own source, or with --attach of the "
        "running daemon, without opening the audio device. On a terminal it redraws 12.5 "
        "times a second; otherwise it prints a line per second (each model's highest score, "
        "the highest level) and a line per event. With --attach: exit status 0 when the "
        "daemon stops, 3 when no daemon is running, 1 when the daemon cut this reader off.",
    )
    add_config(mon, recordings=False)
    mon.add_argument("--source", help="as for run (a file is paced in real time)")
    add_wake_flags(mon)
    add_models_dir(mon)
    mon.add_argument(
        "--attach",
        action="store_true",
        help="watch the running daemon through its control socket (the daemon's user, root "
        "or [control] group) instead of running the pipeline here",
    )
    add_dirs(mon, runtime=True, state=False)
    mon.set_defaults(realtime=True)


def cmd_monitor(args: argparse.Namespace) -> int:
    from recorder.tools import monitor

    if not args.attach:
        if args.runtime_dir is not None:
            raise RecorderError("monitor: --runtime-dir goes with --attach")
        return monitor.run(load_config(args))
    given = [f for f in MONITOR_ATTACH_FLAGS if getattr(args, f) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-").replace("-frames", "")
        raise RecorderError(f"monitor: {flag} is for a local monitor, not with --attach")
    return monitor.attach(_runtime_dirs(args))


def _runtime_dirs(args: argparse.Namespace) -> list[Path]:
    """--runtime-dir, or the user's default and the system service's."""
    return [args.runtime_dir] if args.runtime_dir else [default_runtime_dir(), SYSTEM_RUNTIME_DIR]


def _ask_daemon(args: argparse.Namespace, command: str) -> dict | None:
    """The daemon's reply; without --runtime-dir, the system service's socket is tried too."""
    for directory in dict.fromkeys(_runtime_dirs(args)):
        reply = control_client.request(directory, command)
        if reply is not None:
            return reply
    return None


def add_mute(sub: Any) -> None:
    for name, text in [
        ("mute", "stop listening (persists across restarts)"),
        ("unmute", "listen again"),
    ]:
        p = sub.add_parser(name, help=text)
        add_config(p, recordings=False)
        add_dirs(p, runtime=True, state=True)


def cmd_mute(args: argparse.Namespace) -> int:
    """Through the daemon when it runs; otherwise the switch is set for its next start."""
    muted = args.command == "mute"
    reply = _ask_daemon(args, args.command)
    if reply is None:
        switch = MuteSwitch(state_dir(args))
        switch.set(muted)
        audit(audit_log(switch.state_dir), "muted" if muted else "unmuted", uid=os.getuid())
        print(
            f"{args.command}d (the daemon is not running; a daemon using the state directory "
            f"{switch.state_dir} starts {'muted' if muted else 'listening'})"
        )
        return 0
    if not reply.get("ok"):
        raise RecorderError(reply.get("error", "the daemon refused"))
    print(f"{args.command}d")
    return 0


STATUS_EXIT_CODES = """Exit status: 0 a daemon answered; 3 no daemon is running (the state is
"off"; "muted" is the switch a daemon would start with); 2 bad input (a bad flag, a private
directory others can write to)."""


def add_status(sub: Any) -> None:
    st = sub.add_parser(
        "status",
        help="the running daemon's state",
        description="The running daemon's state, one `key: value` per line; with --json, its "
        "reply as one JSON object of raw values (seconds, UTC times). " + STATUS_EXIT_CODES,
    )
    add_config(st, recordings=False)
    add_dirs(st, runtime=True, state=True)
    add_json(st, "the state (raw values: seconds, UTC times, lists)")


def cmd_status(args: argparse.Namespace) -> int:
    reply = _ask_daemon(args, "status")
    if reply is None:
        muted = MuteSwitch(state_dir(args)).is_muted()
        reply = {"state": "off", "muted": muted, "running": False}
    else:
        reply = {"running": True, **{k: v for k, v in reply.items() if k != "ok"}}
    if args.json:
        print(json.dumps(reply))
    else:
        print("\n".join(status_lines(reply)))
    return 0 if reply["running"] else 3


def _running(r: dict[str, Any]) -> str:
    if not r.get("running"):
        return "no (no daemon answered on its control socket)"
    return f"yes (pid {r['pid']})" if "pid" in r else "yes"


def _last_audio(r: dict[str, Any]) -> str:
    ago = human.number(r.get("last_audio_s_ago"))
    if ago is None:
        return "none yet"
    text = f"{human.duration(ago)} ago"
    try:
        at = datetime.fromisoformat(str(r.get("last_audio_at")).replace("Z", "+00:00"))
    except ValueError:
        return text
    return f"{text} ({human.local_time(at)})"


def _recordings(r: dict[str, Any]) -> str:
    text = human.value(r.get("recordings"))
    n_bytes = r.get("recordings_bytes")
    if isinstance(n_bytes, int) and not isinstance(n_bytes, bool):
        text += f" ({human.size(n_bytes)})"
    if r.get("recordings_dir"):
        text += f" in {human.value(r['recordings_dir'])}"
    return text


_STATUS_ROWS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("state", "state", lambda r: human.value(r.get("state"))),
    ("running", "running", _running),
    ("muted", "muted", lambda r: human.value(r.get("muted"))),
    ("models", "models", lambda r: human.value(r.get("models"))),
    ("source", "source", lambda r: human.value(r.get("source"))),
    ("uptime_s", "uptime", lambda r: human.duration(human.number(r.get("uptime_s")))),
    ("audio_s", "audio taken in", lambda r: human.duration(human.number(r.get("audio_s")))),
    ("last_audio_s_ago", "last audio", _last_audio),
    ("recordings", "recordings", _recordings),
    ("saved_since_start", "saved since start", lambda r: human.value(r["saved_since_start"])),
    ("fault", "fault", lambda r: human.value(r["fault"])),
    ("handoff", "hand-off", lambda r: human.value(r["handoff"])),
    ("subscribers", "event subscribers", lambda r: human.value(r["subscribers"])),
    ("last_event_seq", "last event", lambda r: human.value(r["last_event_seq"])),
)
_SHOWN_WITH = {"pid", "last_audio_at", "recordings_bytes", "recordings_dir"}
"""Keys shown on another key's line."""


def status_lines(reply: dict[str, Any]) -> list[str]:
    """The status reply as aligned `key: value` lines, in a fixed order; keys this version does
    not know follow, with their names as they are."""
    always = {"state", "running", "muted"}
    pairs = [
        (label, show(reply)) for key, label, show in _STATUS_ROWS if key in reply or key in always
    ]
    known = {key for key, _, _ in _STATUS_ROWS} | _SHOWN_WITH
    pairs += [(k.replace("_", " "), human.value(v)) for k, v in reply.items() if k not in known]
    return human.aligned(pairs)
