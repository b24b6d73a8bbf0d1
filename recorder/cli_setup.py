"""`recorder devices`, `doctor`, `config` and `models`: the set-up, shown and checked."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recorder import config as config_mod
from recorder import models
from recorder.cli_args import Parser, add_config, add_dirs, add_json, load_config, state_dir
from recorder.errors import RecorderError


def add_devices(sub: Any) -> None:
    dev = sub.add_parser("devices", help="list audio input devices")
    add_json(dev, "the devices")


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


def add_doctor(sub: Any) -> None:
    doc = sub.add_parser(
        "doctor",
        help="check the set-up and say how to fix what fails",
        description="Check, in order: the config, the models, the microphone "
        "(2 s recorded and measured, nothing kept), whether another process "
        "holds it, the indicator hook, the recordings and state directories, "
        "the service. Exit status 0 when all pass, 1 otherwise.",
    )
    add_config(doc)
    add_dirs(doc, runtime=False, state=True)
    add_json(doc, "the checks")


def cmd_doctor(args: argparse.Namespace) -> int:
    from recorder import doctor

    def show(check: doctor.Check) -> None:
        if not args.json:
            print(doctor.line(check), flush=True)

    first, cfg = doctor.check_config(config_mod.locate(args.config), lambda: load_config(args))
    state = state_dir(args, cfg) if cfg is not None else None
    checks = doctor.run_checks(first, cfg, state, show)
    if args.json:
        print(json.dumps(doctor.as_json(checks), indent=2))
    return 0 if all(c.ok for c in checks) else 1


def add_config_command(sub: Any) -> None:
    cfg = sub.add_parser("config", help="the configuration in force")
    csub = cfg.add_subparsers(dest="config_command", required=True, parser_class=Parser)
    for name, text in [
        ("path", "print which config file every command uses"),
        ("show", "print the effective configuration as TOML"),
    ]:
        add_config(csub.add_parser(name, help=text), recordings=False)
    init = csub.add_parser(
        "init",
        help="write the commented configuration file, every key at its default",
        description="Write the commented template (every key, its default and what it does) "
        "where every command finds it. An existing file is never overwritten.",
    )
    init.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="where to write it (default: $RECORDER_CONFIG, else ~/.config/recorder/recorder.toml)",
    )


def _init_target(named: Path | None) -> Path:
    """Where `config init` writes: --config, else the first place on the search path, unless
    a file there would hide the system's configuration (the service's) from every command."""
    if named is not None:
        return named
    paths = config_mod.search_path()
    target, system = paths[0], paths[-1]
    if target != system and system.exists():
        raise RecorderError(
            f"{system} exists: a new {target} would hide it from every command you run "
            "(they would use other directories than the service's); edit it, or give "
            "--config PATH"
        )
    return target


def cmd_config(args: argparse.Namespace) -> int:
    if args.config_command == "init":
        target = _init_target(args.config)
        config_mod.write_template(target.expanduser())
        print(f"wrote {target}: edit it to pick the microphone and the wake word")
        return 0
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
    for var, section, key, _ in config_mod.environment_fills(config_mod.load(path, False)):
        print(f"# [{section}] {key} from ${var}")
    print(config_mod.to_toml(cfg), end="")
    return 0


def add_models(sub: Any) -> None:
    mdl = sub.add_parser("models", help="fetch or list the wake-word models")
    msub = mdl.add_subparsers(dest="models_command", required=True, parser_class=Parser)
    fetch = msub.add_parser("fetch", help="download, verify and install the models")
    fetch.add_argument(
        "--wheel-dir",
        type=Path,
        metavar="DIR",
        help="take the openwakeword wheel from this directory instead of PyPI",
    )
    mlist = msub.add_parser("list", help="show the installed models, licences and hash status")
    add_json(mlist, "the models")
    for p in (fetch, mlist):
        add_config(p, recordings=False)
        p.add_argument(
            "--models-dir",
            type=Path,
            metavar="DIR",
            help="default: [wake] models_dir of the config, else $RECORDER_MODELS_DIR, else "
            "~/.local/share/recorder/models",
        )


def models_dir(args: argparse.Namespace) -> Path | None:
    """--models-dir, else [wake] models_dir of the configuration in force (else
    $RECORDER_MODELS_DIR); None: the default (`models.models_dir`)."""
    if args.models_dir is not None:
        return Path(args.models_dir).expanduser()
    cfg = config_mod.load(config_mod.locate(args.config))
    return cfg.path(cfg.wake.models_dir) if cfg.wake.models_dir else None


def cmd_models(args: argparse.Namespace) -> int:
    manifest = models.load_manifest(models_dir(args))
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
