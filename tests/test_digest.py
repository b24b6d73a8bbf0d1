"""SHA-256 without OpenSSL, and the hashes of unchanged files remembered across starts."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from recorder import digest


@pytest.fixture
def fresh(monkeypatch):
    """A process's view: nothing hashed yet, no store, files remembered as soon as hashed."""
    monkeypatch.setattr(digest, "_hashed", {})
    monkeypatch.setattr(digest, "_store", None)
    monkeypatch.setattr(digest, "SETTLED_NS", 0)


def identity(path) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def test_the_hashes_are_sha256s(tmp_path):
    assert "openssl" not in repr(digest.sha256).lower()
    for size in (0, 1, 63, 64, 65, digest.BLOCK - 1, digest.BLOCK + 1, 3 * (1 << 20) + 7):
        data = os.urandom(size)
        (tmp_path / "f").write_bytes(data)
        assert digest.hexdigest(data) == hashlib.sha256(data).hexdigest()
        assert digest.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def counting(monkeypatch) -> list[int]:
    """The hashes `digest` computes from now on, counted."""
    made: list[int] = []
    real = digest.sha256

    def sha256(*args):
        made.append(1)
        return real(*args)

    monkeypatch.setattr(digest, "sha256", sha256)
    return made


def test_a_file_rewritten_in_place_is_hashed_again(tmp_path, fresh, monkeypatch):
    made = counting(monkeypatch)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"a" * 1000)
    first = digest.sha256_file(path)
    assert digest.sha256_file(path) == first and len(made) == 1  # not read the second time
    before = os.stat(path).st_mtime_ns
    with open(path, "r+b") as f:
        f.write(b"b")
    os.utime(path, ns=(before + 1, before + 1))  # whatever the clock's tick: another time
    assert digest.sha256_file(path) == hashlib.sha256(b"b" + b"a" * 999).hexdigest()


def test_a_file_changed_just_now_is_not_remembered(tmp_path, monkeypatch, fresh):
    monkeypatch.setattr(digest, "SETTLED_NS", 2_000_000_000)
    digest.keep_in(tmp_path)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"a" * 1000)
    digest.sha256_file(path)
    assert digest._hashed == {} and not (tmp_path / digest.STORE).exists()


def test_a_file_changed_while_it_is_read_is_not_remembered(tmp_path, fresh, monkeypatch):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"a" * 1000)
    real = digest.sha256

    class Rewritten:  # the file is rewritten, the same size, while it is being hashed
        def __init__(self):
            self.h = real()

        def update(self, block):
            before = os.stat(path).st_mtime_ns
            path.write_bytes(b"b" * 1000)
            os.utime(path, ns=(before + 1, before + 1))  # whatever the clock's tick
            self.h.update(block)

        def hexdigest(self):
            return self.h.hexdigest()

    monkeypatch.setattr(digest, "sha256", Rewritten)
    digest.sha256_file(path)
    assert digest._hashed == {}
    monkeypatch.setattr(digest, "sha256", real)
    assert digest.sha256_file(path) == hashlib.sha256(b"b" * 1000).hexdigest()


@pytest.mark.skipif(os.geteuid() != 0, reason="root's own rule")
def test_root_remembers_only_its_own_files(tmp_path, fresh):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"a" * 1000)
    os.chown(path, 65534, 65534)
    digest.sha256_file(path)
    assert digest._hashed == {}
    os.chown(path, 0, 0)
    digest.sha256_file(path)
    assert list(digest._hashed) == [tuple(identity(path))]


def test_the_next_start_takes_the_remembered_hash_without_reading_the_file(tmp_path, fresh):
    store = tmp_path / "cache"
    store.mkdir(mode=0o700)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights" * 1000)
    digest.keep_in(store)
    assert digest.sha256_file(model) == hashlib.sha256(b"weights" * 1000).hexdigest()
    saved = json.loads((store / digest.STORE).read_bytes())
    assert [identity(model) + [hashlib.sha256(b"weights" * 1000).hexdigest()]] == saved["files"]
    assert oct(os.stat(store / digest.STORE).st_mode & 0o777) == "0o600"

    # the next process: the file as it was is not read (a hash the store says wins)
    rows = [identity(model) + ["ab" * 32]]
    saved = {"format": digest.FORMAT, "files": rows, "sha256": digest._rows_sha256(rows)}
    (store / digest.STORE).write_text(json.dumps(saved))
    digest._hashed.clear()
    digest.keep_in(store)
    assert digest.sha256_file(model) == "ab" * 32


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.replace('"format": 1', '"format": 2'),
        lambda s: s.replace("abab", "abac", 1),  # a row changed, not its hash
        lambda s: s[:-5],
        lambda s: s.replace('"files": [[', '"files": [["1", '),
        lambda s: "[]",
        lambda s: "[" * 10000,  # deeper than the JSON parser goes
        lambda s: s[:-1] + " " * digest.MAX_STORE + "}",
    ],
)
def test_a_damaged_store_means_reading_the_files_again(tmp_path, fresh, damage):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights")
    rows = [identity(model) + ["ab" * 32]]
    saved = {"format": digest.FORMAT, "files": rows, "sha256": digest._rows_sha256(rows)}
    (tmp_path / digest.STORE).write_text(damage(json.dumps(saved)))
    digest.keep_in(tmp_path)
    assert digest.sha256_file(model) == hashlib.sha256(b"weights").hexdigest()


def test_only_the_newest_files_are_remembered(tmp_path, fresh):
    digest.keep_in(tmp_path)
    for i in range(digest.KEEP + 6):
        (tmp_path / f"m{i}").write_bytes(b"%d" % i)
        digest.sha256_file(tmp_path / f"m{i}")
    rows = json.loads((tmp_path / digest.STORE).read_bytes())["files"]
    assert len(rows) == digest.KEEP
    assert rows[-1][:5] == identity(tmp_path / f"m{digest.KEEP + 5}")
    assert rows[0][:5] == identity(tmp_path / "m6")


def test_a_store_that_cannot_be_written_costs_nothing_else(tmp_path, fresh):
    digest.keep_in(tmp_path / "gone")  # no such directory
    (tmp_path / "m").write_bytes(b"x")
    assert digest.sha256_file(tmp_path / "m") == hashlib.sha256(b"x").hexdigest()
