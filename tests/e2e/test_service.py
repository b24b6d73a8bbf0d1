"""The systemd units and scripts/install-service.sh.

systemd-analyze (Debian's `systemd` package) checks the units offline: the system unit's
sandbox must score an overall exposure of at most 1.0, and `verify` may only complain that the
ExecStart executable is not installed on this machine. The installer is run for real into a
temporary root, twice, and the recorder it installed is run on a recording.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AUDIO, RECORDER, REPO

SYSTEM_UNIT = REPO / "config" / "recorder.service"
USER_UNIT = REPO / "config" / "recorder-user.service"
INSTALLER = REPO / "scripts" / "install-service.sh"
MANIFEST_FILES = 8  # melspectrogram, embedding and six wake words in recorder/manifest.toml


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return path


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` assignment in a unit file, by `Section.Key`, in order.

    Comments and blank lines are skipped, so a commented-out setting does not count.
    """
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a Key=value line: {raw!r}"
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user manager's environment for systemd-analyze --user, in a scratch home."""
    home = tmp_path / "home"
    runtime = tmp_path / "xdg-runtime"
    home.mkdir(exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    return {**env, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}


# --- the system unit's sandbox -------------------------------------------------------------


def test_system_unit_exposure_is_at_most_1():
    proc = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(SYSTEM_UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for recorder\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 1.0, proc.stdout


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_units_verify_clean_but_for_the_missing_executable(unit: Path, tmp_path: Path):
    user = unit == USER_UNIT
    env = user_env(tmp_path) if user else dict(os.environ)
    cmd = [systemd_analyze(), *(["--user"] if user else []), "verify", str(unit)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)

    exec_start = unit_settings(unit)["Service.ExecStart"]
    assert len(exec_start) == 1
    executable = exec_start[0].split()[0].replace("%h", env["HOME"])
    tolerated = f"{unit.name}: Command {executable} is not executable: No such file or directory"
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    for line in lines:
        assert line == tolerated, f"systemd-analyze verify: {line}"
        assert not Path(executable).exists()  # tolerated only because it is not installed here
    if not lines:
        assert proc.returncode == 0


# --- what the units promise ------------------------------------------------------------


def test_system_unit_has_no_network():
    s = unit_settings(SYSTEM_UNIT)
    assert s["Service.PrivateNetwork"] == ["yes"]
    assert s["Service.IPAddressDeny"] == ["any"]
    assert "Service.IPAddressAllow" not in s
    assert s["Service.RestrictAddressFamilies"] == ["AF_UNIX"]


def test_user_unit_has_no_network():
    s = unit_settings(USER_UNIT)
    assert s["Service.PrivateNetwork"] == ["yes"]
    assert s["Service.PrivateUsers"] == ["yes"]  # a user manager needs it for PrivateNetwork=
    assert s["Service.RestrictAddressFamilies"] == ["AF_UNIX"]


def test_system_unit_runs_the_daemon_as_a_watched_sandboxed_service():
    s = unit_settings(SYSTEM_UNIT)
    one = {key.split(".", 1)[1]: values[-1] for key, values in s.items()}
    assert s["Service.ExecStart"] == [
        "/opt/recorder/venv/bin/recorder run --config /etc/recorder/recorder.toml --wait-for-device"
    ]
    assert (one["Type"], one["NotifyAccess"]) == ("notify", "main")
    assert one["WatchdogSec"] and one["Restart"] in ("always", "on-failure")
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["Service.Environment"] == [
        "RECORDER_MODELS_DIR=/var/lib/recorder/models",
        "ORT_DISABLE_TELEMETRY=1",
    ]
    # Devices: ALSA only; files: read-only but the service's own directories.
    assert (one["DevicePolicy"], one["DeviceAllow"]) == ("closed", "char-alsa rw")
    assert one["ProtectSystem"] == "strict"
    assert (one["StateDirectory"], one["RuntimeDirectory"], one["ConfigurationDirectory"]) == (
        "recorder",
        "recorder",
        "recorder",
    )
    assert one["UMask"] == "0077"
    assert one["DynamicUser"] == "yes" and one["SupplementaryGroups"] == "audio"
    assert one["CapabilityBoundingSet"] == "" and one["NoNewPrivileges"] == "yes"
    assert s["Service.SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert s["Install.WantedBy"] == ["multi-user.target"]


# --- the installer -------------------------------------------------------------------------


def run_installer(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["sh", str(INSTALLER), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
        timeout=timeout,
    )


def hermetic_env(tmp_path: Path, models: Path | None = None) -> dict[str, str]:
    """No systemd directories or XDG paths of the caller leak into a run of the daemon. With
    `models`: the staged root's models and a scratch state directory in the environment, which
    serve a command that names no config (one that names the installed config uses its
    /var/lib/recorder paths, unless flags say otherwise)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XDG_")
        and k not in ("RUNTIME_DIRECTORY", "STATE_DIRECTORY", "RECORDER_MODELS_DIR")
    }
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_RUNTIME_DIR=str(tmp_path / "run"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    if models is not None:
        env.update(RECORDER_MODELS_DIR=str(models), STATE_DIRECTORY=str(tmp_path / "state"))
    return env


def test_install_into_a_root_twice_then_run_the_installed_recorder(tmp_path: Path):
    root = tmp_path / "root"
    first = run_installer("--root", str(root))
    assert first.returncode == 0, first.stdout + first.stderr
    config = root / "etc/recorder/recorder.toml"
    assert config.is_file()
    text = config.read_text()
    assert re.search(r'^directory = "/var/lib/recorder/recordings"$', text, re.M), text
    # Every command run with sudo uses the service's files: the config names them.
    shown = subprocess.run(
        [str(RECORDER), "config", "show", "--config", str(config)],
        capture_output=True,
        text=True,
        env=hermetic_env(tmp_path),
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    for line in (
        'directory = "/var/lib/recorder/recordings"',
        'state_dir = "/var/lib/recorder"',
        'models_dir = "/var/lib/recorder/models"',
    ):
        assert line in shown.stdout.splitlines(), shown.stdout

    # A user's edit of the config survives a second run, which succeeds.
    edited = text + "\n# edited by the user\n"
    config.write_text(edited)
    second = run_installer("--root", str(root))
    assert second.returncode == 0, second.stdout + second.stderr
    assert config.read_text() == edited
    assert "kept the existing config" in second.stdout

    venv = root / "opt/recorder/venv"
    recorder = venv / "bin" / "recorder"
    models = root / "var/lib/recorder/models"
    assert os.access(recorder, os.X_OK)
    # Installed, not linked to this checkout.
    where = subprocess.run(
        [str(venv / "bin/python"), "-I", "-c", "import recorder; print(recorder.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    env = hermetic_env(tmp_path, models)
    listed = subprocess.run(
        [str(recorder), "models", "list"], capture_output=True, text=True, env=env, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    rows = [r for r in listed.stdout.splitlines() if "microWakeWord" not in r]  # no [micro]
    assert len(rows) == MANIFEST_FILES, listed.stdout
    assert all(row.split()[-2] == "ok" for row in rows), listed.stdout

    unit = root / "etc/systemd/system/recorder.service"
    assert unit.read_text() == SYSTEM_UNIT.read_text()
    # (The link points at the final path, so it dangles here: glob() would skip it.)
    wants = [
        d / "recorder.service"
        for d in (root / "etc/systemd/system").glob("*.wants")
        if (d / "recorder.service").is_symlink()
    ]
    assert [w.parent.name for w in wants] == ["multi-user.target.wants"]
    assert os.readlink(wants[0]) == "/etc/systemd/system/recorder.service"
    for path in (unit, config, models / "embedding_model.onnx"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # readable by the service

    loads = subprocess.run(
        [
            str(venv / "bin/python"),
            "-I",
            "-c",
            "import sys; from pathlib import Path; from recorder import config; "
            "print(config.load(Path(sys.argv[1])).storage.directory)",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert loads.returncode == 0, loads.stderr
    assert loads.stdout.strip() == "/var/lib/recorder/recordings"

    out = tmp_path / "recordings"
    run = subprocess.run(
        [
            str(recorder),
            "run",
            "--config",
            str(config),
            "--source",
            f"file:{AUDIO / 'jarvis_pause_command.wav'}",
            "--recordings",
            str(out),
            "--models-dir",
            str(models),
            "--state-dir",
            str(tmp_path / "state"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    wavs, sidecars = sorted(out.glob("*.wav")), sorted(out.glob("*.json"))
    assert len(wavs) == len(sidecars) == 1, run.stderr
    assert wavs[0].stem == sidecars[0].stem


def test_install_user_service_into_a_root(tmp_path: Path):
    root = tmp_path / "root"
    home = "/home/alice"
    env = {"HOME": home, "XDG_CONFIG_HOME": "", "XDG_RUNTIME_DIR": str(tmp_path / "no-run")}
    proc = run_installer("--user", "--root", str(root), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    base = root / home.lstrip("/")
    unit = base / ".config/systemd/user/recorder.service"
    assert unit.read_text() == USER_UNIT.read_text()
    link = base / ".config/systemd/user/default.target.wants/recorder.service"
    assert os.readlink(link) == f"{home}/.config/systemd/user/recorder.service"
    config = (base / ".config/recorder/recorder.toml").read_text()
    assert re.search(r'^directory = "~/.local/share/recorder/recordings"$', config, re.M)
    assert re.search(r'^models_dir = "~/.local/share/recorder/models"$', config, re.M)
    assert not re.search(r"^state_dir", config, re.M)  # the user unit's StateDirectory=: default
    recordings = base / ".local/share/recorder/recordings"  # the unit's one ReadWritePaths=
    assert stat.S_IMODE(recordings.stat().st_mode) == 0o700
    assert os.access(base / ".local/share/recorder/venv/bin/recorder", os.X_OK)
    assert (base / ".local/share/recorder/models/embedding_model.onnx").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--root"],
        ["--root", "relative/dir"],
        ["--prefix", "opt/recorder"],
        ["--prefix", "/home/pi/recorder"],
        ["--prefix", "/opt/with space"],
    ],
)
def test_installer_refuses_bad_arguments_in_one_line(args: list[str], tmp_path: Path):
    proc = run_installer(*args, env={"TMPDIR": str(tmp_path)}, timeout=30)
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("install-service.sh: "), proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was created
