"""Chimes: a sound when a recording starts (`awake_sound`) and when it ends (`done_sound`).

The microphone is never paused or muted for a chime: a request spoken straight after the wake
word is kept whole, chime and all, and the sidecar's `chime_offset_s` / `chime_duration_s` say
where the awake chime was started so that consumers can ignore it.

The sounds are read and converted to the output device's rate and channels once, at start (an
unreadable file or a missing device is a one-line error then). Playback runs on a thread of its
own, which opens an output stream per chime and writes to it; the processing loop only puts a
name in a bounded queue, so a slow, busy or hung output device never holds it up. Playback
errors are logged and otherwise ignored: a chime is a courtesy, not the privacy indicator.

Like sources/mic.py, this module imports sounddevice (PortAudio), and only when a chime is
configured.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from recorder import threads
from recorder.audio import SAMPLE_RATE, frames_to_s, read_wav, resample
from recorder.config import Config
from recorder.errors import RecorderError
from recorder.machine import State, StateChanged

log = logging.getLogger("recorder.chime")

AWAKE, DONE = "awake_sound", "done_sound"
QUEUE_CHIMES = 4
BLOCK_S = 0.05  # written in blocks this long, to notice close() in between
CLOSE_WAIT_S = 0.5  # at exit, a chime still playing may finish for this long


def _noop() -> None:
    pass


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError:
        raise RecorderError(
            "[indicator] awake_sound/done_sound: chimes need the PortAudio library: install it "
            "with `sudo apt-get install libportaudio2`"
        ) from None
    return sounddevice


@dataclass(frozen=True)
class Output:
    device: int | str | None
    """What sounddevice is given: the index or full name asked for, None for the default."""
    name: str
    rate: int
    channels: int


def resolve_output(sd: Any, spec: str) -> Output:
    """The output device (`spec`: a name, an index or "" for the default) and a format it takes:
    its default rate, 16-bit, mono or else stereo."""
    key: int | str | None = (int(spec) if spec.isdigit() else spec) if spec else None
    try:
        info = sd.query_devices(key, "output")
    except (ValueError, sd.PortAudioError) as e:  # ValueError: none or several by that name
        what = f"chime_device {spec!r} not found" if spec else "no default output device"
        if isinstance(e, ValueError) and str(e):
            what = f"chime_device: {str(e).splitlines()[0].rstrip(':')}"
        raise RecorderError(
            f"[indicator] {what} (`python3 -m sounddevice` lists the devices)"
        ) from None
    device = key if isinstance(key, int) or key is None else info["name"]
    rate = int(info["default_samplerate"])
    errors = []
    for channels in (1, 2):
        if channels > info["max_output_channels"]:
            continue
        try:
            sd.check_output_settings(
                device=info["index"], channels=channels, dtype="int16", samplerate=rate
            )
        except sd.PortAudioError as e:
            errors.append(str(e))
            continue
        return Output(device, info["name"], rate, channels)
    raise RecorderError(
        f"[indicator] chime device {info['name']!r} takes no 16-bit mono or "
        f"stereo audio at {rate} Hz ({'; '.join(errors) or 'no channels'})"
    )


def convert(samples: np.ndarray, out: Output) -> np.ndarray:
    """16 kHz mono int16 -> (n, channels) int16 at the device's rate."""
    x = resample(samples.astype(np.float64), SAMPLE_RATE, out.rate)
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return np.repeat(x[:, None], out.channels, axis=1)


