"""The daemon's directories: where the state and runtime directories are when neither a flag
nor the configuration names them (systemd's, then XDG's, then the usual places), and private
directories (recordings, state, runtime): created 0700, refused when others can write to them,
as ssh does with ~/.ssh, or when they belong to another user and the caller is not root. Root
may manage another user's (the system service's) directories: a file or directory root creates
in one is handed to that directory's owner, so the service can still use it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recorder.errors import RecorderError

SYSTEM_RUNTIME_DIR = Path("/run/recorder")  # the system service's RuntimeDirectory


def default_runtime_dir() -> Path:
    if os.environ.get("RUNTIME_DIRECTORY"):
        return Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "recorder"
    return SYSTEM_RUNTIME_DIR


def default_state_dir() -> Path:
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]) / "recorder"
    return Path.home() / ".local" / "state" / "recorder"


def check_private_dir(path: Path, what: str) -> None:
    """Refuse `path` unless it is a directory that no one but its owner can write to, owned by
    this process's user or, for root, by anyone (root manages the service's files). A symlink
    to such a directory is accepted (it is the directory that counts)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise RecorderError(f"{what} {path}: not usable ({e.strerror or e})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise RecorderError(f"{what} {path}: exists and is not a directory")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RecorderError(
            f"{what} {path}: writable by others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); run `chmod go-w {path}`"
        )
    uid = os.geteuid()
    if st.st_uid != uid and uid != 0:
        raise RecorderError(
            f"{what} {path}: owned by uid {st.st_uid}, not by this user (uid {uid}); "
            "run the command as its owner or with sudo, or choose another directory"
        )


def hand_over(fd: int, directory: Path) -> None:
    """A file (or directory) root just created, open as `fd`, in `directory`: given to the
    directory's owner and group when that is another user (the service's), so the service can
    use it. Nothing happens for any other caller or directory."""
    if os.geteuid() != 0:
        return
    st = os.stat(directory)
    if st.st_uid != 0 and os.fstat(fd).st_uid == 0:
        os.fchown(fd, st.st_uid, st.st_gid)


def private_dir(path: Path, what: str) -> Path:
    """Create `path` mode 0700 if missing (parents as the umask says), then check it."""
    try:
        path.mkdir(parents=True, mode=0o700)
    except FileExistsError:
        pass
    except (OSError, ValueError) as e:
        raise RecorderError(
            f"{what} {path}: cannot create it ({getattr(e, 'strerror', None) or e})"
        ) from None
    else:
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            hand_over(fd, path.parent)
        finally:
            os.close(fd)
    check_private_dir(path, what)
    return path


def fsync_dir(directory: Path) -> None:
    """Make the renames and removals in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
