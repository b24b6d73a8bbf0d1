"""Root manages the service's files: the recordings and state directories of a daemon that runs
as another user (the system service's DynamicUser=), named by the configuration file.

Root lists, exports and deletes in a 0750 directory owned by another uid, and its deletion goes
into the daemon's own audit chain, which the daemon keeps appending to; a directory group or
others can write to is refused even for root; another user's directory is refused for a user
who is not root, with a fix that is never a chown. The configuration names the state and models
directories, and flag > environment > file > default decides which is used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AUDIO, RECORDER, REPO, run_recorder
from harness import QUIET, REQUEST, Daemon

SERVICE_UID = 61234
"""The daemon's user, as a transient DynamicUser= would be."""
USER_UID = 61235
"""Someone else, neither the daemon's user nor root."""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A scratch directory other users can reach (pytest's own is root's 0700)."""
    base = Path(tempfile.mkdtemp(prefix="recorder-users-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def give(uid: int, directory: Path, mode: int = 0o750) -> Path:
    """`directory` (created if missing) and all in it owned by `uid`, the directory `mode`."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, uid, uid)
    directory.chmod(mode)
    return directory


def write_config(path: Path, rec: Path, state: Path, extra: str = "") -> Path:
    path.write_text(
        f'[storage]\ndirectory = "{rec}"\nstate_dir = "{state}"\n[audio]\nsource = "stdin"\n{extra}'
    )
    path.chmod(0o644)
    return path


def as_user(uid: int) -> list[str]:
    """The command that runs what follows it as `uid`, with no supplementary groups and no
    capabilities (util-linux's setpriv)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    prefix = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    tried = subprocess.run(
        [*prefix, str(RECORDER.parent / "python"), "-c", ""], capture_output=True, timeout=60
    )
    if tried.returncode != 0:  # e.g. a Python built with its libpython under /root (0700)
        why = (tried.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        pytest.skip(f"uid {uid} cannot run this venv's interpreter: {why}")
    return prefix


def run_as(uid: int, *args: str, home: Path) -> subprocess.CompletedProcess:
    """`recorder ARGS` run as `uid`, in a scratch home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(home / "run"))
    return subprocess.run(
        [*as_user(uid), str(RECORDER), *args], capture_output=True, text=True, timeout=120, env=env
    )


