"""`recorder doctor`: checks the set-up in order and says how to fix what fails.

The configuration, the models, the microphone (opened as the daemon opens it, 2 s recorded and
measured), whether another process holds it, the indicator hook, the recordings and state
directories, and the service. Nothing is kept: the audio is measured in memory and dropped.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recorder import control_client, dirs
from recorder.audio import FRAME_S, Frame
from recorder.config import Config
from recorder.errors import RecorderError
from recorder.machine import State
from recorder.pipeline import resolve_models

RECORD_S = 2.0
SILENT_DBFS = -70.0
CLIPPED = 32767
MIN_FREE_MB = 100
SYSTEM_UNIT = Path("/etc/systemd/system/recorder.service")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_config(path: Path | None, load: Callable[[], Config]) -> tuple[Check, Config | None]:
    """`load()` the configuration found at `path` (None: the built-in defaults)."""
    where = str(path) if path else "none found: the built-in defaults"
    try:
        config = load()
    except RecorderError as e:
        return Check(
            "config",
            False,
            str(e),
            "correct the key named above, then `recorder config show` prints what is in force",
        ), None
    return Check("config", True, where), config


def _check_models(config: Config) -> Check:
    try:
        resolved = resolve_models(config)
    except RecorderError as e:
        return Check(
            "models",
            False,
            str(e),
            "`recorder models fetch` downloads and verifies them into the models directory of "
            "this configuration (give it the same --config; microWakeWord's come with "
            "`pip install 'wakeword-recorder[micro]'`); `recorder models list` shows what is "
            "installed",
        )
    where = (
        f"the feature models verified in {resolved.manifest.directory}"
        if resolved.oww
        else "verified"
    )
    return Check("models", True, f"{', '.join(config.wake.models)} and {where}")


def capture_holders() -> list[str]:
    """Processes that have an ALSA capture device open: `PID (name) /dev/snd/pcmC0D0c`."""
    held = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if re.fullmatch(r"/dev/snd/pcmC\d+D\d+c", target):
                    name = (proc / "comm").read_text().strip()
                    held.append(f"{proc.name} ({name}) {target}")
        except OSError:
            continue
    return held


def level(samples: np.ndarray) -> tuple[float, float, float]:
    """RMS in dBFS, peak in dBFS, and the fraction of samples at full scale."""
    x = samples.astype(np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
    peak = float(np.max(np.abs(x))) if len(x) else 0.0

    def db(v: float) -> float:
        return 20 * np.log10(v / 32768) if v > 0 else -120.0

    clipped = float(np.mean(np.abs(x) >= CLIPPED)) if len(x) else 0.0
    return db(rms), db(peak), clipped


def _record(config: Config, seconds: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The microphone's samples, and the playback reference's with `[audio] reference_channel`."""
    from recorder.sources import DeviceLost, open_source

    source = open_source(config.audio.source, audio=config.audio)
    frames: list[np.ndarray] = []
    references: list[np.ndarray] = []
    deadline = time.monotonic() + seconds + 5.0
    try:
        for item in source.frames(lambda: time.monotonic() > deadline):
            if isinstance(item, DeviceLost):
                raise RecorderError(f"the device stopped delivering audio ({item.reason})")
            if isinstance(item, Frame):
                frames.append(item.samples)
                if item.reference is not None:
                    references.append(item.reference)
                if len(frames) * FRAME_S >= seconds:
                    break
    finally:
        source.close()
    if not frames:
        raise RecorderError(f"no audio arrived within {seconds + 5.0:g} s")
    return np.concatenate(frames), np.concatenate(references) if references else None


def _check_input(config: Config) -> list[Check]:
    source = config.audio.source
    if not source.startswith("mic"):
        return [Check("input", True, f"source {source} (not a microphone: nothing to open)")]
    try:
        samples, reference = _record(config, RECORD_S)
    except RecorderError as e:
        text = str(e)
        busy = "busy" in text.lower() or "unavailable" in text.lower()
        holders = capture_holders() if busy else []
        checks = [
            Check(
                "input",
                False,
                f"{source}: {text}",
                "`arecord -l` lists the capture cards and `recorder devices` their names:"
                ' put the one to use in [audio] source = "mic:NAME"',
            )
        ]
        if busy or holders:
            checks.append(
                Check(
                    "device free",
                    False,
                    "held by " + (", ".join(holders) or "another process"),
                    "stop it, or record through it: with PipeWire or PulseAudio "
                    'use their ALSA device (source = "mic:pipewire" or '
                    '"mic:pulse")',
                )
            )
        return checks
    rms, peak, clipped = level(samples)
    detail = (
        f"{source}: {len(samples) / 16000:.1f} s recorded, level {rms:.1f} dBFS, "
        f"peak {peak:.1f} dBFS, {clipped:.1%} clipped"
    )
    if peak <= SILENT_DBFS:
        return [
            Check(
                "input",
                False,
                detail + " (silence)",
                "is the microphone muted or its gain at 0? `alsamixer` (F6: the card, F4: "
                "capture) or `amixer sset Capture cap 80%`; or the wrong device is "
                "configured",
            )
        ]
    if clipped > 0.001:
        return [
            Check(
                "input",
                False,
                detail + " (clipping)",
                "lower the capture gain in `alsamixer` (F4: capture)",
            )
        ]
    return [Check("input", True, detail), *_check_reference(config, reference)]


