"""Property-based checks of every parser of outside input, shared by tests/test_fuzz.py (a
small budget in `make test`) and scripts/fuzz.py (a time budget).

Each property is a hypothesis strategy of hostile inputs and a check that the input either
works or gives the one-line RecorderError (exit 2 at the CLI), never another exception, never
a change outside the recordings directory. `Property.cases` counts the cases run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import shutil
import socket
import struct
import tempfile
import typing
import warnings
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from recorder import cli, config, control, models, threads
from recorder.audio import read_wav
from recorder.errors import RecorderError


@dataclass
class Property:
    name: str
    strategy: st.SearchStrategy
    check: Callable[[Any, Any], None]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    cases: int = 0

    def run(self, case: Any, ctx: Any) -> None:
        self.cases += 1
        self.check(case, ctx)


def one_line_error(e: RecorderError) -> None:
    text = str(e)
    assert text and "\n" not in text and "Traceback" not in text, text


def run_cli(*args: str) -> tuple[int, str, str]:
    """`recorder ARGS` in this process: (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(args))
    return status, out.getvalue(), err.getvalue()


def cli_ok_or_one_line_error(*args: str) -> tuple[int, str]:
    status, out, err = run_cli(*args)
    assert status in (0, 2), (status, err)
    if status == 2:
        assert err.startswith("recorder: error: ") and err.count("\n") == 1, err
    return status, out


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (links not followed) and its content."""
    out = {}
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            p = Path(root) / name
            rel = str(p.relative_to(directory))
            if p.is_symlink():
                out[rel] = b"-> " + os.readlink(p).encode()
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = b"<dir>"
    return out


# --- WAV files --------------------------------------------------------------------------------


def _chunk(cid: bytes, body: bytes, size: int | None) -> bytes:
    size = len(body) if size is None else size
    return cid + struct.pack("<I", size & 0xFFFFFFFF) + body + (b"\0" if len(body) & 1 else b"")


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    """RIFF/WAVE files with odd formats, wrong sizes, huge or zero-length chunks, truncated."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    tag = draw(st.sampled_from([1, 3, 0xFFFE, 0, 2, 0x55, 0xFFFF]))
    channels = draw(st.sampled_from([1, 2, 0, 3, 8, 64, 65, 65535]))
    rate = draw(
        st.sampled_from(
            [16000, 8000, 44100, 48000, 22050, 1000, 999, 0, 768000, 768001, 4294967295]
        )
        | st.integers(0, 2**32 - 1)
    )
    bits = draw(st.sampled_from([16, 8, 24, 32, 64, 0, 12, 7, 65535]))
    fmt = struct.pack("<HHIIHH", tag, channels, rate & 0xFFFFFFFF, 0, 0, bits)
    if tag == 0xFFFE:
        fmt += struct.pack("<HHIH", 22, bits, 0, draw(st.sampled_from([1, 3, 2])))
        fmt += b"\0" * 14
    fmt = (
        fmt[: draw(st.integers(0, len(fmt)))]
        if draw(st.booleans()) and draw(st.booleans())
        else fmt
    )
    size_lie = st.one_of(
        st.none(), st.sampled_from([0, 1, 15, 0xFFFFFFFF, 0x7FFFFFFF]), st.integers(0, 2**32 - 1)
    )
    n_data = draw(st.integers(0, 3000))
    data = (
        draw(st.binary(min_size=n_data, max_size=n_data))
        if n_data < 64
        else np.random.default_rng(n_data).integers(0, 256, n_data, dtype=np.uint8).tobytes()
    )
    chunks = [
        _chunk(b"fmt ", fmt, draw(size_lie) if draw(st.integers(0, 4)) == 0 else None),
        _chunk(b"data", data, draw(size_lie) if draw(st.booleans()) else None),
    ]
    for _ in range(draw(st.integers(0, 2))):
        junk = _chunk(
            draw(st.sampled_from([b"LIST", b"junk", b"fact", b"fmt ", b"data"])),
            draw(st.binary(max_size=20)),
            draw(size_lie),
        )
        chunks.insert(draw(st.integers(0, len(chunks))), junk)
    body = b"WAVE" + b"".join(chunks)
    riff = b"RIFF" + struct.pack("<I", draw(st.sampled_from([len(body), 0, 0xFFFFFFFF]))) + body
    return riff[: draw(st.integers(0, len(riff)))] if draw(st.integers(0, 4)) == 0 else riff


def check_wav(data: bytes, tmp: Path) -> None:
    path = tmp / "x.wav"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. NaN cast to int16: garbage out is a failure
            samples = read_wav(path)
    except RecorderError as e:
        one_line_error(e)
        assert str(e).startswith(str(path))
        return
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert len(samples) <= len(data) * 16 + 16  # at least 1000 Hz and 1 byte per sample
    try:  # where the standard library reads it as 16 kHz mono s16 too, the samples agree
        with wave.open(str(path)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2):
                expected = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                assert np.array_equal(samples[: len(expected)], expected)
    except (wave.Error, EOFError, struct.error, ValueError):
        pass


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="recorder-fuzz-") as d:
        yield Path(d)