def audit_entries(config: Path) -> list[dict]:
    proc = run_recorder("audit", "--json", "--config", str(config))
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def saved_one(rec: Path, state: Path) -> str:
    """A recording saved by a daemon run on a real scene; its id."""
    proc = run_recorder(
        "run",
        "--source",
        f"file:{AUDIO / 'jarvis_pause_command.wav'}",
        "--recordings",
        str(rec),
        "--state-dir",
        str(state),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    (wav,) = rec.glob("*.wav")
    return wav.stem


# --- root and the service's directories ------------------------------------------------------


@needs_root
def test_root_manages_a_running_services_files_in_one_audit_chain(shared_tmp: Path):
    svc = give(SERVICE_UID, shared_tmp / "svc", 0o755)
    rec, state = give(SERVICE_UID, svc / "rec"), give(SERVICE_UID, svc / "state")
    config = write_config(shared_tmp / "recorder.toml", rec, state)
    service = as_user(SERVICE_UID)
    with Daemon(svc, "--config", config, rec=rec, state_dir=state, prefix=service) as d:
        d.feed(QUIET + REQUEST + QUIET)
        assert d.status()["recordings"] == 1
        (first,) = [p.stem for p in rec.glob("*.wav")]

        listed = run_recorder("list", "--json", "--config", str(config))
        assert listed.returncode == 0, listed.stderr.decode()
        assert [e["id"] for e in json.loads(listed.stdout)] == [first]
        out = shared_tmp / "out"
        out.mkdir()
        exported = run_recorder("export", first, "--to", str(out), "--config", str(config))
        assert exported.returncode == 0, exported.stderr.decode()
        assert (out / f"{first}.wav").read_bytes() == (rec / f"{first}.wav").read_bytes()

        deleted = run_recorder("delete", first, "--config", str(config))
        assert deleted.returncode == 0, deleted.stderr.decode()
        assert list(rec.iterdir()) == []

        # The daemon goes on appending to the same log, which stays its own.
        d.feed(QUIET + REQUEST + QUIET)
        assert d.status()["recordings"] == 1  # the directory's: a new one
        d.stop()
    for name in ("audit.log", "audit.lock"):
        assert (state / name).stat().st_uid == SERVICE_UID, name
    (second,) = [p.stem for p in rec.glob("*.wav")]
    assert second != first
    assert (rec / f"{second}.json").stat().st_uid == SERVICE_UID

    verified = run_recorder("audit", "--verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr.decode()
    entries = audit_entries(config)
    assert f"{state / 'audit.log'}: intact: {len(entries)} entries" in verified.stdout.decode()
    events = [(e["event"], e.get("id"), e["by"]) for e in entries if e["event"] != "wake"]
    assert events == [
        ("started", None, "daemon"),
        ("saved", first, "daemon"),
        ("deleted", first, "cli"),
        ("saved", second, "daemon"),
        ("stopped", None, "daemon"),
    ]


@needs_root
def test_root_mutes_into_the_services_state_directory(tmp_path: Path):
    rec, state = give(SERVICE_UID, tmp_path / "rec"), give(SERVICE_UID, tmp_path / "state")
    config = write_config(tmp_path / "recorder.toml", rec, state)
    nowhere = ["--runtime-dir", str(tmp_path / "no-daemon")]
    proc = run_recorder("mute", "--config", str(config), *nowhere)
    assert proc.returncode == 0, proc.stderr.decode()
    assert f"state directory {state} starts muted" in proc.stdout.decode()
    assert (state / "muted").stat().st_uid == SERVICE_UID
    status = run_recorder("status", "--json", "--config", str(config), *nowhere)
    assert status.returncode == 3 and json.loads(status.stdout)["muted"] is True
    assert [e["event"] for e in audit_entries(config)] == ["muted"]


@needs_root
@pytest.mark.parametrize("mode", [0o770, 0o757], ids=["0770", "0757"])
@pytest.mark.parametrize("which", ["recordings", "state"])
def test_a_directory_others_can_write_is_refused_even_for_root(tmp_path, which, mode):
    rec, state = tmp_path / "rec", tmp_path / "state"
    rid = saved_one(rec, state)
    give(SERVICE_UID, rec)
    give(SERVICE_UID, state)
    bad = rec if which == "recordings" else state
    bad.chmod(mode)
    config = write_config(tmp_path / "recorder.toml", rec, state)
    line = f"{which} directory {bad}: writable by others (mode {mode:04o}); run `chmod go-w {bad}`"
    commands = [["delete", rid], ["prune"]]
    commands += [["list"], ["export", rid, "--to", str(tmp_path)]] if bad == rec else [["audit"]]
    for command in commands:
        proc = run_recorder(*command, "--config", str(config))
        err = proc.stderr.decode()
        assert proc.returncode == 2 and err == f"recorder: error: {line}\n", (command, err)
    assert (rec / f"{rid}.wav").exists()  # nothing was deleted


@needs_root
def test_another_users_directory_is_refused_for_others_without_a_chown(shared_tmp: Path):
    rec, state = give(SERVICE_UID, shared_tmp / "rec"), give(SERVICE_UID, shared_tmp / "state")
    config = write_config(shared_tmp / "recorder.toml", rec, state)
    home = give(USER_UID, shared_tmp / "home", 0o700)
    proc = run_as(USER_UID, "list", "--config", str(config), home=home)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"recorder: error: recordings directory {rec}: owned by uid {SERVICE_UID}, not by this "
        f"user (uid {USER_UID}); run the command as its owner or with sudo, or choose another "
        "directory\n"
    )
    proc = run_as(USER_UID, "doctor", "--json", "--config", str(config), home=home)
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert proc.returncode == 1
    for name in ("recordings", "state"):
        c = checks[name]
        assert not c["ok"] and f"owned by uid {SERVICE_UID}" in c["detail"], c
        assert "sudo" in c["fix"] and "chown" not in c["fix"], c

    # Root's doctor takes the same directories as they are: the service's.
    proc = run_recorder("doctor", "--json", "--config", str(config))
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    for name, path in (("recordings", rec), ("state", state)):
        assert checks[name]["ok"], checks[name]
        assert checks[name]["detail"].startswith(f"{path} (owned by uid {SERVICE_UID}, ")


# --- the configuration names the state and models directories --------------------------------


def test_the_state_directory_is_flag_then_config_then_environment_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    configured, env_dir, flag = tmp_path / "configured", tmp_path / "env", tmp_path / "flag"
    config = write_config(tmp_path / "recorder.toml", tmp_path / "rec", configured)

    def audit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[bytes]:
        proc = run_recorder("audit", "--verify", *args, env=env)
        assert proc.returncode == 0, proc.stderr.decode()
        return proc

    def used(*args: str, env: dict | None = None) -> str:
        return audit(*args, env=env).stdout.decode().split(": intact")[0]

    default = Path(os.environ["XDG_STATE_HOME"]) / "recorder" / "audit.log"
    assert used() == str(default)
    # systemd's $STATE_DIRECTORY, when no file names a state directory
    assert used(env={"STATE_DIRECTORY": f"{env_dir}:{tmp_path}/other"}) == str(
        env_dir / "audit.log"
    )
    assert used("--config", str(config)) == str(configured / "audit.log")
    monkeypatch.setenv("RECORDER_CONFIG", str(config))  # the config in force, found
    assert used() == str(configured / "audit.log")
    # a file's key wins over the variable (another unit's StateDirectory=), and says so
    proc = audit(env={"STATE_DIRECTORY": str(env_dir)})
    assert proc.stdout.decode().split(": intact")[0] == str(configured / "audit.log")
    assert f"state_dir = {configured} is used, not $STATE_DIRECTORY ({env_dir})" in (
        proc.stderr.decode()
    )
    both = used("--state-dir", str(flag), env={"STATE_DIRECTORY": str(env_dir)})
    assert both == str(flag / "audit.log")

    # calibrate reads the counters of the state directory the configuration in force names
    proc = run_recorder("calibrate", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert json.loads(proc.stdout)["state_dir"] == str(configured)
    shown = run_recorder("config", "show", env={"STATE_DIRECTORY": str(env_dir)}).stdout.decode()
    assert f'state_dir = "{configured}"' in shown
    assert "from $STATE_DIRECTORY" not in shown
    bare = tmp_path / "bare.toml"
    bare.write_text('[audio]\nsource = "stdin"\n')
    shown = run_recorder(
        "config", "show", "--config", str(bare), env={"STATE_DIRECTORY": str(env_dir)}
    ).stdout.decode()
    assert f'state_dir = "{env_dir}"' in shown
    assert "# [storage] state_dir from $STATE_DIRECTORY" in shown


def test_models_commands_use_the_configured_models_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("RECORDER_MODELS_DIR", raising=False)
    models = tmp_path / "m"
    shutil.copytree(REPO / "models", models)
    config = tmp_path / "recorder.toml"
    # models_dir relative to the file's directory
    config.write_text('[wake]\nmodels = ["alexa"]\nmodels_dir = "m"\n[audio]\nsource = "stdin"\n')

    fetched = run_recorder("models", "fetch", "--config", str(config))
    assert fetched.returncode == 0, fetched.stderr.decode()
    assert fetched.stdout.decode() == f"models in {models}: all present and verified\n"

    def statuses(*args: str, env: dict | None = None) -> dict[str, tuple[str, str]]:
        proc = run_recorder("models", "list", "--json", *args, env=env)
        assert proc.returncode == 0, proc.stderr.decode()
        rows = [r for r in json.loads(proc.stdout) if r["engine"] == "openWakeWord"]
        return {r["name"]: (r["status"], str(Path(r["path"]).parent)) for r in rows}

    (models / "alexa_v0.1.onnx").write_bytes(b"not the model")
    got = statuses("--config", str(config))
    assert got["alexa"] == ("hash mismatch", str(models))
    assert got["hey_jarvis"] == ("ok", str(models))
    # the file's key wins over $RECORDER_MODELS_DIR, which serves a file without one;
    # --models-dir wins over both
    env = {"RECORDER_MODELS_DIR": str(REPO / "models")}
    assert statuses("--config", str(config), env=env)["alexa"] == ("hash mismatch", str(models))
    bare = tmp_path / "bare.toml"
    bare.write_text('[wake]\nmodels = ["alexa"]\n[audio]\nsource = "stdin"\n')
    assert statuses("--config", str(bare), env=env)["alexa"] == ("ok", str(REPO / "models"))
    flag = statuses("--config", str(bare), "--models-dir", str(models), env=env)
    assert flag["alexa"] == ("hash mismatch", str(models))

    doctor = run_recorder("doctor", "--json", "--config", str(config))
    (check,) = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "models"]
    assert not check["ok"] and str(models / "alexa_v0.1.onnx") in check["detail"], check
