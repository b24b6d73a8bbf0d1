"""The microphone: the only module that imports sounddevice (and so needs PortAudio).

The device is opened at 16 kHz mono when it accepts that, otherwise (or when configured) at a
rate and channel count it supports; one channel is kept (or all are averaged) and resampled to
16 kHz as a stream. The PortAudio callback runs on a real-time thread, so it only copies the
block into a bounded queue; everything else happens on the processing thread. A stream that
errors, stalls (no audio for `mic_health.STALL_S`) or loses its device is closed and reopened
with backoff, re-scanning the devices each time (PortAudio's device list is frozen until it is
re-initialised).

Pieces, one job each: `negotiate` (the format to open a device at) and `Reframer` (device
blocks to 80 ms frames of 16 kHz mono) in `mic_format`, `Backoff` (retry timing) and `Health`
(stall, stream stopped, restored) in `mic_health`; here, the devices (`input_devices`,
`resolve_device`) and `MicSource`, which owns the stream and strings the pieces together.
"""

from __future__ import annotations

import atexit
import collections
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from recorder import threads
from recorder.audio import FRAME_S, SAMPLE_RATE
from recorder.errors import RecorderError
from recorder.sources.base import DeviceLost, DeviceRestored, Gap, SourceItem, StopFlag
from recorder.sources.mic_format import FormatError, MicFormat, OpenFormat, Reframer, accepts
from recorder.sources.mic_format import negotiate as _negotiate
from recorder.sources.mic_health import Backoff, Health

log = logging.getLogger("recorder.mic")

LOSS_REPORT_S = 10.0  # at most one warning this often while audio is being lost
QUEUE_BLOCKS = 125  # 10 s of audio: rides out a slow indicator command or disk
MAX_GAPS = 1000
TICK_S = 0.1
CLOSE_WAIT_S = 0.25  # longer, and closing the stream goes on in the background
PROBE_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000)
NO_INPUT = (
    "no audio input device found; `recorder devices` lists devices, or use --source file:PATH"
)


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:
        raise RecorderError(
            "the PortAudio library is missing: install it with `sudo apt-get install "
            "libportaudio2`, or use --source file:PATH"
        ) from None
    return sounddevice


def input_devices(probe: bool = False) -> list[dict[str, Any]]:
    """Every input device; with `probe`, also the rates and channel counts it accepts."""
    sd = _sounddevice()
    default_in = sd.default.device[0]
    devices = []
    for i, d in enumerate(sd.query_devices()):
        if d["max_input_channels"] <= 0:
            continue
        entry = {
            "index": i,
            "name": d["name"],
            "channels": d["max_input_channels"],
            "default_samplerate": d["default_samplerate"],
            "default": i == default_in,
        }
        if probe:
            counts = sorted({1, 2, 4, 6, 8, d["max_input_channels"]})
            entry["rates"] = [
                r
                for r in PROBE_RATES
                if accepts(sd, i, r, 1) or accepts(sd, i, r, d["max_input_channels"])
            ]
            entry["channel_counts"] = [
                c
                for c in counts
                if c <= d["max_input_channels"]
                and any(accepts(sd, i, r, c) for r in entry["rates"] or [d["default_samplerate"]])
            ]
            fmt = _negotiate(sd, i, d, MicFormat()) if entry["rates"] else None
            entry["config"] = _config_line(d["name"], fmt)
        devices.append(entry)
    return devices


def _config_line(name: str, fmt: OpenFormat | None) -> str:
    line = f'source = "mic:{name}"'
    if fmt is not None and fmt.rate != SAMPLE_RATE:
        line += f"\ndevice_rate = {fmt.rate}"
    if fmt is not None and fmt.channels != 1:
        line += f"\ndevice_channels = {fmt.channels}\nchannel = 0"
    return line


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
            f"input device {name_or_index!r} not found; `recorder devices` lists them"
        ) from None


