"""Retention limits and deletion: oldest first, at start and after each save, never half a pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import AUDIO, recordings, run_recorder

from recorder.storage import Storage

NOW = datetime.now(UTC)


def seed(directory: Path, ages_h: list[float], seconds: float = 1.0) -> list[str]:
    """Recordings that started `ages_h` hours ago, oldest first; returns their ids."""
    s = Storage(directory)
    s.prepare()
    ids = []
    for age in sorted(ages_h, reverse=True):
        t = NOW - timedelta(hours=age)
        rid = t.strftime("%Y%m%dT%H%M%S.000Z")
        audio = np.zeros(int(16000 * seconds), dtype=np.int16)
        ids.append(s.save(rid, audio, {"started_at": t.isoformat().replace("+00:00", "Z")}).id)
    return ids


def ids_in(directory: Path) -> list[str]:
    wavs = sorted(p.stem for p in directory.glob("*.wav"))
    sidecars = sorted(p.stem for p in directory.glob("*.json"))
    assert wavs == sidecars  # never a WAV without its sidecar or the reverse
    return wavs


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text("[storage]\n" + body)
    return path


@pytest.mark.parametrize(
    "limits, keep",
    [
        ("max_count = 2\n", [1, 0.5]),
        ('max_age = "1d"\n', [5, 1, 0.5]),
        ('max_age = "90m"\n', [1, 0.5]),
        ("max_total_mb = 0.07\n", [1, 0.5]),  # each recording is ~32 kB
        ('max_count = 3\nmax_age = "2d"\n', [5, 1, 0.5]),
    ],
)
def test_prune_deletes_oldest_first(tmp_path, limits, keep):
    rec = tmp_path / "rec"
    ids = seed(rec, [72, 30, 5, 1, 0.5])
    by_age = dict(zip([72, 30, 5, 1, 0.5], ids, strict=True))
    proc = run_recorder(
        "prune", "--config", str(config(tmp_path, limits)), "--recordings", str(rec)
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert ids_in(rec) == sorted(by_age[a] for a in keep)


@pytest.mark.parametrize(
    "limits, keep_days",
    [("", [29, 0.1]), ('max_age = "0"\n', [31, 29, 0.1]), ('max_age = ""\n', [31, 29, 0.1])],
)
def test_recordings_are_kept_30_days_unless_told_otherwise(tmp_path, limits, keep_days):
    rec = tmp_path / "rec"
    ids = seed(rec, [31 * 24, 29 * 24, 0.1 * 24])
    by_age = dict(zip([31, 29, 0.1], ids, strict=True))
    proc = run_recorder(
        "prune", "--config", str(config(tmp_path, limits)), "--recordings", str(rec)
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert ids_in(rec) == sorted(by_age[d] for d in keep_days)


def test_limits_apply_at_start_and_after_each_save(tmp_path):
    rec = tmp_path / "rec"
    seed(rec, [3, 2])
    proc = run_recorder(
        "run",
        "--source",
        f"file:{AUDIO / 'two_requests.wav'}",
        "--recordings",
        str(rec),
        "--config",
        str(config(tmp_path, "max_count = 1\n")),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    [(meta, _)] = recordings(rec)
    assert meta["source_offset_s"] > 7  # the second request of the file: the newest
    # at start (the older seed), after the first save (the other seed), after the second
    assert proc.stderr.decode().count("retention deleted") == 3


def test_delete_by_id_age_and_all(tmp_path):
    rec = tmp_path / "rec"
    ids = seed(rec, [50, 20, 3, 1])
    args = ["--recordings", str(rec)]
    assert run_recorder("delete", ids[1], *args).returncode == 0
    assert ids_in(rec) == [ids[0], ids[2], ids[3]]
    assert run_recorder("delete", "--older-than", "2h", *args).returncode == 0
    assert ids_in(rec) == [ids[3]]
    assert run_recorder("delete", "--all", *args).returncode == 0
    assert ids_in(rec) == []


@pytest.mark.parametrize(
    "args, culprit",
    [
        (["nope"], "nope"),
        ([], "--all"),
        (["--older-than", "soon"], "soon"),
    ],
)
def test_bad_delete_requests_change_nothing(tmp_path, args, culprit):
    rec = tmp_path / "rec"
    ids = seed(rec, [2, 1])
    proc = run_recorder("delete", *args, "--recordings", str(rec))
    assert proc.returncode == 2
    line = proc.stderr.decode().strip()
    assert "\n" not in line and culprit in line
    assert ids_in(rec) == ids


def test_bad_retention_value_is_a_config_error(tmp_path):
    proc = run_recorder("prune", "--config", str(config(tmp_path, 'max_age = "forever"\n')))
    assert proc.returncode == 2 and b"max_age" in proc.stderr
