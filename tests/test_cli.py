"""The command line in-process: parsing, flags into the configuration, one-line errors."""

from __future__ import annotations

import argparse

import pytest

from recorder import __version__, cli


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_every_command_is_wired_to_a_handler():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.COMMANDS)


def test_run_flags_reach_the_configuration(tmp_path):
    args = parse("run", "--source", "file:x.wav", "--model", "alexa", "--model", "hey_jarvis",
                 "--threshold", "0.4", "--recordings", str(tmp_path / "rec"),
                 "--indicator-command", "led", "--log-level", "debug", "--realtime")
    config = cli.load_config(args)
    assert config.audio.source.endswith("x.wav") and config.audio.realtime
    assert config.wake.models == ("alexa", "hey_jarvis") and config.wake.threshold == 0.4
    assert config.storage.directory == str(tmp_path / "rec")
    assert (config.indicator.command, config.log.level) == ("led", "debug")


def test_monitor_paces_a_file_in_real_time_and_list_takes_only_its_own_flags(tmp_path):
    assert cli.load_config(parse("monitor", "--source", "file:x.wav")).audio.realtime
    config = cli.load_config(parse("list", "--recordings", str(tmp_path)))
    assert config.storage.directory == str(tmp_path) and config.audio.source == "mic"


@pytest.mark.parametrize("argv, message", [
    (["fly"], "invalid choice: 'fly'"),
    (["run", "--threshold", "abc"], "invalid float value: 'abc'"),
    (["run", "--threshold", "1.5"], "[wake] threshold: must be above 0.0 and at most 1.0"),
    (["list", "--config", "/no/such.toml"], "/no/such.toml: no such config file"),
    (["delete"], "give recording ids, --older-than DURATION or --all"),
    (["score", "--jobs", "0", "x.wav"], "--jobs: must be a whole number of at least 1"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("recorder: error: ") and message in err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"recorder {__version__}"
