"""Root in the service's directories, against a service user that races it: nothing root opens
there is followed out through a link, a hard link or a FIFO, and only what root itself created
there is given to the service. Each attack is staged deterministically: the service's move is
made at the exact moment (between root's mkdir and its open) or planted before the command."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_recorder

from recorder import calibration, dirs, models, verifier
from recorder.audit import AuditLog
from recorder.dirs import check_private_dir, hand_over, private_dir
from recorder.errors import RecorderError
from recorder.tools import enroll

SERVICE_UID = 61234
"""The daemon's user, as a transient DynamicUser= would be."""

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")


def service_dir(path: Path, mode: int = 0o750) -> Path:
    path.mkdir(parents=True)
    os.chown(path, SERVICE_UID, SERVICE_UID)
    path.chmod(mode)
    return path


def roots(path: Path, text: str = "root's\n") -> Path:
    """A file of root's outside the service's directories, the attack's target."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def service_link(target: Path, link: Path) -> Path:
    """`link` -> `target`, made by the service (a link in its own directory is its own)."""
    link.symlink_to(target)
    os.chown(link, SERVICE_UID, SERVICE_UID, follow_symlinks=False)
    return link


def owner_and_mode(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, stat.S_IMODE(st.st_mode)


def config(tmp_path: Path, state: Path) -> Path:
    path = tmp_path / "recorder.toml"
    path.write_text(
        f'[storage]\ndirectory = "{tmp_path / "rec"}"\nstate_dir = "{state}"\n'
        '[audio]\nsource = "stdin"\n'
    )
    return path


def mute_as_root(tmp_path: Path, state: Path):
    nowhere = ["--runtime-dir", str(tmp_path / "no-daemon")]
    return run_recorder("mute", "--config", str(config(tmp_path, state)), *nowhere, timeout=60)


# --- private_dir: the new directory swapped for a link ----------------------------------------


@pytest.fixture
def swap_after_mkdir(monkeypatch: pytest.MonkeyPatch):
    """Make every os.mkdir be followed at once by the service's move: the new directory removed
    and a link of its own to `target` put in its place, as a racing service could."""
    real_mkdir, real_rmdir = os.mkdir, os.rmdir

    def arm(target: Path) -> None:
        def mkdir(path, mode=0o777, *, dir_fd=None):
            real_mkdir(path, mode, dir_fd=dir_fd)
            real_rmdir(path, dir_fd=dir_fd)
            os.symlink(target, path, dir_fd=dir_fd)
            os.chown(path, SERVICE_UID, SERVICE_UID, dir_fd=dir_fd, follow_symlinks=False)

        monkeypatch.setattr(os, "mkdir", mkdir)

    return arm


@needs_root
@pytest.mark.parametrize("new", ["state", "deeper/state"])
def test_a_new_directory_swapped_for_a_link_hands_nothing_over(
    tmp_path: Path, swap_after_mkdir, new: str
):
    svc = service_dir(tmp_path / "svc")
    victim = tmp_path / "etc"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    swap_after_mkdir(victim)
    refused: RecorderError | None = None
    try:
        private_dir(svc / new, "state directory")
    except RecorderError as e:
        refused = e
    assert owner_and_mode(victim) == (0, 0o755)  # neither given away nor made 0700
    assert refused is not None and str(refused).startswith(f"state directory {svc / new}: ")
    assert "\n" not in str(refused)


@needs_root
def test_directories_root_makes_in_the_services_are_the_services(tmp_path: Path):
    svc = service_dir(tmp_path / "svc")
    made = private_dir(svc / "a" / "state", "state directory")
    assert (made.parent.stat().st_uid, made.stat().st_uid) == (SERVICE_UID, SERVICE_UID)
    assert owner_and_mode(made) == (SERVICE_UID, 0o700)
    # in a directory of root's, root's own
    mine = private_dir(tmp_path / "root" / "state", "state directory")
    assert owner_and_mode(mine) == (0, 0o700)


def test_a_directory_that_cannot_be_made_private_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def refuse(*_args, **_kw):
        raise PermissionError(1, "Operation not permitted")  # vfat, some NFS exports

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    path = tmp_path / "fat" / "state"
    with pytest.raises(RecorderError) as e:
        private_dir(path, "state directory")
    assert str(e.value) == f"state directory {path}: cannot create it (Operation not permitted)"


# --- check_private_dir: root follows no link of the service's ---------------------------------


@needs_root
def test_root_refuses_a_directory_named_through_the_services_link(tmp_path: Path):
    svc = service_dir(tmp_path / "svc")
    victim = tmp_path / "etc"
    victim.mkdir()
    link = service_link(victim, svc / "state")
    with pytest.raises(RecorderError) as e:
        check_private_dir(link, "state directory")
    assert str(e.value) == (
        f"state directory {link}: {link} is a symbolic link owned by uid {SERVICE_UID}; root "
        "follows no other user's link: name the directory itself"
    )
    # the command: refused before anything is written there
    proc = mute_as_root(tmp_path, link)
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.decode() == f"recorder: error: {e.value}\n"
    assert list(victim.iterdir()) == []
    # root's own link to the service's directory (systemd's /var/lib/NAME) is followed
    own = tmp_path / "root-link"
    own.symlink_to(svc)
    check_private_dir(own, "state directory")


# --- hand_over: only what root created ----------------------------------------------------------


@needs_root
def test_a_hard_link_to_a_file_of_roots_is_not_handed_over(tmp_path: Path):
    svc = service_dir(tmp_path / "svc")
    victim = roots(tmp_path / "shadow")
    os.link(victim, svc / "planted")
    fd = os.open(svc / "planted", os.O_RDONLY)
    try:
        with pytest.raises(RecorderError, match="2 links"):
            hand_over(fd, svc)
    finally:
        os.close(fd)
        assert owner_and_mode(victim) == (0, 0o600)


@needs_root
def test_a_hard_link_planted_as_the_audit_lock_is_refused_and_kept_roots(tmp_path: Path):
    state = service_dir(tmp_path / "state")
    victim = roots(tmp_path / "shadow")
    os.link(victim, state / "audit.lock")  # the service's, where fs.protected_hardlinks=0
    proc = mute_as_root(tmp_path, state)
    assert owner_and_mode(victim) == (0, 0o600)
    assert victim.read_text() == "root's\n"
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.decode() == (
        f"recorder: error: audit lock {state / 'audit.lock'}: has 2 hard links; refused (root "
        "writes only to a file with one)\n"
    )


@needs_root
def test_a_hard_link_planted_as_the_audit_log_is_not_written(tmp_path: Path):
    state = service_dir(tmp_path / "state")
    log = AuditLog(state)
    log.append("muted", by="cli", uid=0)
    assert (state / "audit.log").stat().st_uid == SERVICE_UID  # root created it: handed over
    (state / "audit.log").unlink()
    victim = roots(tmp_path / "shadow", "")
    os.link(victim, state / "audit.log")
    with pytest.raises(RecorderError, match="has 2 hard links"):
        log.append("unmuted", by="cli", uid=0)
    assert owner_and_mode(victim) == (0, 0o600)
    assert victim.read_text() == ""


@needs_root
def test_an_audit_log_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path):
    state = service_dir(tmp_path / "state")
    os.mkfifo(state / "audit.log", 0o600)
    os.chown(state / "audit.log", SERVICE_UID, SERVICE_UID)
    line = f"audit log {state / 'audit.log'}: not a regular file (a link, FIFO or device); refused"
    proc = mute_as_root(tmp_path, state)  # opens it for writing (old: blocked forever)
    assert (proc.returncode, proc.stderr.decode()) == (2, f"recorder: error: {line}\n")
    proc = run_recorder("audit", "--state-dir", str(state), timeout=60)  # opens it to read
    assert (proc.returncode, proc.stderr.decode()) == (2, f"recorder: error: {line}\n")


@pytest.mark.parametrize("command", ["calibrate", "audit"])
def test_a_fifo_among_the_state_files_is_refused_not_waited_on(tmp_path: Path, command: str):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    name = {"calibrate": "calibration.json", "audit": "audit.log"}[command]
    os.mkfifo(state / name, 0o600)
    proc = run_recorder(command, "--config", str(config(tmp_path, state)), timeout=60)
    assert proc.returncode == 2, proc.stderr.decode()
    assert proc.stderr.decode().endswith(
        f" {state / name}: not a regular file (a link, FIFO or device); refused\n"
    )


def test_open_file_creates_once_and_opens_what_is_there_after(tmp_path: Path):
    path = tmp_path / "audit.lock"
    fd, created = dirs.open_file(path, os.O_RDWR, "audit lock")
    os.close(fd)
    assert created and owner_and_mode(path) == (os.geteuid(), 0o600)
    fd, created = dirs.open_file(path, os.O_RDWR, "audit lock")
    os.close(fd)
    assert not created
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RecorderError, match="not a regular file"):
        dirs.open_file(path, os.O_RDWR, "audit lock")
    assert not (tmp_path / "elsewhere").exists()


# --- models fetch: the temp file is root's own ------------------------------------------------


def small_wheel(tmp_path: Path, directory: Path) -> tuple[models.Manifest, bytes]:
    data = b"an onnx model\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("pkg/resources/melspectrogram.onnx", data)
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    (wheel_dir / "pkg-1.0-py3-none-any.whl").write_bytes(buf.getvalue())
    entry = models.ModelFile(
        "melspectrogram", "melspectrogram.onnx", hashlib.sha256(data).hexdigest(), "Apache-2.0"
    )
    manifest = models.Manifest(
        directory=directory,
        distribution="pkg",
        wheel="pkg-1.0-py3-none-any.whl",
        wheel_sha256=hashlib.sha256(buf.getvalue()).hexdigest(),
        path_in_wheel="pkg/resources/",
        features={"melspectrogram": entry},
        wakewords={},
    )
    return manifest, data


@needs_root
def test_models_fetch_writes_through_no_planted_link(tmp_path: Path):
    directory = service_dir(tmp_path / "models", 0o755)
    manifest, data = small_wheel(tmp_path, directory)
    victim = roots(tmp_path / "shadow")
    service_link(victim, directory / ".melspectrogram.onnx.part")
    assert models.fetch(manifest, tmp_path / "wheels", log=lambda _m: None) == ["melspectrogram"]
    assert victim.read_text() == "root's\n" and owner_and_mode(victim) == (0, 0o600)
    installed = directory / "melspectrogram.onnx"
    assert installed.read_bytes() == data
    assert owner_and_mode(installed) == (SERVICE_UID, 0o644)  # the directory's owner's
    assert sorted(p.name for p in directory.iterdir()) == ["melspectrogram.onnx"]


@needs_root
def test_models_fetch_refuses_a_models_directory_that_is_the_services_link(tmp_path: Path):
    svc = service_dir(tmp_path / "svc", 0o755)
    victim = tmp_path / "etc"
    victim.mkdir()
    directory = service_link(victim, svc / "models")
    manifest, _ = small_wheel(tmp_path, directory)
    with pytest.raises(RecorderError, match=f"{directory} is a symbolic link owned by uid"):
        models.fetch(manifest, tmp_path / "wheels", log=lambda _m: None)
    assert list(victim.iterdir()) == []


@needs_root
def test_a_verifier_is_written_through_no_planted_link(tmp_path: Path):
    state = service_dir(tmp_path / "state")
    victim = roots(tmp_path / "shadow")
    out = service_link(victim, state / "verifier-hey_jarvis.npz")
    rng = np.random.default_rng(3)
    trained = verifier.train(
        "hey_jarvis", rng.normal(0.5, 1, (40, 192)), rng.normal(-0.5, 1, (200, 192))
    )
    trained.save(out)
    assert victim.read_text() == "root's\n" and owner_and_mode(victim) == (0, 0o600)
    assert not out.is_symlink() and out.stat().st_uid == SERVICE_UID
    assert verifier.load(out).model == "hey_jarvis"


# --- the state files of calibrate and enroll --------------------------------------------------


def test_write_atomic_closes_and_removes_its_temp_file_when_handing_over_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def refuse(_fd, directory, _dir_fd=None):
        raise RecorderError(f"directory {directory}: not handed over")

    monkeypatch.setattr(calibration, "hand_over", refuse)
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(RecorderError, match="not handed over"):
        calibration.write_atomic(tmp_path / "calibration.json", "{}")
    assert set(os.listdir("/proc/self/fd")) == fds
    assert list(tmp_path.iterdir()) == []


def test_enroll_keeps_its_state_in_a_private_directory(tmp_path: Path):
    made = tmp_path / "new" / "state"
    enroll.save(made, "hey_jarvis", 3, {1: [3] * len(calibration.THRESHOLDS)})
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o770)
    with pytest.raises(RecorderError, match="writable by others"):
        enroll.save(shared, "hey_jarvis", 3, {1: [3] * len(calibration.THRESHOLDS)})
    assert list(shared.iterdir()) == []
