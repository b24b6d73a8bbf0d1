"""The `recorder` command line. User errors print one line and exit with status 2.

Each subcommand has one home: its `add_*` function beside its `cmd_*` handler (here, or in its
tool's module), paired in `SUBCOMMANDS`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import recorder.tools.events as events_tool
import recorder.tools.transcribe as transcribe_tool
from recorder import __version__, control_client, models
from recorder import config as config_mod
from recorder.audit import AuditLog
from recorder.config import Config
from recorder.dirs import SYSTEM_RUNTIME_DIR, default_runtime_dir, default_state_dir
from recorder.errors import RecorderError
from recorder.mute import MuteSwitch
from recorder.storage import Storage
from recorder.tools import calibrate, enroll, export, score, train_verifier, tune
from recorder.tools.options import add_wake_flags

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise RecorderError(f"{self.prog}: {message}")


def _add_config(p: argparse.ArgumentParser, recordings: bool = True) -> None:
    p.add_argument("--config", type=Path, metavar="PATH", help=config_mod.CONFIG_HELP)
    if recordings:
        p.add_argument(
            "--recordings",
            type=Path,
            metavar="DIR",
            help="recordings directory (overrides [storage] directory)",
        )


def _add_dirs(p: argparse.ArgumentParser, runtime: bool, state: bool) -> None:
    if runtime:
        p.add_argument(
            "--runtime-dir",
            type=Path,
            metavar="DIR",
            help="control socket directory (default: $RUNTIME_DIRECTORY, "
            "$XDG_RUNTIME_DIR/recorder or /run/recorder)",
        )
    if state:
        p.add_argument(
            "--state-dir",
            type=Path,
            metavar="DIR",
            help="where the mute switch and the audit log are kept (default: $STATE_DIRECTORY, "
            "$XDG_STATE_HOME/recorder or ~/.local/state/recorder)",
        )


def _add_json(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="recorder", description="Wake-word gated, on-device voice recorder.")
    parser.add_argument("--version", action="version", version=f"recorder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add, _ in SUBCOMMANDS:
        add(sub)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """The config file in force with whichever of the command's flags were given."""
    overrides = config_mod.Overrides.from_args(args)
    return overrides.apply(config_mod.load(config_mod.locate(args.config)))


def _setup_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(levelname)s %(message)s")


def _ask_daemon(args: argparse.Namespace, command: str) -> dict | None:
    """The daemon's reply; without --runtime-dir, the system service's socket is tried too."""
    dirs = [args.runtime_dir] if args.runtime_dir else [default_runtime_dir(), SYSTEM_RUNTIME_DIR]
    for directory in dict.fromkeys(dirs):
        reply = control_client.request(directory, command)
        if reply is not None:
            return reply
    return None


def _state_dir(args: argparse.Namespace) -> Path:
    return args.state_dir or default_state_dir()


def _audit(args: argparse.Namespace, event: str, **fields: object) -> None:
    try:
        AuditLog(_state_dir(args)).append(event, by="cli", **fields)
    except OSError as e:
        raise RecorderError(f"audit log in {_state_dir(args)}: {e.strerror}") from None


def add_audit(sub: Any) -> None:
    aud = sub.add_parser(
        "audit",
        help="show or verify the audit log",
        description="Show the audit log (what was started, saved, discarded, deleted, muted), "
        "or check its hash chain: --verify exits 0 when intact, 1 naming the first bad line.",
    )
    _add_dirs(aud, runtime=False, state=True)
    _add_json(aud, "the entries")
    aud.add_argument(
        "--since", metavar="WHEN", help="entries since a time ago (30m, 2d) or an ISO time"
    )
    aud.add_argument("--verify", action="store_true", help="check the hash chain")


def cmd_audit(args: argparse.Namespace) -> int:
    log = AuditLog(_state_dir(args))
    if args.verify:
        verdict = log.verify()
        if verdict.ok:
            print(f"{log.path}: {verdict.message}; latest hash {verdict.head}")
            return 0
        print(f"{log.path}: broken at {verdict.message}", file=sys.stderr)
        return 1
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        except ValueError:
            since = datetime.now(UTC) - timedelta(
                seconds=config_mod.parse_duration(args.since, "--since")
            )
    for entry in log.entries():
        if since is not None:
            try:
                if datetime.fromisoformat(str(entry.get("time")).replace("Z", "+00:00")) < since:
                    continue
            except ValueError:
                continue
        if args.json:
            print(json.dumps(entry))
        else:
            rest = "  ".join(
                f"{k}={v}" for k, v in entry.items() if k not in ("n", "time", "event", "prev")
            )
            print(f"{entry.get('n')}  {entry.get('time')}  {entry.get('event')}  {rest}")
    return 0


