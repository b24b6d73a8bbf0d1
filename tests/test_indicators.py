"""The hook, the state file and the fan-out (the Pi lights are in test_pi.py)."""

from __future__ import annotations

import logging
import os
import stat
import sys

import pytest

from recorder.config import Config, IndicatorConfig
from recorder.indicators import (
    CommandIndicator,
    Devices,
    IndicatorError,
    Indicators,
    StateFileIndicator,
    build_indicators,
)
from recorder.machine import State

LISTENING, RECORDING = State.LISTENING, State.RECORDING


def hook(tmp_path, body: str) -> str:
    path = tmp_path / "hook.py"
    path.write_text(f"import os, sys\n{body}\n")
    return f"{sys.executable} {path}"


def test_the_hook_gets_the_state_as_argument_and_in_its_environment(tmp_path):
    out = tmp_path / "seen"
    cmd = hook(
        tmp_path,
        f"open({str(out)!r}, 'a').write(' '.join([sys.argv[1], "
        "os.environ['RECORDER_STATE'], os.environ['RECORDER_PREVIOUS_STATE']]) + '\\n')",
    )
    indicator = CommandIndicator(cmd, timeout_s=10)
    indicator.show(RECORDING, LISTENING)
    indicator.show(LISTENING, RECORDING)
    assert out.read_text() == "recording recording listening\nlistening listening recording\n"


@pytest.mark.parametrize(
    "body, timeout_s, message",
    [
        ("sys.stderr.write('no LED here\\n'); sys.exit(3)", 10, "exited 3: no LED here"),
        ("import time; time.sleep(30)", 0.3, "timed out after 0.3 s"),
    ],
)
def test_a_failing_or_hanging_hook_is_an_indicator_error(tmp_path, body, timeout_s, message):
    with pytest.raises(IndicatorError, match=message):
        CommandIndicator(hook(tmp_path, body), timeout_s).show(RECORDING, LISTENING)


def test_a_missing_hook_program_is_an_indicator_error(tmp_path):
    with pytest.raises(IndicatorError, match="no-such-program"):
        CommandIndicator(str(tmp_path / "no-such-program"), 1).show(RECORDING, LISTENING)


def test_the_state_file_is_replaced_whole(tmp_path):
    path = tmp_path / "state"
    indicator = StateFileIndicator(path)
    indicator.show(RECORDING, LISTENING)
    assert path.read_text() == "recording\n"
    inode = path.stat().st_ino
    indicator.show(LISTENING, RECORDING)
    assert path.read_text() == "listening\n"
    assert path.stat().st_ino != inode  # renamed into place, never rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["state"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_state_file_is_an_indicator_error(tmp_path):
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(IndicatorError, match="state file"):
        StateFileIndicator(tmp_path / "state").show(RECORDING, LISTENING)


def test_a_state_file_in_a_missing_directory_is_an_indicator_error(tmp_path):
    with pytest.raises(IndicatorError, match="state file"):
        StateFileIndicator(tmp_path / "gone" / "state").show(RECORDING, LISTENING)


class Probe:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.shown: list[State] = []

    def show(self, state: State, previous: State) -> None:
        self.shown.append(state)
        if self.fail:
            raise IndicatorError(f"probe {len(self.shown)} failed")


def test_every_indicator_is_shown_even_after_one_fails():
    first, broken, last = Probe(), Probe(fail=True), Probe()
    with pytest.raises(IndicatorError, match="probe 1 failed"):
        Indicators([first, broken, last]).show(RECORDING, LISTENING)
    assert first.shown == broken.shown == last.shown == [RECORDING]


def test_build_indicators_logs_writes_the_state_file_and_runs_the_hook(tmp_path, caplog):
    out = tmp_path / "hooked"
    config = Config(
        indicator=IndicatorConfig(
            state_file="state",
            command=hook(tmp_path, f"open({str(out)!r}, 'w').write(sys.argv[1])"),
        ),
        base_dir=tmp_path,
    )
    with caplog.at_level(logging.INFO, logger="recorder"):
        build_indicators(config, Devices()).show(RECORDING, LISTENING)
    assert (tmp_path / "state").read_text() == "recording\n"
    assert out.read_text() == "recording"
    assert "state listening -> recording" in caplog.text
