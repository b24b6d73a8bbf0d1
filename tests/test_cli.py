"""The command line in-process: parsing, flags into the configuration, one-line errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from conftest import AUDIO
from listening import modules_at_listening

from recorder import __version__, cli
from recorder.storage import Storage


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_every_command_is_wired_to_a_handler():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)
    assert all(callable(cli.handler(name)) for name in cli.COMMANDS)


def test_run_flags_reach_the_configuration(tmp_path):
    args = parse(
        "run",
        "--source",
        "file:x.wav",
        "--model",
        "alexa",
        "--model",
        "hey_jarvis",
        "--threshold",
        "0.4",
        "--recordings",
        str(tmp_path / "rec"),
        "--indicator-command",
        "led",
        "--log-level",
        "debug",
        "--realtime",
    )
    config = cli.load_config(args)
    assert config.audio.source.endswith("x.wav") and config.audio.realtime
    assert config.wake.models == ("alexa", "hey_jarvis") and config.wake.threshold == 0.4
    assert config.storage.directory == str(tmp_path / "rec")
    assert (config.indicator.command, config.log.level) == ("led", "debug")


def test_monitor_paces_a_file_in_real_time_and_list_takes_only_its_own_flags(tmp_path):
    assert cli.load_config(parse("monitor", "--source", "file:x.wav")).audio.realtime
    config = cli.load_config(parse("list", "--recordings", str(tmp_path)))
    assert config.storage.directory == str(tmp_path) and config.audio.source == "mic"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fly"], "invalid choice: 'fly'"),
        (["run", "--threshold", "abc"], "invalid float value: 'abc'"),
        (["run", "--threshold", "1.5"], "[wake] threshold: must be above 0.0 and at most 1.0"),
        (["list", "--config", "/no/such.toml"], "/no/such.toml: no such config file"),
        (["delete"], "give recording ids, --older-than DURATION or --all"),
        (["score", "--jobs", "0", "x.wav"], "--jobs: must be a whole number of at least 1"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("recorder: error: ") and message in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"recorder {__version__}"


def all_parsers(parser: argparse.ArgumentParser, prefix: str = "recorder"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_parsers(sub, f"{prefix} {name}")


def test_every_option_of_every_command_has_help_text():
    missing = []
    for name, parser in all_parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{name} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_a_command_alone_has_the_same_parser_as_in_the_whole_command_line():
    whole = {name: p.format_help() for name, p in all_parsers(cli.build_parser())}
    for command in cli.COMMANDS:
        alone = {name: p.format_help() for name, p in all_parsers(cli.build_parser([command]))}
        assert f"recorder {command}" in alone
        assert {n: h for n, h in alone.items() if n != "recorder"}.items() <= whole.items()


NOT_BEFORE_LISTENING = {
    *("recorder.cli_recordings", "recorder.cli_setup", "recorder.doctor"),
    *(f"recorder.tools.{m}" for m in ("score", "tune", "calibrate", "enroll", "monitor")),
    *(f"recorder.tools.{m}" for m in ("events", "transcribe", "train_verifier", "export")),
    *("recorder.calibration", "recorder.activations", "recorder.near_misses", "recorder.stt"),
    *("recorder.handoff", "recorder.sources.mic", "sounddevice", "recorder.indicators.chime"),
    *("tempfile", "statistics", "importlib.resources"),
    *("_hashlib", "shutil", "subprocess", "zipfile", "bz2", "lzma"),
}
"""What `recorder run` on a file, with no hand-off, calibration, activations, chime or indicator
command, does without. OpenSSL (`_hashlib`) among them: its hashes are CPython's own."""


def test_run_on_a_file_listens_without_the_other_commands_and_the_unused_parts(tmp_path):
    argv = ["run", "--source", f"file:{AUDIO / 'speech_then_wake.wav'}", "--model", "hey_jarvis"]
    argv += ["--recordings", str(tmp_path / "rec"), "--state-dir", str(tmp_path / "state")]
    argv += ["--runtime-dir", str(tmp_path / "run")]
    modules = modules_at_listening(argv)
    assert {"recorder.daemon", "recorder.sources.file", "onnxruntime"} <= modules
    assert modules & NOT_BEFORE_LISTENING == set()


def test_delete_all_asks_on_a_terminal(tmp_path, monkeypatch, capsys):
    storage = Storage(tmp_path / "rec")
    storage.prepare()
    storage.save("20260101T000000.000Z", np.zeros(160, dtype=np.int16), {"started_at": "x"})

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert cli.main(["delete", "--all", "--recordings", str(tmp_path / "rec")]) == 1
    assert len(storage.list()) == 1 and "nothing deleted" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert cli.main(["delete", "--all", "--recordings", str(tmp_path / "rec")]) == 0
    assert storage.list() == []


def test_models_list_json(capsys, manifest):
    assert cli.main(["models", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["hey_jarvis"]["status"] == "ok" and rows["hey_jarvis"]["kind"] == "wake word"
    assert rows["melspectrogram"]["licence"].startswith("Apache")


def test_journal_stream_must_name_the_stream_itself(tmp_path, monkeypatch):
    import logging
    import os

    from recorder.cli_args import (
        JournalFormatter,
        journal_priority,
        log_formatter,
        stderr_is_journal,
    )

    with open(tmp_path / "err", "w") as f, open(tmp_path / "other", "w") as other:
        st, st_other = os.fstat(f.fileno()), os.fstat(other.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert stderr_is_journal(f) and isinstance(log_formatter(f), JournalFormatter)
        assert not stderr_is_journal(other)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st_other.st_dev}:{st_other.st_ino}")
        assert not stderr_is_journal(f) and stderr_is_journal(other)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not stderr_is_journal(f)
    record = logging.LogRecord("recorder", logging.ERROR, "", 0, "a\nb", None, None)
    assert JournalFormatter("%(levelname)s %(message)s").format(record) == "<3>ERROR a\n<3>b"
    levels = [logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG]
    assert [journal_priority(n) for n in levels] == [3, 3, 4, 6, 7]


def test_help_is_as_wide_as_columns_says(monkeypatch):
    """The width argparse would have asked shutil for, asked without it."""
    widths = {}
    for columns in (60, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        helps = dict((n, p.format_help()) for n, p in all_parsers(cli.build_parser(["run"])))
        widths[columns] = max(len(line) for line in helps["recorder run"].splitlines())
    assert widths[60] <= 60 < 80 < widths[200] <= 200
