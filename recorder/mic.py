"""The microphone: the only module that imports sounddevice (and so needs PortAudio).

The PortAudio callback runs on a real-time thread, so it only copies the block into a bounded
queue; everything else happens on the processing thread. A stream that errors, stalls (no audio
for STALL_S) or loses its device is closed and reopened with backoff, re-scanning the devices
each time (PortAudio's device list is frozen until it is re-initialised).
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
from recorder.sources import DeviceLost, DeviceRestored, SourceItem, StopFlag

log = logging.getLogger("recorder.mic")

LOSS_REPORT_S = 10.0  # at most one warning this often while audio is being lost
QUEUE_FRAMES = 125  # 10 s of audio: rides out a slow indicator command or disk
STALL_S = 2.0
BACKOFF_S = (0.5, 5.0)  # first retry delay, doubling up to the maximum
TICK_S = 0.1
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
    def __init__(self, device: str | None, wait_for_device: bool = False):
        self.sd = _sounddevice()
        self.spec = device
        self.description = f"mic:{device}" if device else "mic"
        self.live = True
        self.queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.dropped_blocks = 0
        self.overflows = 0
        self.stream: Any = None
        if not wait_for_device:
            self._open()

    def _open(self) -> None:
        device = resolve_device(self.spec)
        name = self.sd.query_devices(device)["name"]
        try:
            stream = self.sd.InputStream(
                device=device, samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                blocksize=FRAME_SAMPLES, callback=self._callback)
            stream.start()
        except self.sd.PortAudioError as e:
            raise RecorderError(
                f"input device {name!r}: cannot open at 16 kHz mono ({e})") from None
        self.stream = stream
        self.description = f"mic:{name}"

    def _close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except self.sd.PortAudioError:
                pass
        while not self.queue.empty():
            self.queue.get_nowait()

    def _rescan(self) -> None:
        """Re-initialise PortAudio so that devices plugged in since are seen."""
        self._close()
        try:
            self.sd._terminate()
            self.sd._initialize()
        except self.sd.PortAudioError as e:
            log.debug("PortAudio re-initialisation failed: %s", e)

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self.overflows += 1
        try:
            self.queue.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.dropped_blocks += 1

    def frames(self, should_stop: StopFlag) -> Iterator[SourceItem]:
        index = 0
        pending = np.zeros(0, dtype=np.int16)
        reported, reported_at = (0, 0), 0.0
        backoff = BACKOFF_S[0]
        lost_reason: str | None = None  # set while the device is lost
        last_audio = time.monotonic()
        while not should_stop():
            if self.stream is None:
                try:
                    self._rescan()
                    self._open()
                except RecorderError as e:
                    if lost_reason is None:
                        yield DeviceLost(str(e))
                    if str(e) != lost_reason:
                        log.warning("%s; retrying", e)
                        lost_reason = str(e)
                    yield from self._wait(backoff, should_stop)
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                log.info("audio source %s open", self.description)
                if lost_reason is not None:
                    yield DeviceRestored(self.description)
                lost_reason, backoff = None, BACKOFF_S[0]
                last_audio = time.monotonic()
                pending = pending[:0]
            try:
                block = self.queue.get(timeout=TICK_S)
            except queue.Empty:
                silent_s = time.monotonic() - last_audio
                if silent_s >= STALL_S or not self.stream.active:
                    reason = (f"no audio for {silent_s:.1f} s" if self.stream.active
                              else "stream stopped")
                    log.error("audio source %s failed: %s", self.description, reason)
                    lost_reason = reason
                    self._close()
                    yield DeviceLost(reason)
                else:
                    yield None
                continue
            last_audio = time.monotonic()
            lost = (self.overflows, self.dropped_blocks)
            if lost != reported and last_audio - reported_at >= LOSS_REPORT_S:
                reported, reported_at = lost, last_audio
                log.warning("audio lost so far: %d input overflows, %d blocks dropped "
                            "(processing too slow)", *lost)
            pending = np.concatenate([pending, block]) if len(pending) else block
            while len(pending) >= FRAME_SAMPLES:
                yield Frame(index, pending[:FRAME_SAMPLES])
                pending = pending[FRAME_SAMPLES:]
                index += 1

    @staticmethod
    def _wait(seconds: float, should_stop: StopFlag) -> Iterator[SourceItem]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(TICK_S, max(0.0, deadline - time.monotonic())))
            yield None

    def close(self) -> None:
        self._close()
