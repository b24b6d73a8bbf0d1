"""Transcription over the Wyoming protocol: a real offline recogniser (pocketsphinx behind the
wyoming package's server classes, tests/wyoming_server.py) on a Unix socket gets exactly the
saved samples, and the transcript lands in the sidecar; a server that is down, never answers or
answers junk leaves the request saved with `transcript_error`, and `recorder transcribe` retries.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import AUDIO, RECORDER, read_pcm, run_recorder
from harness import stt_server

from recorder.config import Config, HandoffConfig
from recorder.handoff import Handoff
from recorder.journal import Journal
from recorder.storage import Storage

pytest.importorskip("wyoming")
SCENE = AUDIO / "alexa_command.wav"  # "Alexa, play some music in the living room"


def config(tmp: Path, sock: Path, extra: str = "") -> Path:
    path = tmp / "recorder.toml"
    path.write_text(f'[handoff]\nwyoming = "unix://{sock}"\n{extra}\n')
    return path


def run(tmp: Path, cfg: Path) -> str:
    proc = run_recorder(
        "run",
        "--config",
        str(cfg),
        "--source",
        f"file:{SCENE}",
        "--model",
        "alexa",
        "--recordings",
        str(tmp / "rec"),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stderr.decode()


def sidecars(tmp: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((tmp / "rec").glob("*.json"))]


def test_the_transcript_of_a_spoken_command_lands_in_the_sidecar(tmp_path):
    sock, received = tmp_path / "stt.sock", tmp_path / "received"
    received.mkdir()
    with stt_server(sock, "real", received):
        err = run(tmp_path, config(tmp_path, sock, 'keep_audio = "until_transcribed"'))
    [meta] = sidecars(tmp_path)
    transcript = meta["transcript"]
    assert "music" in transcript["text"].split(), transcript
    assert transcript["program"] == "pocketsphinx-test" and transcript["seconds"] > 0
    assert "transcript_error" not in meta
    # exactly the saved samples went to the server, nothing more
    assert [p.read_text() for p in received.iterdir()] == [meta["audio_sha256"]]
    # keep the words, not the voice
    assert meta["audio_file"] is None and meta["audio_deleted"] == "transcribed"
    assert list((tmp_path / "rec").glob("*.wav")) == []
    assert f"transcribed {meta['id']}" in err
    listed = run_recorder("list", "--json", "--recordings", str(tmp_path / "rec"))
    assert json.loads(listed.stdout)[0]["id"] == meta["id"]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("down", "cannot reach"),
        ("slow", "no transcript within 2 s"),
        ("garbled", "not a Wyoming event"),
    ],
)
def test_a_failing_server_leaves_the_request_saved_with_the_reason(tmp_path, mode, message):
    sock = tmp_path / "stt.sock"
    cfg = config(tmp_path, sock, 'keep_audio = "until_transcribed"\nwyoming_timeout_s = 2')
    if mode == "down":
        err = run(tmp_path, cfg)
    else:
        with stt_server(sock, mode):
            err = run(tmp_path, cfg)
    [meta] = sidecars(tmp_path)
    assert message in meta["transcript_error"], meta
    assert "transcript" not in meta
    assert (tmp_path / "rec" / meta["audio_file"]).is_file()  # a failed transcription keeps it
    assert "transcription of" in err and "(audio kept)" in err
    if mode != "down":
        return
    # once the server is up, `recorder transcribe --pending` retries (with time for the real
    # recognizer on a loaded machine: the 2-s limit was for the failing servers above)
    cfg = config(tmp_path, sock, 'keep_audio = "until_transcribed"\nwyoming_timeout_s = 30')
    with stt_server(sock, "real"):
        proc = run_recorder(
            "transcribe", "--pending", "--config", str(cfg), "--recordings", str(tmp_path / "rec")
        )
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"music" in proc.stdout
    [meta] = sidecars(tmp_path)
    assert "music" in meta["transcript"]["text"] and "transcript_error" not in meta
    assert meta["audio_file"] is None and list((tmp_path / "rec").glob("*.wav")) == []
    again = run_recorder(
        "transcribe", "--pending", "--config", str(cfg), "--recordings", str(tmp_path / "rec")
    )
    assert again.returncode == 0 and b"nothing to transcribe" in again.stdout


def test_transcription_opens_no_network_socket(tmp_path):
    """The privacy promise holds with [handoff] wyoming set: every socket is AF_UNIX."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    sock, trace = tmp_path / "stt.sock", tmp_path / "trace"
    cfg = config(tmp_path, sock)
    with stt_server(sock, "real"):
        proc = subprocess.run(
            [
                strace,
                "-f",
                "-qq",
                "-e",
                "trace=socket,connect,sendto,sendmsg",
                "-o",
                str(trace),
                str(RECORDER),
                "run",
                "--config",
                str(cfg),
                "--source",
                "stdin",
                "--model",
                "alexa",
                "--recordings",
                str(tmp_path / "rec"),
                "--runtime-dir",
                str(tmp_path / "run"),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            input=read_pcm(SCENE).tobytes(),
            capture_output=True,
            timeout=300,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    [meta] = sidecars(tmp_path)
    assert "music" in meta["transcript"]["text"]  # the transcription did happen
    calls = trace.read_text().splitlines()
    assert any("connect(" in c and str(sock) in c for c in calls)
    assert [c for c in calls if "AF_INET" in c or "AF_NETLINK" in c] == []


def test_the_transcript_is_published_as_a_transcribed_event(tmp_path):
    sock = tmp_path / "stt.sock"
    storage = Storage(tmp_path / "rec")
    storage.prepare()
    rec = storage.save("r1", read_pcm(SCENE)[int(2.3 * 16000) :], {"wake_word": "alexa"})
    config = dataclasses.replace(
        Config(base_dir=tmp_path), handoff=HandoffConfig(wyoming=f"unix://{sock}")
    )
    journal = Journal()
    seen: list[dict] = []
    journal.subscribe(seen.append)
    with stt_server(sock, "real"):
        handoff = Handoff(config, journal)
        journal.subscribe(handoff.sink)
        journal.publish("saved", id=rec.id, sidecar=str(rec.sidecar), audio=str(rec.wav))
        handoff.close()  # waits for the transcription
    event = seen[-1]
    assert event["event"] == "transcribed" and event["id"] == "r1" and event["seq"] == 2
    assert "music" in event["transcript"]["text"].split()
    assert json.loads(rec.sidecar.read_text())["transcript"] == event["transcript"]
    assert handoff.status()["transcribed"] == 1


def test_a_sealed_request_is_transcribed_from_memory_and_the_transcript_is_sealed(tmp_path):
    """The device cannot read back what it sealed: the transcriber gets the saved samples in
    memory, and the transcript goes into the sealed sidecar only, never the plaintext index."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    sock, received = tmp_path / "stt.sock", tmp_path / "received"
    received.mkdir()
    extra = f'keep_audio = "until_transcribed"\n[storage]\nencrypt_to = ["{identity.to_public()}"]'
    with stt_server(sock, "real", received):
        run(tmp_path, config(tmp_path, sock, extra))
    [index] = sidecars(tmp_path)
    assert index["encrypted"] is True and "transcript" not in index and "audio_sha256" not in index
    meta = json.loads(
        pyrage.decrypt((tmp_path / "rec" / index["meta_file"]).read_bytes(), [identity])
    )
    assert "music" in meta["transcript"]["text"].split(), meta
    assert [p.read_text() for p in received.iterdir()] == [meta["audio_sha256"]]
    # the words are kept, the (sealed) voice deleted; the index says so
    assert index["audio_file"] is None and index["audio_deleted"] == "transcribed"
    assert meta["audio_deleted"] == "transcribed"
    assert not list((tmp_path / "rec").glob("*.wav*"))
    # a retry cannot read it back: it is not pending, and asking for it says why
    cfg = config(tmp_path, sock, extra.replace('keep_audio = "until_transcribed"\n', ""))
    pending = run_recorder(
        "transcribe", "--pending", "--config", str(cfg), "--recordings", str(tmp_path / "rec")
    )
    assert pending.returncode == 0 and b"nothing to transcribe" in pending.stdout