# --- TOML: the config file and the model manifest ----------------------------------------------


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, str):
        return json.dumps(v)  # JSON's escapes are TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        else:
            lines.insert(0, f"{json.dumps(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, 3, 100, -1, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, 0.0, 1.0, 2.0, 1e9]),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "~",
            "~nobody/x",
            "a\0b",
            "../..",
            "30d",
            "1e400d",
            "infd",
            "-1s",
            "#ff0000",
            "blink",
            "on",
            "hey_jarvis",
            "debug",
            "file:/dev/null",
            "mic:99",
        ]
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

_SECTIONS = {
    name: [f.name for f in dataclasses.fields(cls)]
    for name, cls in typing.get_type_hints(config.Config).items()
    if name != "base_dir"
}


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """Config files: random TOML, wrong types, out-of-range and unknown keys, deep nesting."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:
        depth = draw(st.integers(1, 5000))
        return f"[wake]\nmodels = {'[' * depth}{']' * depth}\n"
    doc: dict[str, Any] = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*_SECTIONS, "nope"]) | st.text(max_size=6))
        keys = _SECTIONS.get(section, []) + ["bogus", "base_dir"]
        doc[section] = (
            draw(st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), _values, max_size=5))
            if draw(st.integers(0, 9))
            else draw(_values)
        )
    return toml_document(doc)


def check_config(text: str, tmp: Path) -> None:
    path = tmp / "c.toml"
    path.write_text(text, errors="surrogateescape")
    try:
        cfg = config.load(path)
    except RecorderError as e:
        one_line_error(e)
        assert str(e).startswith(str(path)), e
    else:
        assert isinstance(cfg, config.Config)
    rec = tmp / "rec"
    before = snapshot(tmp)
    cli_ok_or_one_line_error("list", "--config", str(path), "--recordings", str(rec))
    assert snapshot(tmp) == before


@st.composite
def manifest_texts(draw: st.DrawFn) -> str:
    good_hash = "a" * 64
    entry_values = st.one_of(
        st.sampled_from(
            ["x.onnx", "../x.onnx", "/etc/passwd", "a/b.onnx", "..", ".", "", good_hash, "x\0.onnx"]
        ),
        _scalars,
        st.lists(_scalars, max_size=2),
    )

    def entry() -> Any:
        if draw(st.integers(0, 9)) == 0:
            return draw(_scalars)
        return {
            k: draw(entry_values)
            if draw(st.integers(0, 3)) == 0
            else (good_hash if k == "sha256" else f"{k}.onnx" if k == "file" else "MIT")
            for k in draw(st.sets(st.sampled_from(["file", "sha256", "licence", "x"])))
        }

    doc: dict[str, Any] = {}
    if draw(st.integers(0, 5)):
        doc["source"] = {
            k: draw(entry_values)
            if draw(st.integers(0, 3)) == 0
            else (good_hash if k == "wheel_sha256" else "w.whl")
            for k in draw(
                st.sets(st.sampled_from(["distribution", "wheel", "wheel_sha256", "path_in_wheel"]))
            )
        }
    for section in ("features", "wakewords"):
        if draw(st.integers(0, 5)):
            names = draw(
                st.sets(
                    st.sampled_from(["melspectrogram", "embedding", "alexa"]) | st.text(max_size=5),
                    max_size=4,
                )
            )
            doc[section] = {n: entry() for n in names}
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=100))
    return toml_document(doc)


def check_manifest(text: str, tmp: Path) -> None:
    d = tmp / "models"
    d.mkdir(exist_ok=True)
    try:
        m = models.parse_manifest(text, d, d / "manifest.toml")
    except RecorderError as e:
        one_line_error(e)
        return
    for entry in m.all_files():
        assert m.path(entry).resolve().parent == d.resolve()
        assert models.file_status(m, entry) == "missing"


# --- the recordings directory: sidecars and listing ---------------------------------------------

_sidecar_values = st.one_of(
    st.binary(max_size=40),
    st.just(b""),
    st.just(b"\xff\xfe{"),
    _values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {},
        optional={
            "id": _scalars,
            "audio_file": st.sampled_from(["../outside/victim.wav", "/etc/passwd", "x.wav"])
            | _scalars,
            "started_at": st.sampled_from(
                [
                    "2020-01-01T00:00:00",
                    "2020-01-01T00:00:00Z",
                    "9999-12-31T23:59:59+14:00",
                    "0001-01-01",
                    "nope",
                ]
            )
            | _scalars,
            "duration_s": _scalars,
            "wake_word": _scalars,
            "end_reason": _scalars,
        },
    ).map(lambda v: json.dumps(v).encode()),
)

_entry_kinds = st.sampled_from(["file", "file", "missing", "link-out", "dir", "fifo", "dangling"])


@st.composite
def recording_dirs(draw: st.DrawFn) -> list[tuple[str, str, bytes, str]]:
    """(stem, kind of the sidecar, its bytes, kind of the WAV) per entry."""
    stems = draw(
        st.lists(
            st.sampled_from(["a", "b", "20250101T000000.000Z", "c_1", ".h"]),
            max_size=4,
            unique=True,
        )
    )
    return [(s, draw(_entry_kinds), draw(_sidecar_values), draw(_entry_kinds)) for s in stems]


_COMMANDS = [
    ["list"],
    ["list", "--json"],
    ["delete", "--all"],
    ["delete", "--older-than", "1d"],
    ["delete", "a", "b"],
    ["prune"],
]


def _make(path: Path, kind: str, content: bytes, outside: Path) -> None:
    if kind == "file":
        path.write_bytes(content)
    elif kind == "link-out":
        path.symlink_to(outside / "victim.wav")
    elif kind == "dangling":
        path.symlink_to(outside / "nothing-here")
    elif kind == "dir":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)


def check_recordings(case: tuple[list, int], tmp: Path) -> None:
    entries, command = case
    outside, rec = tmp / "outside", tmp / "rec"
    for d in (outside, rec):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(mode=0o700)
    (outside / "victim.wav").write_bytes(b"RIFF precious")
    (outside / "victim.json").write_text('{"id": "victim", "audio_file": "victim.wav"}')
    for stem, sidecar_kind, content, wav_kind in entries:
        _make(rec / f"{stem}.json", sidecar_kind, content, outside)
        _make(rec / f"{stem}.wav", wav_kind, b"RIFF", outside)
    outside_before, rec_before = snapshot(outside), snapshot(rec)
    cfg = tmp / "c.toml"
    cfg.write_text('[storage]\nmax_count = 1\nmax_age = "1d"\n')
    status, out = cli_ok_or_one_line_error(
        *_COMMANDS[command], "--config", str(cfg), "--recordings", str(rec)
    )
    assert snapshot(outside) == outside_before
    removed = set(rec_before) - set(snapshot(rec))
    for name in removed:  # only regular .wav / .json files in the directory itself
        assert "/" not in name and name.endswith((".wav", ".json")), name
        assert not rec_before[name].startswith((b"-> ", b"<dir>")), name
    if _COMMANDS[command] == ["list", "--json"] and status == 0:
        assert isinstance(json.loads(out), list)


# --- the control protocol -----------------------------------------------------------------------

_control_chunks = st.lists(
    st.one_of(
        st.binary(max_size=50),
        st.sampled_from(
            [b"status", b"mute", b"unmute", b"\n", b"\r\n", b"\xff", b"\xc3", b"\0", b" status \n"]
        ),
        st.integers(4000, 9000).map(lambda n: b"x" * n),
    ),
    max_size=6,
)


class _Handler:
    """The daemon's side of the protocol, reduced to its answers (the edge being faked)."""

    def __init__(self) -> None:
        self.muted = False

    def __call__(self, command: str, _peer: control.Peer) -> dict[str, Any]:
        if command in ("mute", "unmute"):
            self.muted = command == "mute"
            return {"ok": True, "muted": self.muted}
        if command == "status":
            return {"ok": True, "muted": self.muted}
        return {"ok": False, "error": f"unknown command {command!r}"}


