"""Loading and checking the TOML configuration, and applying command-line flags to it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import REPO

from recorder import config as config_mod
from recorder.config import (
    Config,
    IndicatorConfig,
    ModelOverride,
    WakeConfig,
    parse_duration,
    with_overrides,
)
from recorder.errors import RecorderError
from recorder.machine import State

SHIPPED = REPO / "config" / "recorder.toml"


def load_text(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config_mod.load(path)


def test_no_file_gives_the_defaults():
    assert config_mod.load(None) == dataclasses.replace(Config(), base_dir=Path.cwd())


def test_the_shipped_config_loads_and_documents_every_key():
    shipped = config_mod.load(SHIPPED)
    assert shipped.indicator == IndicatorConfig()
    text = SHIPPED.read_text()
    for section in ("audio", "wake", "vad", "storage", "indicator", "log"):
        cls = type(getattr(Config(), section))
        for f in dataclasses.fields(cls):
            assert f.name in text, f"[{section}] {f.name}"


def test_relative_paths_are_relative_to_the_file(tmp_path):
    config = load_text(tmp_path, '[storage]\ndirectory = "rec"\n[indicator]\nstate_file = "s"\n')
    assert config.path(config.storage.directory) == tmp_path / "rec"
    assert config.path("/abs/x") == Path("/abs/x")


@pytest.mark.parametrize(
    "text, culprit",
    [
        ("[wake\n", "invalid TOML"),
        ("[speaker]\nx = 1\n", "unknown section [speaker]"),
        ("[vad]\nsilence = 0.8\n", "[vad]: unknown key 'silence'"),
        ("[wake]\nthreshold = 0\n", "[wake] threshold: must be above 0.0 and at most 1.0"),
        ("[wake]\nthreshold = true\n", "[wake] threshold: must be a number"),
        ('[wake]\nmodels = "hey_jarvis"\n', "[wake] models: must be a list of strings"),
        ("[wake]\nmodels = []\n", "[wake] models: at least one model is needed"),
        ("[wake.per_model.alexa]\nthreshold = 2\n", "[wake] per_model.alexa threshold"),
        ("[wake.per_model.alexa]\nlevel = 2\n", "unknown key 'level'"),
        ("[vad]\nmax_length_s = 0.1\nmin_speech_s = 0.5\n", "max_length_s: must be at least"),
        ('[storage]\nmax_age = "soon"\n', "[storage] max_age: 'soon' is not a duration"),
        ('[log]\nlevel = "loud"\n', "[log] level: must be one of"),
        ("audio = 3\n", "[audio]: must be a table"),
    ],
)
def test_errors_name_the_file_section_and_key(tmp_path, text, culprit):
    with pytest.raises(RecorderError) as e:
        load_text(tmp_path, text)
    assert culprit in str(e.value) and "\n" not in str(e.value)
    assert str(tmp_path / "c.toml") in str(e.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(RecorderError, match="no such config file"):
        config_mod.load(tmp_path / "absent.toml")
    with pytest.raises(RecorderError, match="cannot read config"):
        config_mod.load(tmp_path)
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(RecorderError, match="cannot read config"):
        config_mod.load(tmp_path / "latin1.toml")


def test_per_model_overrides_apply_to_a_model_and_its_classes():
    wake = WakeConfig(
        threshold=0.5,
        patience=1,
        per_model={"alexa": ModelOverride(threshold=0.3), "multi:yes": ModelOverride(patience=3)},
    )
    assert wake.threshold_for("alexa") == 0.3 and wake.threshold_for("hey_jarvis") == 0.5
    assert wake.threshold_for("alexa:wake") == 0.3  # a class of the model
    assert wake.patience_for("multi:yes") == 3 and wake.patience_for("multi:no") == 1


def test_flags_override_the_file_and_are_checked(tmp_path):
    config = load_text(
        tmp_path, "[wake]\nthreshold = 0.6\n[wake.per_model.alexa]\nthreshold = 0.2\n"
    )
    out = with_overrides(
        config,
        recordings=Path("~/rec"),
        source="file:~/a.wav",
        realtime=True,
        models=["alexa", "hey_jarvis"],
        threshold=0.7,
        indicator_command="led",
        log_level="debug",
    )
    assert out.storage.directory == str(Path.home() / "rec")
    assert out.audio == config_mod.AudioConfig(source=f"file:{Path.home()}/a.wav", realtime=True)
    assert out.wake.models == ("alexa", "hey_jarvis")
    assert out.wake.threshold_for("alexa") == 0.7  # --threshold wins over per-model values
    assert (out.indicator.command, out.log.level) == ("led", "debug")
    assert with_overrides(config) == config
    with pytest.raises(RecorderError, match=r"command line: \[wake\] threshold"):
        with_overrides(config, threshold=1.5)


def test_the_patience_flag_wins_over_per_model_values(tmp_path):
    config = load_text(tmp_path, "[wake.per_model.alexa]\npatience = 3\n")
    assert config.wake.patience_for("alexa") == 3
    out = with_overrides(config, patience=2)
    assert (out.wake.patience_for("alexa"), out.wake.patience_for("hey_jarvis")) == (2, 2)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("30d", 2592000),
        ("2w", 1209600),
        ("1.5h", 5400),
        (" 2D ", 172800),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "3 days", "nan", "1y"])
def test_bad_durations(text):
    with pytest.raises(RecorderError, match="x: .* is not a duration"):
        parse_duration(text, "x")


def test_the_lights_keys_are_parsed_here():
    ind = IndicatorConfig(
        gpio_led=5,
        gpio_listening="pulse",
        apa102={"leds": 12, "power_pin": 6, "colors": {"muted": "#00ff00"}},
    )
    assert ind.led_patterns()[State.LISTENING] == "pulse"
    settings = ind.apa102_settings()
    assert settings is not None and settings.leds == 12 and settings.power_pin == 6
    assert settings.color(State.MUTED) == (0, 255, 0)
    assert settings.color(State.RECORDING) == (0, 0, 255)  # the default stays
    assert IndicatorConfig().apa102_settings() is None


@pytest.mark.parametrize(
    "body, culprit",
    [
        (
            'gpio_led = 17\ngpio_error = "strobe"',
            "gpio_error: must be one of on, off, blink, pulse",
        ),
        ("gpio_led = 28", "gpio_led: must be at least 0 and at most 27"),
        ('gpio_led = "GPIO17"', "gpio_led: must be an integer"),
        ("apa102 = { brightness = 0.5 }", "apa102: needs leds"),
        ("apa102 = { leds = 3, brightnes = 0.5 }", "apa102: unknown key 'brightnes'"),
        (
            "apa102 = { leds = 3, brightness = 1.5 }",
            "apa102 brightness: must be a number from 0 to 1",
        ),
        (
            'apa102 = { leds = 3, colors = { recording = "blue" } }',
            'apa102 colors.recording: must be a colour like "#0000ff"',
        ),
        (
            'apa102 = { leds = 3, colors = { thinking = "#ffffff" } }',
            "apa102 colors: unknown state 'thinking'",
        ),
        ("gpio_led = 5\napa102 = { leds = 12, power_pin = 5 }", "power_pin: GPIO 5 is already"),
    ],
)
def test_config_errors_name_the_key(tmp_path, body, culprit):
    path = tmp_path / "c.toml"
    path.write_text(f"[indicator]\n{body}\n")
    with pytest.raises(RecorderError, match="indicator") as e:
        config_mod.load(path)
    assert culprit in str(e.value) and "\n" not in str(e.value)


def test_the_shipped_config_documents_the_keys():
    shipped = config_mod.load(Path(__file__).parent.parent / "config" / "recorder.toml")
    assert shipped.indicator == IndicatorConfig()
    text = (Path(__file__).parent.parent / "config" / "recorder.toml").read_text()
    for f in dataclasses.fields(IndicatorConfig):
        assert f.name in text, f.name


def test_the_template_is_the_shipped_config_and_is_written_only_as_a_new_file(tmp_path):
    assert config_mod.template() == SHIPPED.read_text()
    target = tmp_path / "home/.config/recorder/recorder.toml"
    config_mod.write_template(target)
    assert target.read_text() == SHIPPED.read_text() and target.stat().st_mode & 0o777 == 0o644
    target.write_text("# mine\n")
    with pytest.raises(RecorderError, match=f"^{target} exists: edit it, or move it away first$"):
        config_mod.write_template(target)
    assert target.read_text() == "# mine\n"  # never overwritten
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(RecorderError, match=f"^cannot write {blocked}/.*: {blocked} is not a dir"):
        config_mod.write_template(blocked / "recorder.toml")
    assert sorted(p.name for p in target.parent.iterdir()) == ["recorder.toml"]  # no temp file