class MicSource:
    closable = True

    def __init__(
        self, device: str | None, wait_for_device: bool = False, fmt: MicFormat | None = None
    ):
        self.sd = _sounddevice()
        self.spec = device
        self.want = fmt or MicFormat()
        self.description = f"mic:{device}" if device else "mic"
        self.live = True
        self.info: dict[str, Any] = {}
        """device_rate, device_channels and channel of the open stream (for the sidecar)."""
        self.queue: queue.Queue[tuple[np.ndarray, int]] = queue.Queue(maxsize=QUEUE_BLOCKS)
        """(block, device samples lost just before it)."""
        self.dropped_blocks = 0
        self.overflows = 0
        self.gaps: collections.deque[Gap] = collections.deque(maxlen=MAX_GAPS)
        """The latest losses, in the frames' sample count, for the sidecars of requests."""
        self._lost_pending = 0  # callback thread only: device samples lost since the last put
        self._next_adc = 0.0
        self.stream: Any = None
        self.format: OpenFormat | None = None
        self._closer: threading.Thread | None = None  # a close blocked in the background
        self._want_closed = False
        self.closed = False
        """The stream was closed on request (mute) and its close has finished."""
        if not wait_for_device:
            self._open()

    def _open(self) -> None:
        device = resolve_device(self.spec)
        info = self.sd.query_devices(device)
        name = info["name"]
        fmt = _negotiate(self.sd, device, info, self.want)
        self._drain()  # a stuck stream's last callback may have queued a block while closing
        try:
            stream = self.sd.InputStream(
                device=device,
                samplerate=fmt.rate,
                channels=fmt.channels,
                dtype="int16",
                blocksize=round(fmt.rate * FRAME_S),
                callback=self._callback,
            )
            stream.start()
        except self.sd.PortAudioError as e:
            raise RecorderError(
                f"input device {name!r}: cannot open at {fmt.describe()} ({e}); "
                "`recorder devices` shows what it accepts"
            ) from None
        self.stream, self.format, self.info = stream, fmt, fmt.info
        self.description = f"mic:{name}"
        if fmt.rate != SAMPLE_RATE or fmt.channels != 1:
            log.info(
                "audio source %s: opened at %s, keeping %s, resampled to 16 kHz",
                self.description,
                fmt.describe(),
                "the average of the channels" if fmt.channel == "mix" else f"channel {fmt.channel}",
            )

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
                log.log(
                    logging.WARNING if report else logging.DEBUG,
                    "audio source %s: the stalled stream has not closed yet (its device read "
                    "is blocked); reopening once it has",
                    self.description,
                )
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

    def set_closed(self, closed: bool) -> None:
        """Ask for the stream to be closed (the device released) or reopened; the generator
        acts on it at its next step and `closed` turns True once the device is released."""
        self._want_closed = closed

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self._lost_pending, self._next_adc = 0, 0.0

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
        lost = self._lost_pending
        adc = getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0
        if status.input_overflow:
            self.overflows += 1
            if adc > 0 and self._next_adc > 0 and self.format is not None:
                # what the device captured meanwhile, measured on its own clock
                lost += max(0, round((adc - self._next_adc) * self.format.rate))
        if adc > 0 and self.format is not None:
            self._next_adc = adc + frames / self.format.rate
        try:
            self.queue.put_nowait((indata.copy(), lost))
            self._lost_pending = 0
        except queue.Full:
            self.dropped_blocks += 1
            self._lost_pending = lost + frames

    def frames(self, should_stop: StopFlag) -> Iterator[SourceItem]:
        """Frames, numbered on across reopens; DeviceLost / DeviceRestored around a loss."""
        health, backoff = Health(), Backoff()
        reframer: Reframer | None = None
        next_index = 0
        self._reported, self._reported_at = (0, 0), 0.0
        closed_at: float | None = None
        while not should_stop():
            if self._want_closed:
                if closed_at is None:
                    self._close()
                    reframer, closed_at = None, time.monotonic()
                self.closed = not self._closing()
                time.sleep(TICK_S)
                yield None
                continue
            if closed_at is not None:  # reopen; frame numbers go on as if time had passed
                next_index += round((time.monotonic() - closed_at) / FRAME_S)
                self.closed, closed_at = False, None
                backoff.reset(now_too=True)
            if self.stream is None:
                if not backoff.due() or self._closing():
                    time.sleep(min(TICK_S, backoff.remaining()) if not backoff.due() else TICK_S)
                    yield None
                    continue
                yield from self._reopen(health, backoff)
                if self.stream is None:
                    continue
                reframer = None
            if reframer is None:  # a new stream: new format, resampler state from scratch
                assert self.format is not None
                reframer = Reframer(self.format, next_index)
            try:
                block, lost = self.queue.get(timeout=TICK_S)
            except queue.Empty:
                yield from self._check_silence(health, backoff)
                continue
            if health.audio():
                log.info("audio source %s restored", self.description)
                backoff.reset()
                yield DeviceRestored(self.description)
            self._report_losses(health.last_audio)
            if lost:
                self.gaps.append(
                    Gap(reframer.position, round(lost * SAMPLE_RATE / reframer.fmt.rate))
                )
            yield from reframer.push(block)
            next_index = reframer.index

    def _reopen(self, health: Health, backoff: Backoff) -> Iterator[SourceItem]:
        try:
            self._rescan()
            self._open()
        except FormatError:
            raise
        except RecorderError as e:
            first, changed = health.fail(str(e))
            if first:
                yield DeviceLost(str(e))
            if changed:
                log.warning("%s; retrying", e)
            backoff.wait()
            return
        log.log(
            logging.DEBUG if health.lost else logging.INFO, "audio source %s open", self.description
        )
        health.opened()

    def _check_silence(self, health: Health, backoff: Backoff) -> Iterator[SourceItem]:
        reason = health.silent_reason(self.stream.active)
        if reason is None:
            yield None
            return
        first, changed = health.fail(reason)
        if first:
            log.error("audio source %s failed: %s", self.description, reason)
            yield DeviceLost(reason)  # shown before the close, which may take a while
            self._close(report=True)
            backoff.reset(now_too=True)  # reopen straight away
        else:  # reopened, but no audio came: still lost, back off
            if changed:
                log.warning("audio source %s: %s; retrying", self.description, reason)
            self._close()
            backoff.wait()

    def _report_losses(self, now: float) -> None:
        lost = (self.overflows, self.dropped_blocks)
        if lost != self._reported and now - self._reported_at >= LOSS_REPORT_S:
            self._reported, self._reported_at = lost, now
            log.warning(
                "audio lost so far: %d input overflows, %d blocks dropped (processing too slow)",
                *lost,
            )

    def close(self) -> None:
        self._close()
        if self._closing():
            # sounddevice's exit handler calls Pa_Terminate, which would try to close the
            # stuck stream again and hang the exit; the process exiting releases it anyway.
            atexit.unregister(self.sd._exit_handler)
