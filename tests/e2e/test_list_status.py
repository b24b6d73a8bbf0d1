"""`recorder list` and `recorder status` as a person and a script read them, on real recordings:
a plain one, one whose audio was dropped after it was kept, a sealed one and a transcribed one
(from the local Wyoming server), and a running daemon's status."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from conftest import AUDIO, run_recorder
from harness import QUIET, REQUEST, Daemon, stt_server

from recorder import human
from recorder.storage import Storage

LIST_KEYS = [
    "id",
    "started_at",
    "wake_word",
    "score",
    "duration_s",
    "end_reason",
    "transcript",
    "sealed",
    "audio",
    "audio_deleted",
    "size_bytes",
    "sidecar",
    "meta",
]
HEADER = ["ID", "TIME", "WAKE WORD", "SCORE", "LENGTH", "TRANSCRIPT OR AUDIO"]
ROW = re.compile(
    r"^(?P<id>\S+)  (?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  (?P<wake>\S+) +"
    r"(?P<score>-|\d\.\d{3})  +(?P<length>\d+\.\d s)  (?P<what>.+)$"
)


def run_file(scene: str, rec: Path, *extra: str) -> None:
    proc = run_recorder(
        "run", "--source", f"file:{AUDIO / scene}", "--recordings", str(rec), *extra
    )
    assert proc.returncode == 0, proc.stderr.decode()


def listed(rec: Path) -> tuple[list[str], list[dict]]:
    text = run_recorder("list", "--recordings", str(rec))
    assert text.returncode == 0, text.stderr.decode()
    as_json = run_recorder("list", "--json", "--recordings", str(rec))
    assert as_json.returncode == 0, as_json.stderr.decode()
    return text.stdout.decode().splitlines(), json.loads(as_json.stdout)


def check_table(lines: list[str], entries: list[dict]) -> list[dict[str, str]]:
    """The header's columns start where the rows' do; one row per entry, in its order, with its
    local time and score; the totals add up. Returns the rows' cells."""
    header, *rows, totals = lines
    assert re.split(r"  +", header) == HEADER
    cells = []
    for line, e in zip(rows, entries, strict=True):
        m = ROW.match(line)
        assert m, line
        assert m["id"] == e["id"] and line.index(m["time"]) == header.index("TIME")
        assert line.index(m["what"]) == header.index("TRANSCRIPT OR AUDIO"), (header, line)
        local = datetime.fromisoformat(e["started_at"])
        assert local.utcoffset() == local.astimezone().utcoffset()  # the local zone's offset
        assert m["time"] == local.strftime("%Y-%m-%d %H:%M:%S")
        assert m["score"] == ("-" if e["score"] is None else f"{e['score']:.3f}")
        cells.append(m.groupdict())
    n = len(entries)
    total_s = sum(e["duration_s"] for e in entries)
    assert totals.startswith(f"{n} recording{'' if n == 1 else 's'}, {human.duration(total_s)}, ")
    assert sum(e["size_bytes"] for e in entries) == sum(
        p.stat().st_size for p in Path(entries[0]["sidecar"]).parent.iterdir()
    )
    return cells


@pytest.fixture
def key(tmp_path: Path) -> str:
    proc = run_recorder("keygen")
    assert proc.returncode == 0, proc.stderr.decode()
    match = re.search(r"# recipient: (age1\w+)", proc.stdout.decode())
    assert match
    return match.group(1)