def add_export(sub: Any) -> None:
    export.add_parsers(sub, _add_config)


def cmd_export(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    return export.cmd_export(args, Storage(cfg.path(cfg.storage.directory)))


def add_run(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run the daemon",
        description="Listen for the wake word and keep the request after it.",
    )
    _add_config(run)
    run.add_argument("--source", help="mic, mic:NAME_OR_INDEX, file:PATH.wav or stdin")
    add_wake_flags(run)
    run.add_argument(
        "--indicator-command", metavar="CMD", help="run CMD STATE on every state change"
    )
    run.add_argument("--realtime", action="store_true", help="pace a file source at 1x")
    run.add_argument(
        "--log-level", choices=config_mod.LOG_LEVELS, help="how much to log (overrides [log] level)"
    )
    run.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="where the models are installed (overrides [wake] models_dir)",
    )
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
    _add_dirs(run, runtime=True, state=True)


def cmd_run(args: argparse.Namespace) -> int:
    from recorder import daemon

    cfg = load_config(args)
    _setup_logging(cfg.log.level)
    return daemon.run(
        cfg,
        args.runtime_dir,
        _state_dir(args),
        args.wait_for_device,
        reload_config=lambda: load_config(args),
        dry_run=args.dry_run,
        explicit_state_dir=args.state_dir is not None,
    )


def add_monitor(sub: Any) -> None:
    mon = sub.add_parser("monitor", help="live meter of the scores, VAD and recorder state")
    _add_config(mon, recordings=False)
    mon.add_argument("--source", help="as for run (a file is paced in real time)")
    add_wake_flags(mon)
    mon.set_defaults(realtime=True)


def cmd_monitor(args: argparse.Namespace) -> int:
    from recorder.tools import monitor

    return monitor.run(load_config(args))


def add_mute(sub: Any) -> None:
    for name, text in [
        ("mute", "stop listening (persists across restarts)"),
        ("unmute", "listen again"),
    ]:
        p = sub.add_parser(name, help=text)
        _add_dirs(p, runtime=True, state=True)


def cmd_mute(args: argparse.Namespace) -> int:
    """Through the daemon when it runs; otherwise the switch is set for its next start."""
    muted = args.command == "mute"
    reply = _ask_daemon(args, args.command)
    if reply is None:
        switch = MuteSwitch(_state_dir(args))
        switch.set(muted)
        _audit(args, "muted" if muted else "unmuted", uid=os.getuid())
        print(
            f"{args.command}d (the daemon is not running; a daemon using the state directory "
            f"{switch.state_dir} starts {'muted' if muted else 'listening'})"
        )
        return 0
    if not reply.get("ok"):
        raise RecorderError(reply.get("error", "the daemon refused"))
    print(f"{args.command}d")
    return 0


def add_status(sub: Any) -> None:
    st = sub.add_parser("status", help="the running daemon's state")
    _add_dirs(st, runtime=True, state=True)
    _add_json(st, "the state")


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


def add_delete(sub: Any) -> None:
    dele = sub.add_parser("delete", help="delete recordings")
    _add_config(dele)
    dele.add_argument("ids", nargs="*", metavar="ID", help="recording ids, as `list` shows them")
    dele.add_argument(
        "--older-than",
        metavar="DURATION",
        help="every recording older than this, e.g. 30d, 12h, 15m",
    )
    dele.add_argument("--all", action="store_true", help="every recording")
    dele.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before deleting every recording (--all on a terminal)",
    )
    _add_dirs(dele, runtime=False, state=True)


