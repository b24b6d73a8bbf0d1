"""The microphone: the only module that imports sounddevice (and so needs PortAudio).

The PortAudio callback runs on a real-time thread, so it only copies the block into a bounded
queue; everything else happens on the processing thread.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from recorder.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from recorder.errors import RecorderError
from recorder.sources import StopFlag

log = logging.getLogger("recorder.mic")

LOSS_REPORT_S = 10.0  # at most one warning this often while audio is being lost
QUEUE_FRAMES = 125  # 10 s of audio: rides out a slow indicator command or disk
NO_INPUT = ("no audio input device found; `recorder devices` lists devices, "
            "or use --source file:PATH")


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:
        raise RecorderError(
            "the PortAudio library is missing: install it with `sudo apt-get install "
            "libportaudio2`, or use --source file:PATH"
        ) from None
    return sounddevice


def input_devices() -> list[dict[str, Any]]:
    sd = _sounddevice()
    default_in = sd.default.device[0]
    return [
        {"index": i, "name": d["name"], "channels": d["max_input_channels"],
         "default_samplerate": d["default_samplerate"], "default": i == default_in}
        for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0
    ]


def resolve_device(name_or_index: str | None) -> int:
    sd = _sounddevice()
    devices = input_devices()
    if not devices:
        raise RecorderError(NO_INPUT)
    if name_or_index is None:
        default = sd.default.device[0]
        if default is None or default < 0:
            return devices[0]["index"]
        return int(default)
    key: int | str = int(name_or_index) if name_or_index.isdigit() else name_or_index
    try:
        return int(sd.query_devices(key, "input")["index"])
    except (ValueError, sd.PortAudioError):
        raise RecorderError(
            f"input device {name_or_index!r} not found; `recorder devices` lists them") from None


class MicSource:
    def __init__(self, device: str | None):
        self.sd = _sounddevice()
        self.device = resolve_device(device)
        self.name = self.sd.query_devices(self.device)["name"]
        self.description = f"mic:{self.name}"
        self.queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.dropped_blocks = 0
        self.overflows = 0
        try:
            self.stream = self.sd.InputStream(
                device=self.device, samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                blocksize=FRAME_SAMPLES, callback=self._callback)
            self.stream.start()
        except self.sd.PortAudioError as e:
            raise RecorderError(f"input device {self.name!r}: cannot open at 16 kHz mono "
                                f"({e})") from None

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        try:
            self.queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.dropped_blocks += 1

    def frames(self, should_stop: StopFlag) -> Iterator[Frame]:
        index = 0
        pending = np.zeros(0, dtype=np.int16)
        reported, reported_at = (0, 0), 0.0
        while not should_stop():
            try:
                block = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            lost = (self.overflows, self.dropped_blocks)
            if lost != reported and time.monotonic() - reported_at >= LOSS_REPORT_S:
                reported, reported_at = lost, time.monotonic()
                log.warning("audio lost so far: %d input overflows, %d blocks dropped "
                            "(processing too slow)", *lost)
            pending = np.concatenate([pending, block]) if len(pending) else block
            while len(pending) >= FRAME_SAMPLES:
                yield Frame(index, pending[:FRAME_SAMPLES])
                pending = pending[FRAME_SAMPLES:]
                index += 1

    def close(self) -> None:
        try:
            self.stream.stop()
            self.stream.close()
        except self.sd.PortAudioError:
            pass
