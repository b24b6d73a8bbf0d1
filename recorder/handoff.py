"""The hand-off: what happens to a request once it is safely saved, off the audio loop.

A journal sink takes each `saved` record and queues it, never blocking, for two workers:

- the post-save command (`[handoff] command`), run as `COMMAND SIDECAR_PATH` without a shell,
  with the sidecar JSON on its stdin and RECORDER_ID, RECORDER_AUDIO, RECORDER_WAKE_WORD in its
  environment; its process group is killed after `timeout_s`;
- the transcriber (`[handoff] wyoming`), which sends exactly the saved samples to a Wyoming
  speech-to-text server on a Unix socket, writes `transcript` (or `transcript_error`) into the
  sidecar atomically, publishes a `transcribed` record, and with `keep_audio =
  "until_transcribed"` then deletes the audio.

A full queue skips that request's hand-off with a log line and a count; a failure or timeout is
logged and counted. The recording itself is never lost or changed by either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import grp
import json
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recorder import stt, threads
from recorder.audio import read_wav
from recorder.config import Config, HandoffConfig
from recorder.digest import hexdigest
from recorder.errors import RecorderError
from recorder.journal import Journal, Record
from recorder.records import Deleted, SavedRequest, Transcribed
from recorder.storage import Recording, Storage, StorageError

log = logging.getLogger("recorder")

_POLL_S = 0.1


def check_at_start(config: Config) -> None:
    """What only the machine can tell: the command exists and may be run, the Wyoming package
    is installed, the control group exists. Raises RecorderError (exit 2). The daemon calls it
    only when one of them is configured (and starts without this module otherwise)."""
    h = config.handoff
    if h.command:
        program = resolve_program(config, h.command)
        if not os.access(program, os.X_OK):
            raise RecorderError(f"[handoff] command: {program}: not executable")
    if h.wyoming:
        stt.require_wyoming()
    if config.control.group:
        control_gid(config.control.group)


def control_gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise RecorderError(f"[control] group: no group named {group!r} on this system") from None


def resolve_program(config: Config, command: str) -> str:
    """The command's program: a path (relative to the config file) or a name on $PATH."""
    program = shlex.split(command)[0]
    if "/" in program:
        path = config.path(program)
        if not path.is_file():
            raise RecorderError(f"[handoff] command: {path}: no such file")
        return str(path)
    found = shutil.which(program)
    if found is None:
        raise RecorderError(f"[handoff] command: {program!r} not found on $PATH")
    return found


@dataclass
class Counts:
    commands_run: int = 0
    command_failures: int = 0
    transcribed: int = 0
    transcription_failures: int = 0
    skipped: int = 0
    """Hand-offs dropped because a queue was full."""


def load_recording(sidecar: Path) -> Recording:
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as e:
        raise StorageError(f"{sidecar}: cannot read ({getattr(e, 'strerror', None) or e})") from e
    if not isinstance(meta, dict):
        raise StorageError(f"{sidecar}: not a JSON object")
    return Recording(str(meta.get("id", sidecar.stem)), sidecar.with_suffix(".wav"), sidecar, meta)


def transcribe_recording(
    storage: Storage, rec: Recording, h: HandoffConfig, samples: np.ndarray | None = None
) -> tuple[Recording, stt.Transcript | None, str | None]:
    """Transcribe one saved request and record the outcome in its sidecar; then apply
    keep_audio. Returns the updated recording, the transcript or the error.

    `samples`: the request's audio as it was saved, held in memory (a sealed recording, which
    this device cannot read back); otherwise the audio file is read."""
    if not rec.has_audio:
        return rec, None, "the audio was deleted"
    if samples is None and (rec.sealed or rec.meta.get("encrypted")):
        return rec, None, "sealed: this device cannot read it back (only at the save)"
    try:
        if samples is None:
            samples = read_wav(rec.wav)
        if hexdigest(samples.astype("<i2").tobytes()) != rec.meta.get("audio_sha256"):
            raise stt.TranscriptionError("the audio does not match the sidecar's audio_sha256")
        transcript = stt.transcribe(h.wyoming, samples, h.wyoming_timeout_s, h.language)
    except (stt.TranscriptionError, RecorderError) as e:
        if "transcript" not in rec.meta:  # a transcript from an earlier try is kept
            with contextlib.suppress(StorageError):
                rec = storage.update_meta(rec, transcript_error=str(e))
        return rec, None, str(e)
    meta = {k: v for k, v in rec.meta.items() if k != "transcript_error"}
    rec = _rewrite(storage, dataclasses.replace(rec, meta=meta), transcript=transcript.to_json())
    if h.keep_audio == "until_transcribed":
        rec = storage.drop_audio(rec, "transcribed")
    return rec, transcript, None


