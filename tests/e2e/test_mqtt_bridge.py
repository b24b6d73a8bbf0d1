"""The MQTT bridge of docs/handoff.md: its unit verifies with systemd-analyze, may reach the
broker's address only, and its pipeline, run as written against a real daemon with a stand-in
for mosquitto_pub, publishes each event as one JSON line until the daemon stops."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import RECORDER, REPO
from harness import QUIET, REQUEST, Daemon, wait_for

HANDOFF = REPO / "docs" / "handoff.md"
UNIT_NAME = "recorder-mqtt.service"


def documented_unit() -> str:
    """The unit's text as the recipe writes it (`sudo tee .../recorder-mqtt.service <<'EOF'`)."""
    text = HANDOFF.read_text()
    match = re.search(
        rf"tee /etc/systemd/system/{UNIT_NAME} >/dev/null <<'EOF'\n(.*?)\nEOF\n", text, re.S
    )
    assert match, f"{HANDOFF}: no {UNIT_NAME} recipe"
    return match.group(1) + "\n"


def read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in unit.splitlines():
        line = raw.strip()
        if line and line[0] not in "#;[":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_bridge_unit_verifies_and_reaches_only_the_broker(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = tmp_path / UNIT_NAME
    unit.write_text(documented_unit())
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    # `security` reports what `verify` lets pass: a setting it cannot parse.
    proc = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stderr == "", proc.stderr
    exposure = re.search(rf"Overall exposure level for {UNIT_NAME}: (\d+\.\d+)", proc.stdout)
    assert exposure and float(exposure.group(1)) <= 2.0, proc.stdout
    s = settings(unit.read_text())
    (command,) = s["ExecStart"]
    broker = shlex.split(shlex.split(command)[2].split("|")[1])
    assert broker[:2] == ["mosquitto_pub", "-l"]
    assert s["IPAddressDeny"] == ["any"] and s["IPAddressAllow"] == [broker[broker.index("-h") + 1]]
    assert s["DynamicUser"] == ["yes"] and s["Group"] == ["recorder-watch"]
    assert s["NoNewPrivileges"] == ["yes"] and s["CapabilityBoundingSet"] == [""]


def test_the_bridge_pipeline_publishes_every_event_until_the_daemon_stops(tmp_path):
    """The ExecStart's shell line with the recorder's and the socket's paths of this machine,
    and a mosquitto_pub that writes its arguments and every line it is given to a file."""
    bin_dir, published = tmp_path / "bin", tmp_path / "published"
    bin_dir.mkdir()
    fake = bin_dir / "mosquitto_pub"
    fake.write_text(f'#!/bin/sh\necho "$*" > {published}.args\nexec cat >> {published}\n')
    fake.chmod(0o755)
    (command,) = settings(documented_unit())["ExecStart"]
    shell_line = shlex.split(command)[2]
    with Daemon(tmp_path / "d") as d:
        line = shell_line.replace("/usr/local/bin/recorder", str(RECORDER)).replace(
            "/run/recorder", str(d.run_dir)
        )
        assert line != shell_line
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        bridge = subprocess.Popen(["/bin/sh", "-c", line], env=env)
        try:
            wait_for(lambda: d.request("status")["subscribers"] == 1, what="the bridge following")
            d.feed(QUIET + REQUEST + QUIET)
            d.wait_for("a published save", lambda: '"saved"' in read(published), 30)
            d.stop()
            assert bridge.wait(timeout=30) == 0  # the daemon stopped: the unit restarts it
        finally:
            bridge.kill()
            bridge.wait()
    assert (tmp_path / "published.args").read_text().split() == [
        "-l",
        "-h",
        "192.168.1.10",
        "-t",
        "recorder/events",
    ]
    events = [json.loads(x) for x in published.read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names[-1] == "stopped" and "wake" in names and "saved" in names, names
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_the_documented_filter_keeps_the_words_on_the_pi(tmp_path):
    """The drop-in's pipeline, as written, drops `transcribed` and passes every other event."""
    (line,) = [
        raw
        for raw in HANDOFF.read_text().splitlines()
        if raw.startswith("ExecStart=/bin/sh") and "transcribed" in raw
    ]
    shell_line = shlex.split(line.partition("=")[2])[2]
    events = tmp_path / "events.jsonl"
    records = [
        {"event": "saved", "seq": 1, "id": "20261207T080000.000Z", "path": "/x/transcribed.wav"},
        {"event": "transcribed", "seq": 2, "id": "20261207T080000.000Z", "text": "lights on"},
        {"event": "state", "seq": 3, "state": "listening"},
    ]
    events.write_text("".join(json.dumps(r) + "\n" for r in records))
    published = tmp_path / "published"
    piped = shell_line.replace(
        "/usr/local/bin/recorder events --json --runtime-dir /run/recorder", f"cat {events}"
    ).replace("mosquitto_pub -l -h 192.168.1.10 -t recorder/events", f"cat > {published}")
    assert piped != shell_line and "mosquitto_pub" not in piped and "recorder events" not in piped
    subprocess.run(["/bin/sh", "-c", piped], check=True, timeout=30)
    kept = [json.loads(x)["event"] for x in published.read_text().splitlines()]
    assert kept == ["saved", "state"]
