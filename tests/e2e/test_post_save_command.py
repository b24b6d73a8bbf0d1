"""The post-save command: it sees complete files, gets the sidecar on stdin and its facts in its
environment, and a hanging or failing command never delays the next recording nor changes one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
from pathlib import Path

from conftest import AUDIO, recordings, run_recorder
from harness import QUIET, REQUEST, Daemon, wait_for

# The command: its own hash of the audio (read with the standard library), what it got on
# stdin, its argument and environment, written to OUT/<id>.json. With HANG_ONCE present, the
# first call removes it, says so in OUT/hanging.pid and then hangs.
HOOK = textwrap.dedent(
    """\
    #!{python}
    import hashlib, json, os, sys, time, wave
    out = {out!r}
    hang = os.path.join(out, "HANG_ONCE")
    if os.path.exists(hang):
        os.unlink(hang)
        with open(os.path.join(out, "hanging.pid"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)  # hangs until the test kills it
    with wave.open(os.environ["RECORDER_AUDIO"], "rb") as w:
        pcm = w.readframes(w.getnframes())
    result = {{
        "argv": sys.argv[1:],
        "stdin": sys.stdin.read(),
        "id": os.environ["RECORDER_ID"],
        "wake_word": os.environ["RECORDER_WAKE_WORD"],
        "audio": os.environ["RECORDER_AUDIO"],
        "sha256": hashlib.sha256(pcm).hexdigest(),
    }}
    tmp = os.path.join(out, ".tmp")
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, os.path.join(out, result["id"] + ".json"))
    """
)


def hook(tmp: Path) -> tuple[Path, Path]:
    out = tmp / "hook-out"
    out.mkdir()
    script = tmp / "hook.py"
    script.write_text(HOOK.format(python=sys.executable, out=str(out)))
    script.chmod(0o755)
    return script, out


def config(tmp: Path, handoff: str) -> Path:
    path = tmp / "recorder.toml"
    path.write_text(f"[handoff]\n{handoff}\n")
    return path


def test_the_command_sees_the_complete_saved_files(tmp_path):
    script, out = hook(tmp_path)
    cfg = config(tmp_path, f'command = "{script} --from-recorder"')
    proc = run_recorder(
        "run",
        "--config",
        str(cfg),
        "--source",
        f"file:{AUDIO / 'two_requests.wav'}",
        "--recordings",
        str(tmp_path / "rec"),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    saved = recordings(tmp_path / "rec")
    assert len(saved) == 2
    for meta, _samples in saved:
        ran = json.loads((out / f"{meta['id']}.json").read_text())
        sidecar = tmp_path / "rec" / f"{meta['id']}.json"
        assert ran["argv"] == ["--from-recorder", str(sidecar)]
        assert ran["sha256"] == meta["audio_sha256"]  # the whole audio was there
        assert json.loads(ran["stdin"]) == meta
        assert ran["wake_word"] == meta["wake_word"] == "hey_jarvis"
        assert Path(ran["audio"]) == tmp_path / "rec" / meta["audio_file"]
        assert json.loads(sidecar.read_text()) == meta  # the command changed nothing


def test_a_hanging_command_does_not_delay_the_next_recording(tmp_path):
    script, out = hook(tmp_path)
    (out / "HANG_ONCE").touch()
    cfg = config(tmp_path, f'command = "{script}"\ntimeout_s = 600')
    with Daemon(tmp_path, "--config", str(cfg)) as d:
        d.feed(QUIET + REQUEST + QUIET)
        hanging = int(
            wait_for(lambda: (out / "hanging.pid").exists() and (out / "hanging.pid").read_text())
        )
        d.feed(REQUEST + QUIET)  # saved while the first command still hangs
        st = d.status()
        assert st["recordings"] == 2 and st["saved_since_start"] == 2
        os.kill(hanging, 0)  # still hanging
        assert st["handoff"]["commands_run"] == 0
        os.kill(hanging, signal.SIGKILL)  # now the queued hand-off runs
        wait_for(lambda: len(list(out.glob("2*.json"))) == 1)
        # the hand-off counts a command once its process has exited, after it wrote its file
        wait_for(lambda: d.request("status")["handoff"]["commands_run"] == 1)
        st = d.request("status")
        assert st["handoff"]["command_failures"] == 1 and st["handoff"]["commands_run"] == 1
        err = d.stop()
    assert "hand-off command for" in err and "exit status -9" in err
    saved = recordings(d.rec)
    assert len(saved) == 2  # the failed hand-off lost and changed nothing
    ran = json.loads(next(out.glob("2*.json")).read_text())
    assert ran["sha256"] == next(m for m, _ in saved if m["id"] == ran["id"])["audio_sha256"]


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    child_pid = tmp_path / "child.pid"
    script = tmp_path / "slow.sh"
    script.write_text(f"#!/bin/sh\nsleep 3600 &\necho $! > {child_pid}\nwait\n")
    script.chmod(0o755)
    cfg = config(tmp_path, f'command = "{script}"\ntimeout_s = 1')
    proc = run_recorder(
        "run",
        "--config",
        str(cfg),
        "--source",
        f"file:{AUDIO / 'jarvis_pause_command.wav'}",
        "--recordings",
        str(tmp_path / "rec"),
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "killed after 1 s (timeout_s)" in err
    pid = int(child_pid.read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or zombie(pid))  # killed too
    [(meta, samples)] = recordings(tmp_path / "rec")
    assert len(samples) == meta["samples"]


def test_bad_handoff_and_control_values_stop_the_start(tmp_path):
    source = f"file:{AUDIO / 'jarvis_bare.wav'}"
    not_executable = tmp_path / "hook.txt"
    not_executable.write_text("echo\n")
    cases = {
        'wyoming = "tcp://127.0.0.1:10300"': "opens no network socket",
        'wyoming = "http://stt.local/"': "opens no network socket",
        'wyoming = "smb://x/y"': "unknown scheme",
        'wyoming = "unix://relative.sock"': "must be absolute",
        'keep_audio = "never"': "keep_audio: must be one of",
        'keep_audio = "until_transcribed"': "needs [handoff] wyoming",
        'command = "/nonexistent/hook --x"': "/nonexistent/hook: no such file",
        f'command = "{not_executable}"': "not executable",
        'command = "no-such-program-here"': "not found on $PATH",
        'command = "unbalanced \\"quote"': "cannot parse",
    }
    for line, message in cases.items():
        cfg = config(tmp_path, line)
        proc = run_recorder(
            "run", "--config", str(cfg), "--source", source, "--recordings", str(tmp_path / "rec")
        )
        err = proc.stderr.decode()
        assert proc.returncode == 2, (line, err)
        assert len(err.strip().splitlines()) == 1 and message in err, (line, err)
        assert "[handoff]" in err
        assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir())
    cfg = tmp_path / "group.toml"
    cfg.write_text('[control]\ngroup = "no-such-group-here"\n')
    proc = run_recorder(
        "run", "--config", str(cfg), "--source", source, "--recordings", str(tmp_path / "rec")
    )
    assert proc.returncode == 2
    assert proc.stderr.decode().strip() == (
        "recorder: error: [control] group: no group named 'no-such-group-here' on this system"
    )


def test_a_stop_signal_does_not_wait_for_a_hanging_command(tmp_path):
    script, out = hook(tmp_path)
    (out / "HANG_ONCE").touch()
    cfg = config(tmp_path, f'command = "{script}"\ntimeout_s = 600')
    with Daemon(tmp_path, "--config", str(cfg)) as d:
        d.feed(QUIET + REQUEST + QUIET)
        hanging = int(
            wait_for(lambda: (out / "hanging.pid").exists() and (out / "hanging.pid").read_text())
        )
        err = d.stop()  # SIGTERM: the daemon exits 0 without waiting the 600 s
    assert "killed the running command" in err
    wait_for(lambda: not Path(f"/proc/{hanging}").exists() or zombie(hanging))
    assert len(recordings(d.rec)) == 1


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
