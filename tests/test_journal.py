"""The journal: numbered, stamped records of what the daemon did, fanned out to sinks."""

from __future__ import annotations

import hashlib
import json
import wave
from pathlib import Path

import pytest

from recorder import daemon
from recorder.config import Config, StorageConfig, WakeConfig
from recorder.journal import Journal
from recorder.mute import MuteSwitch
from recorder.sources import FileSource

AUDIO = Path(__file__).parent / "audio"


def test_records_are_numbered_stamped_and_reach_every_sink():
    journal, a, b = Journal(), [], []
    journal.subscribe(a.append)
    journal.subscribe(b.append)
    journal.publish("muted", uid=1000)
    journal.publish("unmuted", uid=None)
    assert a == b
    assert [(r["event"], r["seq"]) for r in a] == [("muted", 1), ("unmuted", 2)]
    assert a[0]["uid"] == 1000 and a[0]["time"].endswith("Z")
    with pytest.raises(ValueError, match="unknown journal event"):
        journal.publish("exploded")


def test_a_failing_sink_is_removed_and_the_others_still_get_every_record():
    journal, good = Journal(), []

    def bad(_record):
        raise RuntimeError("consumer broke")

    journal.subscribe(bad)
    journal.subscribe(good.append)
    journal.publish("reloaded")
    journal.publish("reloaded")
    assert [r["seq"] for r in good] == [1, 2]


def test_a_daemon_run_tells_its_story_in_order(tmp_path):
    config = Config(
        wake=WakeConfig(models=("hey_jarvis",)),
        storage=StorageConfig(directory=str(tmp_path / "rec")),
        base_dir=tmp_path,
    )
    d = daemon.build_daemon(
        config, FileSource(AUDIO / "two_requests.wav"), MuteSwitch(tmp_path / "state")
    )
    records: list[dict] = []
    d.journal.subscribe(records.append)
    d.run()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    kinds = [r["event"] for r in records]
    assert kinds[0] == "started" and kinds[-1] == "stopped"
    assert records[-1]["reason"] == "eof" and records[-1]["saved"] == 2
    saved = [r for r in records if r["event"] == "saved"]
    assert len(saved) == 2
    for r in saved:  # each names complete files: the sidecar and the audio it describes
        meta = json.loads(Path(r["sidecar"]).read_text())
        assert meta["id"] == r["id"]
        with wave.open(r["audio"]) as w:
            pcm = w.readframes(w.getnframes())
        assert hashlib.sha256(pcm).hexdigest() == r["audio_sha256"]
        assert meta["audio_sha256"] == r["audio_sha256"]
        assert r["duration_s"] == pytest.approx(meta["duration_s"])
    # each save comes after its wake and while the state is recording
    for r in saved:
        before = records[: records.index(r)]
        assert before[-1]["event"] == "state" and before[-1]["state"] == "recording"
        assert any(x["event"] == "wake" for x in before)
    states = [(r["previous"], r["state"]) for r in records if r["event"] == "state"]
    assert states[0] == ("off", "listening") and states[-1][1] == "off"
    assert all(prev == states[k - 1][1] for k, (prev, _) in enumerate(states) if k)


def test_a_gate_takes_each_record_first_and_a_refusal_stops_it():
    from recorder.journal import Refused

    journal, seen = Journal(), []

    def gate(record: dict) -> None:
        seen.append(("gate", record["event"]))
        if record["event"] == "muted":
            raise Refused("no room for the line")

    journal.subscribe(lambda r: seen.append(("sink", r["event"])))
    journal.subscribe(gate, gate=True)
    journal.publish("unmuted", uid=None)
    with pytest.raises(Refused, match="no room"):
        journal.publish("muted", uid=0)
    journal.publish("unmuted", uid=None)  # a refusal does not unsubscribe the gate
    assert seen == [
        ("gate", "unmuted"),
        ("sink", "unmuted"),
        ("gate", "muted"),
        ("gate", "unmuted"),
        ("sink", "unmuted"),
    ]