def cmd_delete(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    storage = Storage(cfg.path(cfg.storage.directory))
    storage.check()
    recs = storage.list()
    if args.all:
        doomed = recs
    elif args.older_than:
        cutoff = datetime.now(UTC) - timedelta(
            seconds=config_mod.parse_duration(args.older_than, "--older-than")
        )
        doomed = [r for r in recs if r.started_at() < cutoff]
    elif args.ids:
        by_id = {r.id: r for r in recs}
        missing = [i for i in args.ids if i not in by_id]
        if missing:
            raise RecorderError(f"no recording with id {', '.join(missing)}")
        doomed = [by_id[i] for i in args.ids]
    else:
        raise RecorderError("delete: give recording ids, --older-than DURATION or --all")
    if args.all and doomed and not args.yes and sys.stdin.isatty():
        answer = input(f"delete all {len(doomed)} recording(s) in {storage.directory}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    for r in doomed:
        storage.delete(r)
        _audit(args, "deleted", id=r.id, why="delete command", uid=os.getuid())
    print(f"deleted {len(doomed)} recording(s)")
    return 0


def add_prune(sub: Any) -> None:
    prune = sub.add_parser("prune", help="apply the [storage] retention limits now")
    _add_config(prune)
    _add_dirs(prune, runtime=False, state=True)


def cmd_prune(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    s = cfg.storage
    storage = Storage(cfg.path(s.directory))
    storage.check()
    gone = (
        storage.enforce(s.max_age_s, s.max_count, int(s.max_total_mb * 1e6), datetime.now(UTC))
        if storage.directory.is_dir()
        else []
    )
    for r in gone:
        _audit(args, "deleted", id=r.id, why="retention", uid=os.getuid())
    print(f"pruned {len(gone)} recording(s)")
    return 0


def add_list(sub: Any) -> None:
    lst = sub.add_parser("list", help="list the saved recordings")
    _add_config(lst)
    lst.add_argument("--json", action="store_true", help="one JSON array of the sidecars")


def cmd_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    storage = Storage(cfg.path(cfg.storage.directory))
    storage.check()
    recordings = storage.list()
    if args.json:
        print(json.dumps([r.meta for r in recordings], indent=2))
        return 0
    for r in recordings:
        print(r.line())
    if not recordings:
        print("no recordings", file=sys.stderr)
    return 0


def add_devices(sub: Any) -> None:
    dev = sub.add_parser("devices", help="list audio input devices")
    _add_json(dev, "the devices")


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
        print(
            f"{mark} {d['index']:>3}  {d['name']}  ({d['channels']} ch, "
            f"{d['default_samplerate']:.0f} Hz)\n"
            f"        rates (Hz): {rates}; channels: {counts}\n"
            f"        [audio] " + d["config"].replace("\n", "; ")
        )
    return 0


def add_models(sub: Any) -> None:
    mdl = sub.add_parser("models", help="fetch or list the wake-word models")
    msub = mdl.add_subparsers(dest="models_command", required=True, parser_class=_Parser)
    fetch = msub.add_parser("fetch", help="download, verify and install the models")
    fetch.add_argument(
        "--wheel-dir",
        type=Path,
        metavar="DIR",
        help="take the openwakeword wheel from this directory instead of PyPI",
    )
    mlist = msub.add_parser("list", help="show the installed models, licences and hash status")
    _add_json(mlist, "the models")
    for p in (fetch, mlist):
        p.add_argument(
            "--models-dir",
            type=Path,
            metavar="DIR",
            help="default: $RECORDER_MODELS_DIR, else ~/.local/share/recorder/models",
        )


def cmd_models(args: argparse.Namespace) -> int:
    manifest = models.load_manifest(args.models_dir)
    if args.models_command == "fetch":
        installed = models.fetch(manifest, args.wheel_dir, log=lambda m: print(m, file=sys.stderr))
        print(
            f"models in {manifest.directory}: "
            + (f"installed {len(installed)}" if installed else "all present and verified")
        )
        return 0
    rows: list[dict[str, str | None]] = [
        {
            "name": e.name,
            "kind": "feature" if e.name in manifest.features else "wake word",
            "engine": "openWakeWord",
            "licence": e.licence,
            "status": models.file_status(manifest, e),
            "file": e.file,
            "path": str(manifest.path(e)),
            "sha256": e.sha256,
        }
        for e in manifest.all_files()
    ]
    for m in manifest.micro.values():
        status = models.micro_status(m)
        directory = models.micro_models_dir(m.name) if status != "not installed" else None
        name = models.MICRO_PREFIX + m.name if m.name in manifest.wakewords else m.name
        rows.append(
            {
                "name": name,
                "kind": "wake word",
                "engine": "microWakeWord",
                "licence": m.licence,
                "status": status,
                "file": m.file,
                "path": str(directory / m.file) if directory else None,
                "sha256": m.sha256,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"{r['name']:<18} {r['kind']:<9} {r['engine']:<13} {r['licence']:<16} "
            f"{r['status']:<13} {r['file']}"
        )
    if any(r["status"] == "not installed" for r in rows):
        print(f"(microWakeWord's models come with its runtime: {models.MICRO_EXTRA})")
    return 0


def add_doctor(sub: Any) -> None:
    doc = sub.add_parser(
        "doctor",
        help="check the set-up and say how to fix what fails",
        description="Check, in order: the config, the models, the microphone "
        "(2 s recorded and measured, nothing kept), whether another process "
        "holds it, the indicator hook, the recordings and state directories, "
        "the service. Exit status 0 when all pass, 1 otherwise.",
    )
    _add_config(doc)
    _add_dirs(doc, runtime=False, state=True)
    _add_json(doc, "the checks")


def cmd_doctor(args: argparse.Namespace) -> int:
    from recorder import doctor

    def show(check: doctor.Check) -> None:
        if not args.json:
            print(doctor.line(check), flush=True)

    first, cfg = doctor.check_config(config_mod.locate(args.config), lambda: load_config(args))
    checks = doctor.run_checks(first, cfg, _state_dir(args), show)
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=2))
    return 0 if all(c.ok for c in checks) else 1


def add_config_command(sub: Any) -> None:
    cfg = sub.add_parser("config", help="the configuration in force")
    csub = cfg.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    for name, text in [
        ("path", "print which config file every command uses"),
        ("show", "print the effective configuration as TOML"),
    ]:
        _add_config(csub.add_parser(name, help=text), recordings=False)


def cmd_config(args: argparse.Namespace) -> int:
    path = config_mod.locate(args.config)
    if args.config_command == "path":
        print(
            path
            if path is not None
            else "(none: the built-in defaults; looked for "
            + ", ".join(map(str, config_mod.search_path()))
            + ")"
        )
        return 0
    cfg = config_mod.load(path)
    print(f"# the configuration in force: {path or 'the built-in defaults'}")
    print(config_mod.to_toml(cfg), end="")
    return 0


SUBCOMMANDS: list[tuple[Callable[[Any], None], dict[str, Handler]]] = [
    (add_run, {"run": cmd_run}),
    (add_monitor, {"monitor": cmd_monitor}),
    (add_mute, {"mute": cmd_mute, "unmute": cmd_mute}),
    (add_status, {"status": cmd_status}),
    (add_delete, {"delete": cmd_delete}),
    (add_prune, {"prune": cmd_prune}),
    (add_audit, {"audit": cmd_audit}),
    (add_list, {"list": cmd_list}),
    (add_devices, {"devices": cmd_devices}),
    (add_doctor, {"doctor": cmd_doctor}),
    (add_config_command, {"config": cmd_config}),
    (add_models, {"models": cmd_models}),
    (add_export, {"keygen": export.cmd_keygen, "export": cmd_export}),
    (score.add_parser, {"score": score.cmd_score}),
    (events_tool.add_parser, {"events": events_tool.cmd_events}),
    (transcribe_tool.add_parser, {"transcribe": transcribe_tool.cmd_transcribe}),
    (tune.add_parser, {"tune": tune.cmd_tune}),
    (calibrate.add_parser, {"calibrate": calibrate.cmd_calibrate}),
    (enroll.add_parser, {"enroll": enroll.cmd_enroll}),
    (train_verifier.add_parser, {"train-verifier": train_verifier.cmd_train_verifier}),
]
"""Each subcommand's parser (in the order `--help` lists them) with the handlers of the
commands it adds."""
COMMANDS: dict[str, Handler] = {n: h for _, handlers in SUBCOMMANDS for n, h in handlers.items()}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except RecorderError as e:
        print(f"recorder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # a reader that went away (`| head`) is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
