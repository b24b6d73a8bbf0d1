"""Sealing to age X25519 recipients (the `crypto` extra, pyrage): recipients, keys, unsealing.

The device holds only public recipients, so it can seal but never read back what it sealed.
The output is the standard age format: `age -d -i key.txt` decrypts it on any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from recorder.errors import RecorderError

SEALED_SUFFIX = ".age"
AGE_MAGIC = b"age-encryption.org/v1\n"


def require_pyrage(what: str) -> ModuleType:
    """pyrage, or a one-line error naming what needs it."""
    try:
        import pyrage
    except ImportError:
        raise RecorderError(
            f"{what} needs the pyrage package: pip install 'wakeword-recorder[crypto]'"
        ) from None
    return pyrage


def _recipient_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


class Sealer:
    """Encrypts bytes in memory to a fixed set of age X25519 recipients."""

    def __init__(self, recipients: Sequence[str], what: str = "[storage] encrypt_to"):
        pyrage = require_pyrage(what)
        if not recipients:
            raise RecorderError(f"{what}: no recipient given")
        parsed: list[Any] = []
        for r in recipients:
            try:
                parsed.append(pyrage.x25519.Recipient.from_str(r))
            except Exception:
                shown = r if len(r) <= 80 else r[:77] + "..."
                raise RecorderError(
                    f"{what}: {shown!r} is not an age X25519 recipient (age1...)"
                ) from None
        self._pyrage = pyrage
        self._recipients = parsed
        self.recipients = tuple(recipients)

    @classmethod
    def from_spec(cls, spec: str | Sequence[str], base_dir: Path) -> Sealer:
        """`encrypt_to`: recipients (`age1...`) and/or paths to recipients files (one per
        line, `#` comments), relative paths resolved against `base_dir`."""
        what = "[storage] encrypt_to"
        items = [spec] if isinstance(spec, str) else list(spec)
        recipients: list[str] = []
        for item in items:
            item = item.strip()
            if item.startswith("age1"):
                recipients.append(item)
                continue
            path = (base_dir / Path(item).expanduser()).resolve()
            try:
                lines = _recipient_lines(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                reason = getattr(e, "strerror", None) or "not UTF-8 text"
                raise RecorderError(f"{what}: recipients file {path}: {reason}") from None
            if not lines:
                raise RecorderError(f"{what}: recipients file {path} names no recipient")
            recipients += lines
        return cls(recipients, what)

    def seal(self, data: bytes) -> bytes:
        return bytes(self._pyrage.encrypt(data, self._recipients))


def keygen() -> tuple[str, str]:
    """A new identity (`AGE-SECRET-KEY-1...`) and its recipient (`age1...`)."""
    pyrage = require_pyrage("recorder keygen")
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


class Unsealer:
    """Decrypts with the identities of an age identity file (`age-keygen` or `recorder keygen`)."""

    def __init__(self, identity_file: Path):
        pyrage = require_pyrage("--identity")
        try:
            text = identity_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or "not UTF-8 text"
            raise RecorderError(f"--identity {identity_file}: {reason}") from None
        identities = []
        for line in _recipient_lines(text):
            try:
                identities.append(pyrage.x25519.Identity.from_str(line))
            except Exception:
                raise RecorderError(
                    f"--identity {identity_file}: a line is not an age identity "
                    "(AGE-SECRET-KEY-1...)"
                ) from None
        if not identities:
            raise RecorderError(f"--identity {identity_file}: no identity in the file")
        self._pyrage = pyrage
        self._identities = identities
        self.path = identity_file

    def open(self, data: bytes, name: str) -> bytes:
        try:
            return bytes(self._pyrage.decrypt(data, self._identities))
        except Exception:
            raise RecorderError(
                f"{name}: cannot be decrypted with {self.path} (another key, or damaged)"
            ) from None

    def read(self, path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise RecorderError(f"{path}: {e.strerror}") from None
        return self.open(data, str(path))


def is_sealed(path: Path) -> bool:
    return path.name.endswith(SEALED_SUFFIX)


def sealer_for(spec: str | Sequence[str], base_dir: Path) -> Sealer | None:
    """The sealer `[storage] encrypt_to` asks for, or None when it is empty."""
    if not spec or (not isinstance(spec, str) and not any(s.strip() for s in spec)):
        return None
    return Sealer.from_spec(spec, base_dir)
