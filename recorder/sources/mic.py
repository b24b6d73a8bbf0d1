"""The microphone: the only module that imports sounddevice (and so needs PortAudio).

The PortAudio callback runs on a real-time thread, so it only copies the block into a bounded
queue; everything else happens on the processing thread. A stream that errors, stalls (no audio
for STALL_S) or loses its device is closed and reopened with backoff, re-scanning the devices
each time (PortAudio's device list is frozen until it is re-initialised).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from recorder import threads
from recorder.audio import FRAME_SAMPLES, SAMPLE_RATE, Frame
from recorder.errors import RecorderError
from recorder.sources.base import DeviceLost, DeviceRestored, SourceItem, StopFlag

log = logging.getLogger("recorder.mic")

LOSS_REPORT_S = 10.0  # at most one warning this often while audio is being lost
QUEUE_FRAMES = 125  # 10 s of audio: rides out a slow indicator command or disk
STALL_S = 2.0
BACKOFF_S = (0.5, 5.0)  # first retry delay, doubling up to the maximum
TICK_S = 0.1
CLOSE_WAIT_S = 0.25  # longer, and closing the stream goes on in the background
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
        self._closer: threading.Thread | None = None  # a close blocked in the background
        if not wait_for_device:
            self._open()

    def _open(self) -> None:
        device = resolve_device(self.spec)
        name = self.sd.query_devices(device)["name"]
        self._drain()  # a stuck stream's last callback may have queued a block while closing
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

    def _close(self, report: bool = False) -> None:
        """Abort and close the stream without blocking the processing thread for long.

        PortAudio's ALSA abort cancels the callback thread and joins it, but that thread does
        not act on the cancellation while it is blocked reading from the device, so on a
        stalled device abort() waits until audio flows again, possibly forever. The close runs
        on its own thread; if it has not finished within CLOSE_WAIT_S it is left to finish in
        the background, and PortAudio is not touched (no re-initialisation, no reopening) until
        it has: PortAudio is not thread-safe, and Pa_Terminate would itself block trying to
        close that stream.
        """
        stream, self.stream = self.stream, None
        if stream is not None:
            closer = threads.start("mic-close", self._abort_and_close, stream)
            closer.join(CLOSE_WAIT_S)
            if closer.is_alive():
                self._closer = closer
                log.log(logging.WARNING if report else logging.DEBUG,
                        "audio source %s: the stalled stream has not closed yet (its device read "
                        "is blocked); reopening once it has", self.description)
        self._drain()

    def _abort_and_close(self, stream: Any) -> None:
        try:
            stream.abort()
            stream.close()
        except self.sd.PortAudioError as e:
            log.debug("closing the stream: %s", e)

    def _closing(self) -> bool:
        """A stream's close is still blocked in the background (see _close)."""
        if self._closer is not None and not self._closer.is_alive():
            self._closer = None
        return self._closer is not None

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def _rescan(self) -> None:
        """Re-initialise PortAudio so that devices plugged in since are seen.

        Pa_Terminate also frees alsa-lib's cached configuration, so a changed ~/.asoundrc or
        /etc/asound.conf is read afresh by the next initialisation.
        """
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
        """Frames, numbered on across reopens; DeviceLost / DeviceRestored around a loss.

        A loss is reported (yielded and logged) once; while it lasts, the device is reopened
        with backoff and a retry that fails the same way is not logged again. A reopened stream
        counts as restored when its first audio arrives, not when it opens: a device that opens
        but stays silent is still lost.
        """
        index = 0
        pending = np.zeros(0, dtype=np.int16)
        reported, reported_at = (0, 0), 0.0
        backoff = BACKOFF_S[0]
        lost_reason: str | None = None  # set while the device is lost
        retry_at = 0.0
        last_audio = time.monotonic()
        while not should_stop():
            if self.stream is None:
                now = time.monotonic()
                if now < retry_at or self._closing():
                    time.sleep(min(TICK_S, retry_at - now) if now < retry_at else TICK_S)
                    yield None
                    continue
                try:
                    self._rescan()
                    self._open()
                except RecorderError as e:
                    if lost_reason is None:
                        yield DeviceLost(str(e))
                    if str(e) != lost_reason:
                        log.warning("%s; retrying", e)
                        lost_reason = str(e)
                    retry_at = time.monotonic() + backoff
                    backoff = min(backoff * 2, BACKOFF_S[1])
                    continue
                log.log(logging.DEBUG if lost_reason else logging.INFO,
                        "audio source %s open", self.description)
                last_audio = time.monotonic()
                pending = pending[:0]
            try:
                block = self.queue.get(timeout=TICK_S)
            except queue.Empty:
                if time.monotonic() - last_audio >= STALL_S or not self.stream.active:
                    reason = (f"no audio for {STALL_S:g} s" if self.stream.active
                              else "stream stopped")
                    if lost_reason is None:
                        log.error("audio source %s failed: %s", self.description, reason)
                        yield DeviceLost(reason)  # shown before the close, which may take a while
                        self._close(report=True)
                        backoff, retry_at = BACKOFF_S[0], 0.0  # reopen straight away
                    else:  # reopened, but no audio came: still lost, back off
                        if reason != lost_reason:
                            log.warning("audio source %s: %s; retrying", self.description,
                                        reason)
                        self._close()
                        retry_at = time.monotonic() + backoff
                        backoff = min(backoff * 2, BACKOFF_S[1])
                    lost_reason = reason
                else:
                    yield None
                continue
            last_audio = time.monotonic()
            if lost_reason is not None:
                log.info("audio source %s restored", self.description)
                lost_reason, backoff = None, BACKOFF_S[0]
                yield DeviceRestored(self.description)
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

    def close(self) -> None:
        self._close()
        if self._closing():
            # sounddevice's exit handler calls Pa_Terminate, which would try to close the
            # stuck stream again and hang the exit; the process exiting releases it anyway.
            atexit.unregister(self.sd._exit_handler)
