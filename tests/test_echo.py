"""The echo stage: the cancellers on real speech played through a synthetic room, and the stage
that takes the reference off each frame."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import oww_fixture, read_pcm

from recorder.aec import LinearCanceller
from recorder.audio import FRAME_SAMPLES, Frame
from recorder.echo import EchoStage, canceller, webrtc_canceller
from recorder.errors import RecorderError

RATE = 16000


def room_ir(seed: int = 3) -> np.ndarray:
    """A direct path 1 ms after the reference and a 250 ms RT60 tail, 300 ms long."""
    rng = np.random.default_rng(seed)
    ir = np.zeros(int(0.3 * RATE))
    ir[16] = 1.0
    t = np.arange(len(ir) - 56) / RATE
    ir[56:] = 0.5 * rng.standard_normal(len(t)) * 10 ** (-3 * t / 0.25)
    return ir


def playback_and_echo(seconds: float, gain: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Real speech as the playback (openWakeWord's long clip), and its echo at the microphone."""
    played = read_pcm(oww_fixture("turn_on_the_office_lights_test_clip.wav"))[: int(seconds * RATE)]
    echo = np.convolve(played.astype(np.float64), room_ir())[: len(played)] * gain
    return played, echo


def cancel(c, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    n = len(mic) - len(mic) % FRAME_SAMPLES
    return np.concatenate(
        [
            c.process(mic[i : i + FRAME_SAMPLES], ref[i : i + FRAME_SAMPLES])
            for i in range(0, n, 1280)
        ]
    )


def db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-9))


def q(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def test_the_linear_canceller_learns_the_room_and_leaves_a_talker_undistorted():
    played, echo = playback_and_echo(24.0)
    talker = np.zeros(len(played))
    alexa = read_pcm(oww_fixture("alexa_test.wav")).astype(np.float64)
    at = 20 * RATE  # the talker speaks over the playback once the filter has learnt the room
    said = slice(at, at + len(alexa))
    talker[said] = alexa * 10 ** ((db(echo[said]) - 5 - db(alexa)) / 20)  # the echo 5 dB louder
    out = cancel(LinearCanceller(), q(echo + talker), played)
    late = slice(15 * RATE, 20 * RATE)
    assert db(echo[late]) - db(out[late]) > 20  # the echo alone, 20 dB down or more
    residue = out[said] - talker[said]
    assert db(talker[said]) - db(residue) > 10  # the talker comes through, the echo does not
    assert np.corrcoef(out[said], talker[said])[0, 1] > 0.95


def test_without_playback_the_linear_canceller_changes_nothing():
    mic = q(read_pcm(oww_fixture("alexa_test.wav")).astype(np.float64))
    mic = mic[: len(mic) - len(mic) % FRAME_SAMPLES]
    out = cancel(LinearCanceller(), mic, np.zeros(len(mic), dtype=np.int16))
    assert np.array_equal(out, mic)


class Counting:
    """A real canceller whose resets are counted."""

    def __init__(self) -> None:
        self.inner, self.resets = LinearCanceller(), 0

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        return self.inner.process(near, far)

    def reset(self) -> None:
        self.resets += 1
        self.inner.reset()


def test_the_stage_hands_on_the_cancelled_frame_without_its_reference():
    played, echo = playback_and_echo(3.0)
    mic = q(echo)
    stage = EchoStage(Counting(), None)
    out = []
    for i in range(len(mic) // FRAME_SAMPLES):
        part = slice(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES)
        frame, played_scores = stage.process(Frame(i, mic[part], played[part]))
        assert frame.index == i and frame.reference is None and played_scores is None
        assert frame.samples.dtype == np.int16 and len(frame.samples) == FRAME_SAMPLES
        out.append(frame.samples)
    expected = cancel(LinearCanceller(), mic, played)
    assert np.array_equal(np.concatenate(out), expected)


def test_a_short_last_frame_keeps_its_length_and_a_jump_in_the_frames_starts_afresh():
    played, echo = playback_and_echo(1.0)
    mic, counting = q(echo), Counting()
    stage = EchoStage(counting, None)
    stage.process(Frame(0, mic[:FRAME_SAMPLES], played[:FRAME_SAMPLES]))
    short, _ = stage.process(Frame(1, mic[FRAME_SAMPLES : FRAME_SAMPLES + 77], played[:77]))
    assert len(short.samples) == 77 and counting.resets == 0
    stage.process(Frame(9, mic[:FRAME_SAMPLES], played[:FRAME_SAMPLES]))  # audio was dropped
    assert counting.resets == 1


def test_the_webrtc_canceller_removes_the_echo():
    pytest.importorskip("pywebrtc_audio", reason="the aec extra (pywebrtc-audio) is not installed")
    played, echo = playback_and_echo(12.0)
    out = cancel(webrtc_canceller(), q(echo), played)
    late = slice(8 * RATE, 12 * RATE)
    assert db(echo[late]) - db(out[late]) > 15


def test_the_webrtc_canceller_without_its_extra_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pywebrtc_audio", None)  # the import fails
    with pytest.raises(RecorderError, match=r"pip install 'wakeword-recorder\[aec\]'"):
        canceller("webrtc")
    assert isinstance(canceller("linear"), LinearCanceller)


def test_a_pipeline_with_a_reference_has_an_echo_stage_that_a_reload_keeps(tmp_path):
    from recorder.config import AudioConfig, Config, StorageConfig, WakeConfig
    from recorder.indicators import Devices
    from recorder.pipeline import build_pipeline, reloaded

    def config(reference: int | None, models: tuple[str, ...] = ("alexa",)) -> Config:
        return Config(
            audio=AudioConfig(reference_channel=reference),
            wake=WakeConfig(models=models),
            storage=StorageConfig(directory=str(tmp_path / "rec")),
        )

    plain = build_pipeline(config(None), dry_run=True)
    assert plain.echo is None
    running = build_pipeline(config(1), dry_run=True)
    assert running.echo is not None and isinstance(running.echo.canceller, LinearCanceller)
    assert running.echo.reference_engine is not running.engine  # its own state
    assert list(running.echo.reference_engine.names) == ["alexa"]
    # [audio] takes effect at the next start: the source still delivers the reference, and
    # the canceller (its filter adapted to the room) is kept
    same = reloaded(lambda: config(None), running, True, Devices())
    assert same is not None and same.echo is not None
    assert same.echo.canceller is running.echo.canceller
    assert same.echo.reference_engine is running.echo.reference_engine
    other = reloaded(lambda: config(None, ("hey_jarvis",)), running, True, Devices())
    assert other is not None and other.echo is not None
    assert list(other.echo.reference_engine.names) == ["hey_jarvis"]
    # a reference configured by a reload has no source to come from until the next start
    assert reloaded(lambda: config(1), plain, True, Devices()).echo is None
