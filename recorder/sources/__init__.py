"""Where frames come from: one interface (`base.Source`) and a module per kind of source.

`file` (a WAV file), `stdin` (raw s16le) and `mic` (the microphone; the only module that imports
sounddevice, loaded only when a microphone is asked for); `sample` is the recording that comes
with the package, read as a file.
"""

from __future__ import annotations

from pathlib import Path

from recorder.config import AudioConfig
from recorder.errors import RecorderError
from recorder.sources.base import (
    DeviceLost,
    DeviceRestored,
    Source,
    SourceItem,
    StopFlag,
    chunk,
)
from recorder.sources.file import FileSource
from recorder.sources.loopback import Pair
from recorder.sources.stdin import StdinSource

__all__ = [
    "DeviceLost",
    "DeviceRestored",
    "FileSource",
    "Source",
    "SourceItem",
    "StdinSource",
    "StopFlag",
    "chunk",
    "open_source",
    "sample_path",
]

SAMPLE = "speech_then_wake.wav"
"""Package data: talk without the wake word, then "Hey Jarvis" and a short request (9 s)."""


def sample_path() -> Path:
    """The bundled recording's path (an installed package is a directory, never a zip)."""
    from importlib import resources  # here: only the sample source needs it

    return Path(str(resources.files("recorder").joinpath("data", SAMPLE)))


def open_source(
    spec: str,
    realtime: bool = False,
    wait_for_device: bool = False,
    audio: AudioConfig | None = None,
) -> Source:
    """`mic`, `mic:NAME_OR_INDEX`, `file:PATH`, `stdin` or `sample`; `audio` has the microphone's
    format."""
    kind, _, arg = spec.partition(":")
    pair = _pair(audio)
    if kind == "file":
        if not arg:
            raise RecorderError("source file: needs a path, e.g. --source file:clip.wav")
        return FileSource(Path(arg), realtime, pair)
    if kind == "stdin" and not arg:
        if pair is None:
            return StdinSource()
        if audio is None or audio.device_channels is None:
            raise RecorderError(
                "[audio] reference_channel with --source stdin: set [audio] device_channels "
                "to the number of channels interleaved on standard input"
            )
        return StdinSource(None, audio.device_channels, pair)
    if kind == "sample" and not arg:
        return FileSource(sample_path(), realtime, pair)
    if kind == "mic":
        from recorder.sources.mic import MicFormat, MicSource

        fmt = (
            MicFormat(audio.device_rate, audio.device_channels, audio.channel, pair)
            if audio
            else None
        )
        return MicSource(arg or None, wait_for_device, fmt)
    raise RecorderError(
        f"unknown source {spec!r}: use mic, mic:NAME_OR_INDEX, file:PATH, stdin or sample"
    )


def _pair(audio: AudioConfig | None) -> Pair | None:
    """The microphone's channel and the playback reference's, when a reference is configured."""
    if audio is None or audio.reference_channel is None or not isinstance(audio.channel, int):
        return None
    return Pair(audio.channel, audio.reference_channel)
