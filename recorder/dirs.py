"""The daemon's directories: where the state and runtime directories are when neither a flag
nor the configuration names them (systemd's, then XDG's, then the usual places), and private
directories (recordings, state, runtime): created 0700, refused when others can write to them,
as ssh does with ~/.ssh, or when they belong to another user and the caller is not root. Root
may manage another user's (the system service's) directories: a file or directory root creates
in one is handed to that directory's owner, so the service can still use it. Root assumes that
user may race it: only what root itself created (O_EXCL, opened without following a link) is
handed over, a link that user made is never followed, and a FIFO or a file with other hard links
is refused rather than opened for writing."""

from __future__ import annotations

import errno
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


def default_cache_dir() -> Path | None:
    """Where derived files (the engine's built graph) are kept: `$RECORDER_CACHE_DIR`, then
    systemd's `CacheDirectory=`, then XDG's; None when there is no home to put it in."""
    for var in ("RECORDER_CACHE_DIR", "CACHE_DIRECTORY"):
        if os.environ.get(var):
            return Path(os.environ[var].split(":")[0])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "recorder"
    try:
        return Path.home() / ".cache" / "recorder"
    except (RuntimeError, KeyError):  # no $HOME and no passwd entry for this uid
        return None


def check_private_dir(path: Path, what: str) -> None:
    """Refuse `path` unless it is a directory that no one but its owner can write to, owned by
    this process's user or, for root, by anyone (root manages the service's files). A symlink
    to such a directory is accepted (it is the directory that counts), except, for root, a
    symlink another user made: it could point root at any directory (/etc)."""
    uid = os.geteuid()
    if uid == 0:
        refuse_others_links(path, what)
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
    if st.st_uid != uid and uid != 0:
        raise RecorderError(
            f"{what} {path}: owned by uid {st.st_uid}, not by this user (uid {uid}); "
            "run the command as its owner or with sudo, or choose another directory"
        )


def refuse_others_links(path: Path, what: str) -> None:
    """A symbolic link on the way to `path` that is not root's (one the service made in its own
    directory) is refused; root's own links (systemd's /var/lib/NAME -> private/NAME) are
    followed."""
    absolute = path.absolute()
    for p in (absolute, *absolute.parents):
        try:
            st = os.lstat(p)
        except OSError:
            continue  # missing: made later, never as a link
        if stat.S_ISLNK(st.st_mode) and st.st_uid != 0:
            raise RecorderError(
                f"{what} {path}: {p} is a symbolic link owned by uid {st.st_uid}; root follows "
                "no other user's link: name the directory itself"
            )


def hand_over(fd: int, directory: Path, dir_fd: int | None = None) -> None:
    """A file (or directory) root just created, open as `fd`, in `directory` (open as `dir_fd`
    when given, which then decides): given to the directory's owner and group when that is
    another user (the service's), so the service can use it. Nothing happens for any other
    caller or directory, or for a file root does not own. Only a regular file with one link or
    a directory is handed over: anything else root owns there was not created by the caller
    (a hard link to a file of root's), and is refused (RecorderError)."""
    if os.geteuid() != 0:
        return
    st = os.fstat(fd)
    owner = os.fstat(dir_fd) if dir_fd is not None else os.stat(directory)
    if owner.st_uid == 0 or st.st_uid != 0:
        return
    if not (stat.S_ISDIR(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink == 1)):
        raise RecorderError(
            f"directory {directory}: a file root opened there has {st.st_nlink} links or is "
            "not a regular file; it was not created by this command and is not handed over"
        )
    os.fchown(fd, owner.st_uid, owner.st_gid)


def open_file(path: Path, flags: int, what: str) -> tuple[int, bool]:
    """`path` opened with `flags` (O_RDWR, O_WRONLY | O_APPEND, ...): created 0600 when missing
    (O_EXCL) and then handed over to the directory's owner, else the file that is there, never
    through a symbolic link, never blocking (a FIFO), and only a regular file (for root's
    writes, one with a single link: not a hard link to a file of root's elsewhere). Returns
    (fd, whether it was created). Anything else there is refused: RecorderError naming it."""
    for _ in range(3):
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                hand_over(fd, path.parent)
            except BaseException:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
            return fd, True
        try:
            return open_existing(path, flags, what), False
        except FileNotFoundError:
            continue  # removed in between: create it
    raise RecorderError(f"{what} {path}: keeps changing while it is opened")


def open_existing(path: Path, flags: int, what: str) -> int:
    """The regular file `path` opened with `flags`, as `open_file` does, never created."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno not in (errno.ELOOP, errno.ENXIO):
            raise
        fd = -1
    st = os.fstat(fd) if fd >= 0 else None
    if st is None or not stat.S_ISREG(st.st_mode):
        if fd >= 0:
            os.close(fd)
        raise RecorderError(f"{what} {path}: not a regular file (a link, FIFO or device); refused")
    writes = flags & (os.O_WRONLY | os.O_RDWR)
    if writes and st.st_nlink != 1 and os.geteuid() == 0:
        os.close(fd)
        raise RecorderError(
            f"{what} {path}: has {st.st_nlink} hard links; refused (root writes only to a "
            "file with one)"
        )
    os.set_blocking(fd, True)
    return fd


def read_file(path: Path, what: str) -> bytes:
    """The bytes of the regular file `path`, opened as `open_existing` does: a link, a FIFO or
    a device there is refused (RecorderError naming it); FileNotFoundError when there is none."""
    with os.fdopen(open_existing(path, os.O_RDONLY, what), "rb") as f:
        return f.read()


def private_dir(path: Path, what: str) -> Path:
    """Create `path` mode 0700 if missing (missing parents as the umask says), then check it.
    Each directory is made in the one above it, open, and opened by name, never through a
    symbolic link; one root made in another user's directory is handed to that user."""
    if os.geteuid() == 0:
        refuse_others_links(path, what)
    try:
        _make_dirs(path)
    except (OSError, ValueError) as e:
        raise RecorderError(
            f"{what} {path}: cannot create it ({getattr(e, 'strerror', None) or e})"
        ) from None
    except RecorderError as e:
        raise RecorderError(f"{what} {path}: {e}") from None
    check_private_dir(path, what)
    return path


def _make_dirs(path: Path) -> None:
    missing: list[str] = []
    top = path
    while not os.path.lexists(top) and top.parent != top:
        missing.append(top.name)
        top = top.parent
    if not missing:
        return
    # The deepest existing directory, as configured (links and all); below it, no link.
    dfd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, name in enumerate(reversed(missing)):
            fd = _make_dir_at(dfd, top, name, last=i == len(missing) - 1)
            os.close(dfd)
            dfd, top = fd, top / name
    finally:
        os.close(dfd)


def _make_dir_at(dfd: int, parent: Path, name: str, last: bool) -> int:
    """`name` made in the directory open as `dfd` (0700 when `last`), and opened: a directory
    already there is opened as it is; one made is checked to be the empty directory made,
    then handed over."""
    try:
        os.mkdir(name, 0o700 if last else 0o777, dir_fd=dfd)
        made = True
    except FileExistsError:
        made = False
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
    try:
        if made:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_nlink > 2 or os.listdir(fd):
                raise RecorderError(f"{parent / name} was replaced while it was made")
            if last:
                os.fchmod(fd, 0o700)  # mkdir's mode is masked by the umask
            hand_over(fd, parent, dfd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(directory: Path) -> None:
    """Make the renames and removals in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` in this process's private directory, whole or not at all: a
    new file beside it (mode 0600, made by this call, through no link), then renamed over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