def _check_reference(config: Config, reference: np.ndarray | None) -> list[Check]:
    """`[audio] reference_channel`: the playback's loopback, silent or present."""
    channel = config.audio.reference_channel
    if channel is None or reference is None:
        return []
    rms, peak, _ = level(reference)
    detail = f"channel {channel}: level {rms:.1f} dBFS, peak {peak:.1f} dBFS"
    if peak > SILENT_DBFS:
        return [Check("reference", True, detail)]
    return [
        Check(
            "reference",
            False,
            detail + " (silence)",
            "play something while `recorder doctor` runs: silent while the speaker plays, the "
            "loopback is not on that channel (`arecord -c N` and listen to each channel) or "
            "the card's loopback is off (`alsamixer`)",
        )
    ]


def _check_indicator(config: Config) -> list[Check]:
    from recorder.indicators import CommandIndicator, IndicatorError

    ind = config.indicator
    checks = []
    if ind.command:
        try:
            CommandIndicator(ind.command, ind.timeout_s).show(State.LISTENING, State.OFF)
            checks.append(Check("indicator", True, f"`{ind.command} listening` succeeded"))
        except IndicatorError as e:
            fix = (
                "the hook must exit 0 within [indicator] timeout_s; with required = true a "
                "failing hook discards every request"
            )
            checks.append(Check("indicator", False, str(e), fix))
    if ind.state_file:
        directory = config.path(ind.state_file).parent
        ok = directory.is_dir() and os.access(directory, os.W_OK)
        checks.append(
            Check(
                "state file",
                ok,
                f"{config.path(ind.state_file)}",
                "" if ok else f"create {directory} and let the daemon's user write to it",
            )
        )
    return checks or [Check("indicator", True, "none configured besides the log")]


def check_directory(name: str, path: Path) -> Check:
    """Usable by the daemon: a directory no one but its owner can write to, owned by this
    user or, for root, by anyone (root manages the service's directories)."""
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        ok = os.access(parent, os.W_OK)
        return Check(
            name,
            ok,
            f"{path} does not exist yet"
            + (" (it will be created)" if ok else f" and {parent} is not writable"),
            "" if ok else f"create it: mkdir -p -m 700 {path}",
        )
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        return Check(name, False, f"{path} is not a directory", f"remove or rename {path}")
    problems, fixes = _directory_problems(path, st)
    free_mb = shutil.disk_usage(path).free / 1e6
    if free_mb < MIN_FREE_MB:
        problems.append(f"only {free_mb:.0f} MB free")
        fixes.append("free some space")
    if problems:
        return Check(name, False, f"{path}: " + "; ".join(problems), "; ".join(fixes))
    owner = f"owned by uid {st.st_uid}, " if st.st_uid != os.geteuid() else ""
    return Check(name, True, f"{path} ({owner}{free_mb:.0f} MB free)")


def _directory_problems(path: Path, st: os.stat_result) -> tuple[list[str], list[str]]:
    """What keeps the directory from being private and usable, and the fix for each. Another
    user's directory is never to be taken over (it may be the service's): the fix is to run
    as its owner or as root."""
    problems, fixes = [], []
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(f"writable by others (mode {stat.S_IMODE(st.st_mode):04o})")
        fixes.append(f"chmod go-w {path}")
    euid = os.geteuid()
    if st.st_uid != euid and euid != 0:
        problems.append(f"owned by uid {st.st_uid}, not by this user (uid {euid})")
        fixes.append("run the command as the directory's owner or with sudo")
    elif not os.access(path, os.W_OK):
        problems.append("not writable")
        fixes.append(f"chmod u+w {path}")
    return problems, fixes


def _check_service() -> Check:
    user_unit = (
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        / "systemd"
        / "user"
        / "recorder.service"
    )
    units = [u for u in (SYSTEM_UNIT, user_unit) if u.exists()]
    running = []
    for directory in dict.fromkeys([dirs.default_runtime_dir(), dirs.SYSTEM_RUNTIME_DIR]):
        try:
            reply = control_client.request(directory, "status", timeout_s=2.0)
        except RecorderError:
            reply = None
        if reply and reply.get("ok"):
            running.append(
                f"{reply.get('state')} on {reply.get('source')} (pid {reply.get('pid')})"
            )
    if running:
        return Check("service", True, "a daemon is running: " + "; ".join(running))
    if units:
        return Check(
            "service",
            False,
            f"installed ({', '.join(map(str, units))}) but no daemon answers",
            "sudo systemctl status recorder; journalctl -u recorder -e",
        )
    return Check(
        "service",
        True,
        "not installed and not running (`sudo scripts/install-service.sh` installs it)",
    )


def run_checks(
    config_check: Check,
    config: Config | None,
    state_dir: Path | None,
    report: Callable[[Check], None] = lambda c: None,
) -> list[Check]:
    """Every check in order, after the configuration's; `report` sees each as it is done.
    `state_dir` is the state directory that configuration selects (None only without one)."""
    results: list[Check] = []

    def add(checks: list[Check]) -> None:
        for c in checks:
            results.append(c)
            report(c)

    add([config_check])
    if config is None or state_dir is None:
        return results
    add([_check_models(config)])
    add(_check_input(config))
    add(_check_indicator(config))
    add(
        [
            check_directory("recordings", config.path(config.storage.directory)),
            check_directory("state", state_dir),
        ]
    )
    add([_check_service()])
    return results


def as_json(checks: list[Check]) -> dict[str, object]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def line(check: Check) -> str:
    text = f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<12} {check.detail}"
    return text + (f"\n      fix: {check.fix}" if check.fix and not check.ok else "")