def _rewrite(storage: Storage, rec: Recording, **fields: Any) -> Recording:
    """update_meta with keys removed as well as set: the sidecar is written whole."""
    bare = dataclasses.replace(rec, meta={})
    return storage.update_meta(bare, **{**rec.meta, **fields})


class Handoff:
    """The two workers and their bounded queues; `sink` is the journal's subscriber."""

    def __init__(self, config: Config, journal: Journal, storage: Storage | None = None):
        self.config = config
        self.h = config.handoff
        self.journal = journal
        self.counts = Counts()
        self._lock = threading.Lock()
        self.argv = shlex.split(self.h.command) if self.h.command else []
        if self.argv:
            self.argv[0] = resolve_program(config, self.h.command)
        self._commands: queue.Queue[SavedRequest] = queue.Queue(self.h.queue)
        self._transcriptions: queue.Queue[SavedRequest] = queue.Queue(self.h.queue)
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._running: subprocess.Popen[bytes] | None = None
        self.storage = storage
        """The daemon's storage: with its sealer, a sealed sidecar can gain the transcript."""
        self._held: dict[str, tuple[Recording, np.ndarray]] = {}
        """Sealed requests waiting for transcription: the recording as saved and its audio,
        in memory only (the files on disk are ciphertext)."""
        self._workers: list[threading.Thread] = []
        if self.argv:
            self._workers.append(self._start("handoff command", self._commands, self._run_command))
        if self.h.wyoming:
            self._workers.append(
                self._start("handoff transcription", self._transcriptions, self._transcribe)
            )

    @property
    def active(self) -> bool:
        return bool(self._workers)

    def _start(
        self, name: str, q: queue.Queue[SavedRequest], job: Callable[[SavedRequest], None]
    ) -> threading.Thread:
        def work() -> None:
            while not self._abandon.is_set():
                try:
                    request = q.get(timeout=_POLL_S)
                except queue.Empty:
                    if self._stopping.is_set():
                        return  # everything queued was handed off
                    continue
                try:
                    job(request)
                except Exception:  # a bug in one hand-off: logged, counted, the next one runs
                    log.exception("%s failed for %s", name, request.id)
                    self._count(
                        "command_failures" if q is self._commands else "transcription_failures"
                    )

        return threads.start(name, work, keeps_running=lambda: not self._stopping.is_set())

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self.counts, what, getattr(self.counts, what) + 1)

    # --- on the audio loop's thread: never blocks ---------------------------------------------
    def hold(self, rec: Recording, samples: np.ndarray) -> None:
        """Before a sealed request's `saved` record: keep what the transcriber needs in
        memory, since the device cannot decrypt the files."""
        if self.h.wyoming and not self._stopping.is_set():
            with self._lock:
                self._held[rec.id] = (rec, samples)

    def sink(self, record: Record) -> None:
        request = SavedRequest.of(record)
        if request is None or self._stopping.is_set():
            return
        for q, name in ((self._commands, "command"), (self._transcriptions, "transcription")):
            if (name == "command" and not self.argv) or (
                name == "transcription" and not self.h.wyoming
            ):
                continue
            try:
                q.put_nowait(request)
            except queue.Full:
                if name == "transcription":
                    with self._lock:
                        self._held.pop(request.id, None)
                self._count("skipped")
                log.warning(
                    "hand-off: %d requests already wait for the %s; skipped it for %s",
                    self.h.queue,
                    name,
                    request.id,
                )

    # --- the workers ----------------------------------------------------------------------
    def _run_command(self, request: SavedRequest) -> None:
        sidecar = request.sidecar
        try:
            stdin = sidecar.read_bytes()
        except OSError as e:
            self._count("command_failures")
            log.warning("hand-off command for %s: cannot read %s: %s", request.id, sidecar, e)
            return
        env = {
            **os.environ,
            "RECORDER_ID": request.id,
            "RECORDER_AUDIO": str(request.audio),
            "RECORDER_WAKE_WORD": request.wake_word,
        }
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                [*self.argv, str(sidecar)],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group, killed whole on timeout
                close_fds=True,
            )
        except OSError as e:
            self._count("command_failures")
            log.warning("hand-off command for %s: cannot start: %s", request.id, e.strerror or e)
            return
        self._running = proc
        try:
            _, err = proc.communicate(stdin, timeout=self.h.timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            self._count("command_failures")
            log.warning(
                "hand-off command for %s: killed after %g s (timeout_s)",
                request.id,
                self.h.timeout_s,
            )
            return
        finally:
            self._running = None
        if proc.returncode != 0:
            self._count("command_failures")
            last = err.decode("utf-8", "replace").strip().splitlines()[-1:] if err else []
            log.warning(
                "hand-off command for %s: exit status %d%s",
                request.id,
                proc.returncode,
                f": {last[0][:300]}" if last else "",
            )
            return
        self._count("commands_run")
        log.debug("hand-off command for %s done in %.3f s", request.id, time.monotonic() - started)

    def _transcribe(self, request: SavedRequest) -> None:
        sidecar = request.sidecar
        with self._lock:
            held = self._held.pop(request.id, None)
        storage = self.storage if self.storage is not None else Storage(sidecar.parent)
        try:
            if held is not None:
                rec, transcript, error = transcribe_recording(storage, held[0], self.h, held[1])
            else:
                rec = load_recording(sidecar)
                rec, transcript, error = transcribe_recording(storage, rec, self.h)
        except StorageError as e:
            rec, transcript, error = None, None, str(e)
        if error is not None:
            self._count("transcription_failures")
            log.warning("transcription of %s failed (audio kept): %s", request.id, error)
            self.journal.publish(Transcribed(id=request.id, error=error))
            return
        assert transcript is not None and rec is not None
        self._count("transcribed")
        log.info(
            "transcribed %s in %.2f s (%d characters)",
            request.id,
            transcript.seconds,
            len(transcript.text),
        )
        self.journal.publish(Transcribed(id=request.id, transcript=transcript.to_json()))
        if not rec.has_audio:
            self.journal.publish(Deleted(id=request.id, why="transcribed", audio_only=True))

    # --- the daemon's side ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.counts.__dict__,
                "waiting": self._commands.qsize() + self._transcriptions.qsize(),
            }

    def close(self, wait_s: float | None = None) -> None:
        """Let what is queued finish (each job bounded by its timeout), for `wait_s` seconds
        at most when given; then a command still running is killed with its process group
        and what is left is abandoned (its recordings stay saved; `recorder transcribe
        --pending` finds the ones without a transcript)."""
        self._stopping.set()
        per_job = max(self.h.timeout_s, self.h.wyoming_timeout_s) + 1.0
        deadline = time.monotonic() + (per_job * (self.h.queue + 1) if wait_s is None else wait_s)
        for t in self._workers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        if not any(t.is_alive() for t in self._workers):
            return
        self._abandon.set()
        running = self._running
        if running is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.pid, signal.SIGKILL)
        left = self._commands.qsize() + self._transcriptions.qsize()
        log.warning(
            "hand-off: stopped before it finished (%d request(s) still queued)%s",
            left,
            "; killed the running command" if running is not None else "",
        )
        for t in self._workers:
            t.join(timeout=1.0)
