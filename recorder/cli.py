"""The `recorder` command line. User errors print one line and exit with status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from recorder import __version__, control, models, scoring
from recorder import config as config_mod
from recorder.config import Config
from recorder.errors import RecorderError
from recorder.mute import MuteSwitch
from recorder.storage import Storage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise RecorderError(f"{self.prog}: {message}")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    p.add_argument("--recordings", type=Path, metavar="DIR",
                   help="recordings directory (overrides [storage] directory)")


def _add_dirs(p: argparse.ArgumentParser, runtime: bool, state: bool) -> None:
    if runtime:
        p.add_argument("--runtime-dir", type=Path, metavar="DIR",
                       help="control socket directory (default: $RUNTIME_DIRECTORY, "
                       "$XDG_RUNTIME_DIR/recorder or /run/recorder)")
    if state:
        p.add_argument("--state-dir", type=Path, metavar="DIR",
                       help="where the mute switch is kept (default: $STATE_DIRECTORY, "
                       "$XDG_STATE_HOME/recorder or ~/.local/state/recorder)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="recorder", description="Wake-word gated, on-device voice recorder.")
    parser.add_argument("--version", action="version", version=f"recorder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the daemon")
    _add_config(run)
    run.add_argument("--source", help="mic, mic:NAME_OR_INDEX, file:PATH.wav or stdin")
    run.add_argument("--model", action="append", metavar="NAME_OR_PATH",
                     help="wake-word model; repeat for several (overrides [wake] models)")
    run.add_argument("--threshold", type=float, help="detection threshold for every model, 0-1")
    run.add_argument("--indicator-command", metavar="CMD",
                     help="run CMD STATE on every state change")
    run.add_argument("--realtime", action="store_true", help="pace a file source at 1x")
    run.add_argument("--log-level", choices=config_mod.LOG_LEVELS)
    run.add_argument("--models-dir", type=Path, metavar="DIR",
                     help="where the models are installed (overrides [wake] models_dir)")
    run.add_argument("--wait-for-device", action="store_true",
                     help="wait for a missing microphone instead of exiting")
    run.add_argument("--dry-run", action="store_true",
                     help="log what would be saved (offsets, duration, reason); write no audio")
    _add_dirs(run, runtime=True, state=True)

    mon = sub.add_parser("monitor", help="live meter of the scores, VAD and recorder state")
    _add_config(mon)
    mon.add_argument("--source", help="as for run (a file is paced in real time)")
    mon.add_argument("--model", action="append", metavar="NAME_OR_PATH")
    mon.add_argument("--threshold", type=float)

    for name, text in [("mute", "stop listening (persists across restarts)"),
                       ("unmute", "listen again")]:
        p = sub.add_parser(name, help=text)
        _add_dirs(p, runtime=True, state=True)
    st = sub.add_parser("status", help="the running daemon's state")
    _add_dirs(st, runtime=True, state=True)
    st.add_argument("--json", action="store_true")

    dele = sub.add_parser("delete", help="delete recordings")
    _add_config(dele)
    dele.add_argument("ids", nargs="*", metavar="ID")
    dele.add_argument("--older-than", metavar="DURATION", help="e.g. 30d, 12h, 15m")
    dele.add_argument("--all", action="store_true")
    prune = sub.add_parser("prune", help="apply the [storage] retention limits now")
    _add_config(prune)

    lst = sub.add_parser("list", help="list the saved recordings")
    _add_config(lst)
    lst.add_argument("--json", action="store_true", help="one JSON array of the sidecars")

    dev = sub.add_parser("devices", help="list audio input devices")
    dev.add_argument("--json", action="store_true")

    mdl = sub.add_parser("models", help="fetch or list the wake-word models")
    msub = mdl.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    fetch = msub.add_parser("fetch", help="download, verify and install the models")
    for p in (fetch, msub.add_parser("list", help="show the installed models, licences and "
                                      "hash status")):
        p.add_argument("--models-dir", type=Path, metavar="DIR",
                       help="default: $RECORDER_MODELS_DIR, else ~/.local/share/recorder/models")
    fetch.add_argument("--wheel-dir", type=Path,
                       help="take the openwakeword wheel from this directory instead of PyPI")
    scoring.add_parsers(sub)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    cfg = config_mod.load(args.config)
    if args.recordings is not None:
        cfg = dataclasses.replace(
            cfg, storage=dataclasses.replace(cfg.storage, directory=str(args.recordings.resolve())))
    if args.command not in ("run", "monitor"):
        return config_mod.validate(cfg, "command line")
    audio, wake, ind, lg = cfg.audio, cfg.wake, cfg.indicator, cfg.log
    if args.command == "monitor":
        audio = dataclasses.replace(audio, realtime=True)
    if args.source is not None:
        source = args.source
        if source.startswith("file:"):
            source = "file:" + str(Path(source[5:]).expanduser())
        audio = dataclasses.replace(audio, source=source)
    if getattr(args, "realtime", False):
        audio = dataclasses.replace(audio, realtime=True)
    if args.model:
        wake = dataclasses.replace(wake, models=tuple(args.model))
    if getattr(args, "models_dir", None) is not None:
        wake = dataclasses.replace(wake, models_dir=str(args.models_dir.expanduser().resolve()))
    if args.threshold is not None:
        wake = dataclasses.replace(wake, threshold=args.threshold, per_model={
            k: dataclasses.replace(v, threshold=None) for k, v in wake.per_model.items()})
    if getattr(args, "indicator_command", None) is not None:
        ind = dataclasses.replace(ind, command=args.indicator_command)
    if getattr(args, "log_level", None):
        lg = dataclasses.replace(lg, level=args.log_level)
    cfg = dataclasses.replace(cfg, audio=audio, wake=wake, indicator=ind, log=lg)
    return config_mod.validate(cfg, "command line")


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(),
                        format="%(levelname)s %(message)s")


def _ask_daemon(args: argparse.Namespace, command: str) -> dict | None:
    """The daemon's reply; without --runtime-dir, the system service's socket is tried too."""
    dirs = [args.runtime_dir] if args.runtime_dir else [control.default_runtime_dir(),
                                                        control.SYSTEM_RUNTIME_DIR]
    for directory in dict.fromkeys(dirs):
        reply = control.request(directory, command)
        if reply is not None:
            return reply
    return None


def _state_dir(args: argparse.Namespace) -> Path:
    return args.state_dir or control.default_state_dir()


def cmd_run(args: argparse.Namespace) -> int:
    from recorder import daemon

    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    return daemon.run(cfg, args.runtime_dir, _state_dir(args), args.wait_for_device,
                      reload_config=lambda: load_config(args), dry_run=args.dry_run)


def cmd_monitor(args: argparse.Namespace) -> int:
    from recorder import monitor

    return monitor.run(load_config(args))


def cmd_mute(args: argparse.Namespace) -> int:
    """Through the daemon when it runs; otherwise the switch is set for its next start."""
    muted = args.command == "mute"
    reply = _ask_daemon(args, args.command)
    if reply is None:
        switch = MuteSwitch(_state_dir(args))
        switch.set(muted)
        print(f"{args.command}d (the daemon is not running; a daemon using the state directory "
              f"{switch.state_dir} starts {'muted' if muted else 'listening'})")
        return 0
    if not reply.get("ok"):
        raise RecorderError(reply.get("error", "the daemon refused"))
    print(f"{args.command}d")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    reply = _ask_daemon(args, "status")
    if reply is None:
        muted = MuteSwitch(_state_dir(args)).is_muted()
        reply = {"state": "off", "muted": muted, "running": False}
    else:
        reply = {"running": True, **{k: v for k, v in reply.items() if k != "ok"}}
    if args.json:
        print(json.dumps(reply))
    else:
        print("  ".join(f"{k}: {v}" for k, v in reply.items()))
    return 0 if reply["running"] else 3


def cmd_delete(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    storage = Storage(cfg.path(cfg.storage.directory))
    recs = storage.list()
    if args.all:
        doomed = recs
    elif args.older_than:
        cutoff = datetime.now(UTC) - timedelta(
            seconds=config_mod.parse_duration(args.older_than, "--older-than"))
        doomed = [r for r in recs if r.started_at() < cutoff]
    elif args.ids:
        by_id = {r.id: r for r in recs}
        missing = [i for i in args.ids if i not in by_id]
        if missing:
            raise RecorderError(f"no recording with id {', '.join(missing)}")
        doomed = [by_id[i] for i in args.ids]
    else:
        raise RecorderError("delete: give recording ids, --older-than DURATION or --all")
    for r in doomed:
        storage.delete(r)
    print(f"deleted {len(doomed)} recording(s)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    s = cfg.storage
    storage = Storage(cfg.path(s.directory))
    gone = storage.enforce(s.max_age_s, s.max_count, int(s.max_total_mb * 1e6),
                           datetime.now(UTC)) if storage.directory.is_dir() else []
    print(f"pruned {len(gone)} recording(s)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    recordings = Storage(cfg.path(cfg.storage.directory)).list()
    if args.json:
        print(json.dumps([r.meta for r in recordings], indent=2))
        return 0
    for r in recordings:
        m = r.meta
        print(f"{r.id}  {m.get('started_at', '?')}  {m.get('duration_s', 0):6.2f} s  "
              f"{m.get('wake_word', '?'):<12} {m.get('end_reason', '?'):<10} {r.wav}")
    if not recordings:
        print("no recordings", file=sys.stderr)
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from recorder.sources.mic import input_devices

    devices = input_devices(probe=True)
    if args.json:
        print(json.dumps(devices, indent=2))
    elif not devices:
        print("no audio input devices")
    for d in [] if args.json else devices:
        mark = "*" if d["default"] else " "
        rates = ", ".join(str(r) for r in d["rates"]) or "none of the usual"
        counts = ", ".join(str(c) for c in d["channel_counts"]) or "?"
        print(f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, "
              f"{d['default_samplerate']:.0f} Hz)\n"
              f"        rates (Hz): {rates}; channels: {counts}\n"
              f"        [audio] " + d["config"].replace("\n", "; "))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    manifest = models.load_manifest(args.models_dir)
    if args.models_command == "fetch":
        installed = models.fetch(manifest, args.wheel_dir, log=lambda m: print(m, file=sys.stderr))
        print(f"models in {manifest.directory}: "
              + (f"installed {len(installed)}" if installed else "all present and verified"))
        return 0
    for entry in manifest.all_files():
        kind = "feature" if entry.name in manifest.features else "wake word"
        print(f"{entry.name:<16} {kind:<9} {entry.licence:<16} "
              f"{models.file_status(manifest, entry):<13} {entry.file}")
    return 0


COMMANDS = {"run": cmd_run, "monitor": cmd_monitor, "list": cmd_list, "devices": cmd_devices,
            "models": cmd_models, "mute": cmd_mute, "unmute": cmd_mute, "status": cmd_status,
            "delete": cmd_delete, "prune": cmd_prune,
            "score": scoring.cmd_score, "tune": scoring.cmd_tune}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except RecorderError as e:
        print(f"recorder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