@contextlib.contextmanager
def control_server() -> Iterator[tuple[Path, control.ControlServer]]:
    threads.WATCH.clear()
    with temp_dir() as tmp:
        server = control.ControlServer(tmp / "run", _Handler())
        try:
            yield tmp / "run", server
        finally:
            server.close()
            threads.WATCH.clear()


def check_control(chunks: list[bytes], ctx: tuple[Path, control.ControlServer]) -> None:
    run_dir, server = ctx
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(run_dir / control.SOCKET_NAME))
        sent = b""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for c in chunks:
                s.sendall(c)
                sent += c
            s.shutdown(socket.SHUT_WR)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(4096):
                data += chunk
    line = sent.partition(b"\n")[0]
    if not line and b"\n" not in sent:
        assert data == b""  # nothing asked, nothing answered
    else:
        assert data.endswith(b"\n") and data.count(b"\n") == 1, data
        reply = json.loads(data)
        assert isinstance(reply, dict) and isinstance(reply["ok"], bool)
        if len(line) > control.MAX_COMMAND_BYTES:
            assert reply == {"ok": False, "error": "command too long"}
        elif line.strip() in (b"status", b"mute", b"unmute"):
            assert reply["ok"] is True
    assert server.thread.is_alive() and threads.WATCH.failure() is None
    assert control.request(run_dir, "status", timeout_s=5)["ok"] is True


PROPERTIES = {
    p.name: p
    for p in [
        Property("wav", wav_files(), check_wav, temp_dir),
        Property("config", config_texts(), check_config, temp_dir),
        Property("manifest", manifest_texts(), check_manifest, temp_dir),
        Property(
            "recordings",
            st.tuples(recording_dirs(), st.integers(0, len(_COMMANDS) - 1)),
            check_recordings,
            temp_dir,
        ),
        Property("control", _control_chunks, check_control, control_server),
    ]
}