def test_list_shows_audio_a_dropped_one_and_a_sealed_one(tmp_path, key):
    rec = tmp_path / "rec"
    run_file("two_requests.wav", rec)
    sealed_cfg = tmp_path / "sealed.toml"
    sealed_cfg.write_text(f'[storage]\nencrypt_to = ["{key}"]\n')
    run_file("jarvis_pause_command.wav", rec, "--config", str(sealed_cfg))
    storage = Storage(rec)
    first = storage.list()[0]
    storage.drop_audio(first, "retention test")
    lines, entries = listed(rec)
    assert [list(e) for e in entries] == [LIST_KEYS] * 3
    [dropped] = [e for e in entries if e["id"] == first.id]
    [kept] = [e for e in entries if not e["sealed"] and e["id"] != first.id]
    [sealed] = [e for e in entries if e["sealed"]]

    assert dropped["id"] == first.id and dropped["audio"] is None
    assert dropped["audio_deleted"] == "retention test" and not list(rec.glob(f"{first.id}.wav"))
    assert dropped["wake_word"] == "hey_jarvis" and 0.5 <= dropped["score"] <= 1
    assert Path(kept["audio"]).is_file() and kept["audio"].endswith(f"{kept['id']}.wav")
    assert kept["audio_deleted"] is None and kept["transcript"] is None
    assert kept["end_reason"] == "silence" and 1 < kept["duration_s"] < 10
    assert kept["meta"] == json.loads(Path(kept["sidecar"]).read_text())
    # a sealed request's index holds its time and length, not its words or scores
    assert sealed["audio"].endswith(f"{sealed['id']}.wav.age") and Path(sealed["audio"]).is_file()
    assert sealed["wake_word"] is None and sealed["score"] is None and sealed["duration_s"] > 1

    cells = {c["id"]: c for c in check_table(lines, entries)}
    assert cells[dropped["id"]]["what"] == "(audio deleted)"
    assert cells[dropped["id"]]["wake"] == "hey_jarvis"
    assert cells[kept["id"]]["what"] == kept["audio"]
    assert cells[sealed["id"]]["what"] == "(sealed)" and cells[sealed["id"]]["wake"] == "-"
    assert lines[-1].startswith("3 recordings, ")


def test_list_shows_the_transcript(tmp_path):
    pytest.importorskip("wyoming")
    sock = tmp_path / "stt.sock"
    cfg = tmp_path / "recorder.toml"
    cfg.write_text(f'[handoff]\nwyoming = "unix://{sock}"\n')
    with stt_server(sock):
        run_file("alexa_command.wav", tmp_path / "rec", "--config", str(cfg), "--model", "alexa")
    lines, [entry] = listed(tmp_path / "rec")
    text = entry["meta"]["transcript"]["text"]
    assert "music" in text.split() and entry["transcript"] == text
    assert entry["wake_word"] == "alexa" and Path(entry["audio"]).is_file()
    [cells] = check_table(lines, [entry])
    assert cells["what"] == text and cells["wake"] == "alexa"


def test_list_of_nothing_says_so(tmp_path):
    proc = run_recorder("list", "--recordings", str(tmp_path / "rec"))
    assert proc.returncode == 0 and proc.stdout == b"" and b"no recordings" in proc.stderr
    proc = run_recorder("list", "--json", "--recordings", str(tmp_path / "rec"))
    assert json.loads(proc.stdout) == []


def test_status_of_a_running_daemon_is_aligned_lines(tmp_path):
    with Daemon(tmp_path) as d:
        d.feed(QUIET + REQUEST + QUIET)
        raw = d.status()
        proc = d.cli("status")
        assert proc.returncode == 0, proc.stderr.decode()
        lines = proc.stdout.decode().splitlines()
    fields = dict(re.match(r"^([a-z -]+): +(.*)$", line).groups() for line in lines)  # type: ignore[union-attr]
    assert len({len(line) - len(line[line.index(":") + 1 :].lstrip()) for line in lines}) == 1
    assert fields["state"] == "listening" and fields["muted"] == "no"
    assert fields["running"] == f"yes (pid {raw['pid']})"
    assert fields["models"] == "hey_jarvis" and fields["source"] == "stdin"
    assert re.fullmatch(r"\d+\.\d s|\d+ s|\d+ min \d\d s", fields["uptime"]), fields
    assert re.fullmatch(r"\d+\.\d s ago \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)", fields["last audio"])
    assert raw["recordings"] == 1 and raw["recordings_bytes"] > 44
    assert re.fullmatch(rf"1 \(\d+\.\d kB\) in {re.escape(str(d.rec))}", fields["recordings"])
    assert fields["saved since start"] == "1"
    assert not any("True" in line or "False" in line or "[" in line for line in lines), lines


def test_status_without_a_daemon_exits_3_and_says_so(tmp_path):
    where = ["--runtime-dir", str(tmp_path / "run"), "--state-dir", str(tmp_path / "state")]
    assert run_recorder("mute", *where).returncode == 0
    proc = run_recorder("status", *where)
    assert proc.returncode == 3
    assert proc.stdout.decode().splitlines() == [
        "state:   off",
        "running: no (no daemon answered on its control socket)",
        "muted:   yes",
    ]
    helped = run_recorder("status", "--help").stdout.decode()
    assert "Exit status: 0 a daemon answered; 3 no daemon is running" in " ".join(helped.split())
