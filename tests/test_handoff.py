"""The hand-off's queue: the journal's sink never waits; past `queue` waiting requests a
hand-off is skipped and counted, and the ones queued still run."""

from __future__ import annotations

import dataclasses
import logging
import sys

import pytest
from conftest import tone
from harness import wait_for

from recorder import config as config_mod
from recorder.config import Config, HandoffConfig
from recorder.errors import RecorderError
from recorder.handoff import Handoff
from recorder.journal import Journal
from recorder.storage import Storage

BLOCKER = """#!{python}
import os, sys, time
out = {out!r}
open(os.path.join(out, os.environ["RECORDER_ID"] + ".started"), "w").close()
while not os.path.exists(os.path.join(out, "go")):
    time.sleep(0.02)
"""


def test_a_full_queue_skips_and_counts_without_waiting(tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "hook.py"
    script.write_text(BLOCKER.format(python=sys.executable, out=str(out)))
    script.chmod(0o755)
    storage = Storage(tmp_path / "rec")
    storage.prepare()
    config = dataclasses.replace(
        Config(base_dir=tmp_path), handoff=HandoffConfig(command=str(script), queue=1)
    )
    journal = Journal()
    handoff = Handoff(config, journal)
    journal.subscribe(handoff.sink)

    def save(n: int) -> None:
        rec = storage.save(f"r{n}", tone(440 + n, 0.5), {"wake_word": "hey_jarvis"})
        journal.publish("saved", id=rec.id, sidecar=str(rec.sidecar), audio=str(rec.wav))

    caplog.set_level(logging.WARNING, logger="recorder")
    try:
        save(0)
        wait_for(lambda: (out / "r0.started").exists())  # the worker holds r0
        for n in range(1, 6):  # r1 waits in the queue; r2..r5 find it full
            save(n)
        assert handoff.counts.skipped == 4
        assert handoff.status()["waiting"] == 1
        assert sum("skipped it for" in r.message for r in caplog.records) == 4
        (out / "go").touch()
        wait_for(lambda: handoff.counts.commands_run == 2)
    finally:
        (out / "go").touch()
        handoff.close()
    assert sorted(p.name for p in out.glob("*.started")) == ["r0.started", "r1.started"]
    assert handoff.counts.command_failures == 0
    # the recordings themselves are all there, untouched
    assert [r.id for r in storage.list()] == [f"r{n}" for n in range(6)]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('[handoff]\nwyoming = "tcp://127.0.0.1:10300"', "opens no network socket"),
        ('[handoff]\nwyoming = "stdio://"', "unknown scheme 'stdio://'"),
        ('[handoff]\nwyoming = "/run/stt.sock"', "is not a URI"),
        ('[handoff]\nkeep_audio = "sometimes"', "keep_audio: must be one of always"),
        ("[handoff]\ntimeout_s = 0", "[handoff] timeout_s"),
        ("[handoff]\nqueue = 0", "[handoff] queue"),
        ('[handoff]\ncommand = "  "', "empty command"),
        ('[control]\ngroups = "audio"', "unknown key 'groups'"),
    ],
)
def test_bad_values_name_the_key(tmp_path, section, message):
    path = tmp_path / "recorder.toml"
    path.write_text(section + "\n")
    with pytest.raises(RecorderError) as e:
        config_mod.load(path)
    assert message in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_good_values_load(tmp_path):
    path = tmp_path / "recorder.toml"
    path.write_text(
        '[handoff]\ncommand = "hook.sh --x"\nwyoming = "unix:///run/stt.sock"\n'
        'keep_audio = "until_transcribed"\n[control]\ngroup = "audio"\n'
    )
    config = config_mod.load(path)
    assert config.handoff.keep_audio == "until_transcribed" and config.control.group == "audio"
    assert config_mod.load(path) == config
