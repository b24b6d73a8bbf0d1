"""`recorder monitor`'s pieces on their own: the frame's level and record, the per-second
maxima, the level bar, the view on and off a terminal, and the control socket's `monitor`
stream from a real server thread (frames only while a monitor subscriber is attached)."""

from __future__ import annotations

import io
import json
import socket

import numpy as np
import pytest
from harness import wait_for

from recorder import cli, control, threads
from recorder.audio import Frame
from recorder.journal import Journal
from recorder.machine import State
from recorder.monitor_feed import SILENCE_DBFS, MonitorFeed, frame_record, level_dbfs
from recorder.tools.meter import SecondMax, View, level_bar, score_bar


def test_level_in_dbfs():
    square = np.full(1280, 32767, dtype=np.int16)
    square[::2] = -32768
    assert level_dbfs(square) == 0.0
    t = np.arange(1280) / 16000
    sine = (0.5 * 32768 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    assert level_dbfs(sine) == -9.0  # 0.5 of full scale, RMS of a sine: -6 - 3 dB
    assert level_dbfs(np.zeros(1280, dtype=np.int16)) == SILENCE_DBFS == -90.3
    assert level_dbfs(np.zeros(0, dtype=np.int16)) == SILENCE_DBFS


def test_the_frame_record_is_numbers_and_a_state():
    samples = np.full(1280, 3277, dtype=np.int16)
    record = frame_record(Frame(24, samples), {"hey_jarvis": 0.912345}, True, State.RECORDING)
    assert record == {
        "event": "frame",
        "offset_s": 2.0,
        "scores": {"hey_jarvis": 0.9123},
        "speech": True,
        "state": "recording",
        "level_dbfs": -20.0,
    }
    json.dumps(record)


@pytest.mark.parametrize(
    "dbfs, bar",
    [
        (0.0, "[" + "=" * 40 + "]"),
        (6.0, "[" + "=" * 40 + "]"),  # clipped at full scale
        (-40.0, "[" + "=" * 20 + " " * 20 + "]"),
        (-80.0, "[" + " " * 40 + "]"),
        (SILENCE_DBFS, "[" + " " * 40 + "]"),
        (-20.0, "[" + "=" * 30 + " " * 10 + "]"),
    ],
)
def test_level_bar(dbfs, bar):
    assert level_bar(dbfs) == bar


def test_level_bar_of_another_width_and_floor():
    assert level_bar(-30.0, width=10, floor_dbfs=-60.0) == "[=====     ]"
    assert level_bar(-59.0, width=10, floor_dbfs=-60.0) == "[          ]"


def test_score_bar_marks_the_peak_and_the_threshold():
    assert score_bar(0.25, 0.75, 0.5, width=8) == "[##  | ^ ]"
    assert score_bar(0.0, 0.0, 0.5, width=8) == "[    |   ]"


def _frame(offset_s, scores, level=-50.0, speech=False, state="listening"):
    return {
        "event": "frame",
        "offset_s": offset_s,
        "scores": scores,
        "speech": speech,
        "state": state,
        "level_dbfs": level,
    }


def test_per_second_maxima_not_one_frames_value():
    seconds = SecondMax()
    lines = []
    for i in range(30):  # 2.4 s of frames; a spike in the middle of the second second
        end = round((i + 1) * 0.08, 2)
        jarvis = 0.85 if i == 18 else 0.01 * (i % 3)
        alexa = 0.3 if i == 5 else 0.0
        level = -20.0 if i in (7, 19) else -55.0
        state = "recording" if i >= 20 else "listening"
        line = seconds.add(
            _frame(end, {"hey_jarvis": jarvis, "alexa": alexa}, level, i % 2 == 0, state)
        )
        if line:
            lines.append(line)
    lines.append(seconds.flush())
    assert seconds.flush() is None  # nothing pending
    assert len(lines) == 3
    first, second, third = lines
    # frames 0-12 start in the first second, 13-24 in the second, 25-29 in the third
    assert first == (
        "      0-1 s  listening  speech  7/13  level max  -20.0 dBFS  max "
        "hey_jarvis=0.020 alexa=0.300"
    )
    assert "hey_jarvis=0.850" in second and "level max  -20.0 dBFS" in second
    assert "alexa=0.000" in second and "speech  6/12" in second and "recording" in second
    assert "hey_jarvis=0.020" in third and "speech  2/5" in third and "-55.0 dBFS" in third


def test_view_off_a_terminal_prints_seconds_and_events_in_order():
    out = io.StringIO()
    view = View(out, tty=False, thresholds={"hey_jarvis": 0.5})
    view.record({"event": "started", "seq": 1, "models": ["hey_jarvis"], "muted": False})
    for i in range(20):
        view.frame(_frame(round((i + 1) * 0.08, 2), {"hey_jarvis": 0.9 if i == 15 else 0.0}))
        if i == 15:
            view.record({"event": "state", "seq": 2, "state": "awake"})  # shown in the lines
            view.record({"event": "wake", "seq": 3, "model": "hey_jarvis", "score": 0.9,
                         "offset_s": 1.28})  # fmt: skip
    view.record({"event": "saved", "seq": 4, "id": "X", "duration_s": 2.5, "end_reason":
                 "silence", "source_offset_s": 1.0, "wake_word": "hey_jarvis"})  # fmt: skip
    view.record({"event": "stopped", "seq": 5, "reason": "eof", "saved": 1})
    view.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "started models=hey_jarvis muted=False"
    assert lines[1].startswith("      0-1 s") and "hey_jarvis=0.000" in lines[1]
    assert lines[2] == "wake word hey_jarvis detected (score 0.900) at 1.28 s"
    assert lines[3] == "saved X: 2.5 s from 1.0 s (silence, wake word hey_jarvis)"
    assert lines[4].startswith("      1-2 s") and "hey_jarvis=0.900" in lines[4]
    assert lines[5] == "stopped reason=eof saved=1"
    assert len(lines) == 6


def test_view_on_a_terminal_redraws_the_level_and_the_bars():
    out = io.StringIO()
    view = View(out, tty=True, thresholds={"hey_jarvis": 0.5})
    view.frame(_frame(0.08, {"hey_jarvis": 0.25}, level=-40.0, speech=True))
    view.record({"event": "wake", "model": "hey_jarvis", "score": 0.7, "offset_s": 0.16})
    view.frame(
        {**_frame(0.16, {"hey_jarvis": 0.0}, level=-80.0), "thresholds": {"hey_jarvis": 0.25}}
    )
    view.record({"event": "stopped", "seq": 9, "reason": "eof", "saved": 0})
    view.close()  # the last event, which no redraw showed, stays under the meter
    assert out.getvalue().endswith("  wake word hey_jarvis detected (score 0.700) at 0.16 s\n"
                                   "  stopped reason=eof saved=0\n")  # fmt: skip
    view.close()
    assert out.getvalue().count("stopped") == 1
    first, second = out.getvalue().split("\x1b[3F")  # up over the 3 lines drawn
    assert "state: listening  VAD: speech" in first
    assert f"     level {level_bar(-40.0)}  -40.0 dBFS" in first
    assert f"hey_jarvis {score_bar(0.25, 0.25, 0.5)} 0.250  peak 0.250" in first
    assert f"     level {level_bar(-80.0)}  -80.0 dBFS" in second
    assert f"hey_jarvis {score_bar(0.0, 0.25, 0.25)} 0.000  peak 0.250" in second  # held
    assert "  wake word hey_jarvis detected (score 0.700) at 0.16 s" in second


def _subscribe(run_dir, command):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(run_dir / control.SOCKET_NAME))
    s.sendall(command + b"\n")
    return s, s.makefile("rb")


