"""An ALSA virtual microphone fed in real time from the test, for driving the real mic path.

ALSA's `file` PCM plugin serves a capture device whose samples are read from `infile`. A
regular file would be read as fast as the CPU allows, so `infile` is a named pipe instead: a
writer thread here writes raw s16le 16 kHz mono in 80 ms chunks paced to the wall clock, and
the capture side, blocking on the pipe, runs in real time and delivers the written samples
bit-exactly.

    with VirtualMic(tmp_path) as mic:            # writes silence until told otherwise
        with mic_daemon(mic, tmp_path) as d:     # harness.py: recorder run, ready
            start = mic.play(samples)            # queued after what was written; fed[start:]
            mic.wait_played(timeout=15)
            mic.fed                              # every sample written so far, in order

- `env` is the environment for the process under test: `HOME` points at a directory whose
  `.asoundrc` defines the PCM `virtualmic` (so `recorder devices` lists it and
  `--source mic:virtualmic` opens it).
- The pipe is opened O_RDWR, so opening never blocks and a reader closing it (PortAudio's
  device probing, the daemon exiting) never makes a write fail with EPIPE. Writes are
  non-blocking: while nobody reads and the pipe is full, the writer waits and retries the same
  chunk, so `fed` is exactly what a reader can receive, in order, without gaps.
- After the queued audio the writer keeps writing silence (zeros) in real time so capture does
  not stall, unless `pause()` was called: then it writes nothing (a stalled device) until
  `resume()`.
- `VirtualMic(tmp_path, samples)` queues `samples` at once (played from the start).
- `VirtualMic(tmp_path, rate=48000, channels=2)` serves another format: the pipe then carries
  interleaved s16le at that rate, `play()` takes (n, channels) arrays and `fed` is one. The
  `file` plugin hands the reader whatever it asks for, so the daemon must be configured to open
  the device at that format (`[audio] device_rate`, `device_channels`). A chunk is always
  80 ms, the period the daemon reads: the plugin fills a period with one read() of the pipe, so
  a read must never find a partly written chunk. A chunk over PIPE_BUF is only written when
  the pipe has room for all of it (then the kernel copies it in one go).
- Plugging: `VirtualMic(tmp_path, plugged=False)` starts with an `.asoundrc` that does not
  define the PCM (the device is missing); `plug()` defines it, `unplug()` removes the
  definition again. alsa-lib reads its configuration afresh whenever PortAudio is
  re-initialised (Pa_Terminate frees alsa-lib's cached configuration), so a process that
  re-initialises PortAudio sees the change; a stream already open is not affected, so to
  simulate pulling a device out mid-stream, also `pause()` the writer. The `.asoundrc` is
  replaced atomically (a reader never sees half of it).
- Until a reader opens the device, the pipe buffers what was written (16 chunks, 1.28 s);
  the stream that opens it captures that backlog first. PortAudio's probing reads nothing,
  so the daemon's captured stream starts at `fed[0]` (sample i of the stream is `fed[i]`,
  which test_mic.py checks). A stream reopened later starts wherever the pipe then is;
  `find()` locates saved audio in `fed` by exact search.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

RATE = 16000
CHUNK = 1280  # 80 ms, one of the recorder's frames
F_GETPIPE_SZ = 1032  # fcntl: the pipe's capacity in bytes (Linux)


class VirtualMic:
    def __init__(
        self,
        tmp_path: Path,
        samples: np.ndarray | None = None,
        *,
        name: str = "virtualmic",
        chunk: int | None = None,
        plugged: bool = True,
        rate: int = RATE,
        channels: int = 1,
    ):
        self.home = Path(tmp_path) / "mic-home"
        self.fifo = self.home / "mic.fifo"
        self.name = name
        self.rate, self.channels = rate, channels
        self.chunk = chunk or round(rate * CHUNK / RATE)
        self.asoundrc = self.home / ".asoundrc"
        self.plugged = plugged
        self.env = {**os.environ, "HOME": str(self.home)}
        self._lock = threading.Lock()
        self._pending: deque[np.ndarray] = deque()
        self._written: list[np.ndarray] = []
        self._n_written = 0
        self._queued_until = 0  # sample count at which everything play()ed has been written
        self._played = threading.Condition(self._lock)
        self._paused = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self.error: BaseException | None = None
        if samples is not None:
            self.play(samples)

    # --- control -------------------------------------------------------------------------
    def play(self, samples: np.ndarray) -> int:
        """Queue samples (int16, the mic's rate; (n, channels) unless mono) after what is
        already queued.

        Returns the index in `fed` at which they will start.
        """
        samples = np.ascontiguousarray(samples, dtype="<i2")
        samples = samples.ravel() if self.channels == 1 else samples.reshape(-1, self.channels)
        with self._lock:
            start = self._queued_until = self._n_written + sum(len(c) for c in self._pending)
            for i in range(0, len(samples), self.chunk):
                self._pending.append(samples[i : i + self.chunk])
            self._queued_until += len(samples)
        return start

    def wait_played(self, timeout: float) -> bool:
        """Wait until everything play()ed so far has been written to the pipe."""
        with self._played:
            return self._played.wait_for(
                lambda: self._n_written >= self._queued_until or self.error is not None, timeout
            )

    def pause(self) -> None:
        """Stop writing anything (a stalled device) until resume()."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def plug(self) -> None:
        """Define the PCM in `.asoundrc` (the device is plugged in)."""
        self.plugged = True
        self._write_asoundrc()

    def unplug(self) -> None:
        """Remove the PCM's definition from `.asoundrc` (the device is gone for new lookups)."""
        self.plugged = False
        self._write_asoundrc()

    @property
    def fed(self) -> np.ndarray:
        """Every sample written to the pipe so far, in order."""
        with self._lock:
            parts = list(self._written)
        if parts:
            return np.concatenate(parts)
        return np.zeros(0 if self.channels == 1 else (0, self.channels), dtype="<i2")

    def find(self, samples: np.ndarray) -> list[int]:
        """Every offset in `fed` where `samples` occurs exactly, contiguously."""
        fed, samples = self.fed, np.asarray(samples, dtype="<i2")
        n = len(samples)
        if n == 0 or n > len(fed):
            return []
        head = min(n, 256)
        windows = np.lib.stride_tricks.sliding_window_view(fed, head)
        candidates = np.flatnonzero((windows[: len(fed) - n + 1] == samples[:head]).all(axis=1))
        return [int(i) for i in candidates if np.array_equal(fed[i : i + n], samples)]

    # --- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> VirtualMic:
        self.home.mkdir(parents=True, exist_ok=True)
        os.mkfifo(self.fifo)
        self._write_asoundrc()
        self._fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="virtual-mic", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the writer and close the pipe; safe to call more than once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            assert not self._thread.is_alive(), "virtual mic writer did not stop"
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write_asoundrc(self) -> None:
        text = "# virtual microphone: unplugged\n"
        if self.plugged:
            text = (
                f'pcm.{self.name} {{\n    type file\n    slave.pcm "null"\n'
                f'    file "/dev/null"\n    infile "{self.fifo}"\n    format "raw"\n}}\n'
            )
        tmp = self.asoundrc.with_name(".asoundrc.tmp")
        tmp.write_text(text)
        os.replace(tmp, self.asoundrc)

    def _write_whole(self, data: bytes) -> bool:
        """Write all of `data` to the pipe or nothing; False if there is no room now."""
        if len(data) > select.PIPE_BUF:
            queued = struct.unpack("i", fcntl.ioctl(self._fd, termios.FIONREAD, b"\0" * 4))[0]
            if fcntl.fcntl(self._fd, F_GETPIPE_SZ) - queued < len(data):
                return False
        try:
            n = os.write(self._fd, data)  # up to PIPE_BUF: all or nothing
        except BlockingIOError:
            return False
        assert n == len(data), f"partial write to the virtual mic's pipe ({n} of {len(data)})"
        return True

    def _run(self) -> None:
        dt = self.chunk / self.rate
        silence = np.zeros(
            self.chunk if self.channels == 1 else (self.chunk, self.channels), dtype="<i2"
        )
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                    continue
                with self._played:  # the lock: play() sees written + pending consistently
                    if self._paused:
                        due = time.monotonic() + dt
                        continue
                    block = self._pending[0] if self._pending else silence
                    if not self._write_whole(block.tobytes()):
                        block = None  # pipe full, nobody reading: retry the same chunk
                    else:
                        if self._pending:
                            self._pending.popleft()
                        self._written.append(block)
                        self._n_written += len(block)
                        self._played.notify_all()
                if block is None:
                    self._stop.wait(0.01)
                    continue
                # Real time; after a wait for a reader, go on at 1x rather than in a burst.
                due = max(due + dt, time.monotonic() - dt)
        except BaseException as e:  # surfaced to the test through .error / wait_played
            with self._played:
                self.error = e
                self._played.notify_all()