class ChimePlayer:
    """Reacts to state changes: the awake chime when `recording` starts (and was shown), the
    done chime when it ends (not when the daemon stops)."""

    def __init__(self, sd: Any, out: Output, sounds: dict[str, np.ndarray]):
        self.sd = sd
        self.out = out
        self.sounds = {k: convert(v, out) for k, v in sounds.items()}
        self.durations = {k: len(v) / SAMPLE_RATE for k, v in sounds.items()}
        self.awake_frame: int | None = None
        """Frame index of the state change that last started the awake chime."""
        self._active = False
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_CHIMES)
        self._abort = threading.Event()
        self._thread = threads.start("chime", self._run)

    # --- the processing loop's side: never blocks ------------------------------------------
    def on_state(self, event: StateChanged, discarded: bool = False) -> None:
        """`discarded`: the request is being dropped (its `recording` could not be shown)."""
        if event.state is State.RECORDING:
            if discarded:
                return
            self._active = True
            if AWAKE in self.sounds and self._play(AWAKE):
                self.awake_frame = event.frame_index
        elif event.previous is State.RECORDING and self._active:
            self._active = False
            if DONE in self.sounds and event.state is not State.OFF:
                self._play(DONE)

    def awake_meta(self, wake_frame: int) -> dict[str, float]:
        """The sidecar's chime keys for a request detected at `wake_frame`, if its awake chime
        was started: where (seconds since the source started; the end of the frame whose
        state change started it) and how long it is."""
        if self.awake_frame is None or self.awake_frame < wake_frame:
            return {}
        return {
            "chime_offset_s": round(frames_to_s(self.awake_frame + 1), 4),
            "chime_duration_s": round(self.durations[AWAKE], 4),
        }

    def _play(self, name: str) -> bool:
        try:
            self._queue.put_nowait(name)
        except queue.Full:
            log.warning("chime %s skipped: the output device is not keeping up", name)
            return False
        return True

    def close(self, wait_s: float | None = CLOSE_WAIT_S) -> None:
        """Stop: let what is queued play for up to `wait_s` (None: to its end, in the
        background), then abandon it. Never waits longer than `wait_s`."""
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            self._abort.set()
        if wait_s is None:
            return
        self._thread.join(wait_s)
        self._abort.set()
        if self._thread.is_alive():  # stuck in a write the device does not take
            log.warning("chime: the output device %r takes no audio; leaving it", self.out.name)
            # PortAudio's clean-up at exit would wait for that write forever: skip it (the
            # process's exit closes the device all the same).
            atexit.unregister(getattr(self.sd, "_exit_handler", _noop))

    # --- the chime thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            name = self._queue.get()
            if name is None or self._abort.is_set():
                return
            try:
                self._play_now(self.sounds[name])
            except Exception as e:  # PortAudio errors, a device gone: logged, never fatal
                log.warning("chime %s on %r: %s", name, self.out.name, e)

    def _play_now(self, data: np.ndarray) -> None:
        o = self.out
        block = max(1, int(o.rate * BLOCK_S))
        with self.sd.OutputStream(
            device=o.device, samplerate=o.rate, channels=o.channels, dtype="int16"
        ) as stream:
            for i in range(0, len(data), block):
                if self._abort.is_set():
                    stream.abort()
                    return
                stream.write(data[i : i + block])


def build(config: Config) -> ChimePlayer | None:
    """The chime player, if a chime is configured; reads the sounds and finds the device."""
    ind = config.indicator
    sounds = {}
    for key in (AWAKE, DONE):
        path = getattr(ind, key)
        if not path:
            continue
        try:
            samples = read_wav(config.path(path))
        except RecorderError as e:
            raise RecorderError(f"[indicator] {key}: {e}") from None
        if len(samples) == 0:
            raise RecorderError(f"[indicator] {key}: {config.path(path)}: no audio in it")
        sounds[key] = samples
    if not sounds:
        return None
    sd = _sounddevice()
    out = resolve_output(sd, ind.chime_device)
    player = ChimePlayer(sd, out, sounds)
    log.info(
        "chimes (%s) on %r at %d Hz, %d channel%s",
        ", ".join(f"{k.split('_')[0]} {player.durations[k]:.2f} s" for k in sounds),
        out.name,
        out.rate,
        out.channels,
        "s" if out.channels > 1 else "",
    )
    return player