def test_the_monitor_stream_carries_frames_only_while_attached(tmp_path):
    threads.WATCH.clear()
    journal = Journal()
    feed = MonitorFeed(lambda: {"hey_jarvis": 0.5})
    sent = []
    frame = Frame(0, np.full(1280, 100, dtype=np.int16))
    server = control.ControlServer(tmp_path / "run", lambda c, p: {"ok": True}, journal, "", feed)
    try:
        feed.send, send = sent.append, feed.send  # count what the loop would hand over
        feed(frame, {"hey_jarvis": 0.1}, False, State.LISTENING)
        assert sent == []  # nobody attached: no record made
        feed.send = send
        events, events_lines = _subscribe(tmp_path / "run", b"events")
        monitor, monitor_lines = _subscribe(tmp_path / "run", b"monitor")
        first = json.loads(monitor_lines.readline())
        assert first["ok"] and first["thresholds"] == {"hey_jarvis": 0.5}
        assert "thresholds" not in json.loads(events_lines.readline())
        wait_for(lambda: feed.attached == 1 and server.subscribers == 2)
        feed(frame, {"hey_jarvis": 0.1}, False, State.LISTENING)
        journal.publish("wake", model="hey_jarvis", score=0.9, offset_s=0.08)
        got = json.loads(monitor_lines.readline())
        assert got["event"] == "frame" and got["scores"] == {"hey_jarvis": 0.1}
        assert got["thresholds"] == {"hey_jarvis": 0.5}  # the first frame's, then only changes
        assert json.loads(monitor_lines.readline())["event"] == "wake"
        assert json.loads(events_lines.readline())["event"] == "wake"  # no frame before it
        monitor_lines.close()
        monitor.close()  # gone: the loop makes no frame records any more
        wait_for(lambda: feed.attached == 0 and server.subscribers == 1)
        events_lines.close()
        events.close()
    finally:
        server.close()
        threads.WATCH.clear()


def test_monitor_takes_models_dir_as_run_does(tmp_path):
    for command in ("run", "monitor"):
        args = cli.build_parser().parse_args([command, "--models-dir", str(tmp_path / "m")])
        assert cli.load_config(args).wake.models_dir == str(tmp_path / "m")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--attach", "--model", "alexa"], "monitor: --model is for a local monitor"),
        (["--attach", "--source", "stdin"], "monitor: --source is for a local monitor"),
        (["--attach", "--patience", "3"], "monitor: --patience is for a local monitor"),
        (["--attach", "--models-dir", "m"], "monitor: --models-dir is for a local monitor"),
        (["--runtime-dir", "r"], "monitor: --runtime-dir goes with --attach"),
    ],
)
def test_monitor_refuses_flags_of_the_other_mode(capsys, argv, message):
    assert cli.main(["monitor", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"recorder: error: {message}")


def test_the_daemons_text_reaches_the_terminal_without_control_characters():
    out = io.StringIO()
    view = View(out, tty=False, thresholds={"hey_jarvis": 0.5})
    view.record({"event": "transcribed", "seq": 3, "text": "turn on\x1b]0;owned\x07 the\nlight"})
    shown = out.getvalue()
    assert "\x1b" not in shown and "\x07" not in shown
    assert "text=turn on?]0;owned? the light" in shown
