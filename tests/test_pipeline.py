"""The one per-frame step that the daemon and `recorder score` share, on the real models."""

from __future__ import annotations

import pytest
from conftest import AUDIO, SCENES, read_pcm

from recorder.audio import frames_to_s
from recorder.config import Config, StorageConfig, VadConfig, WakeConfig
from recorder.machine import EndReason, State, UtteranceReady, WakeDetected
from recorder.pipeline import build_machine, build_pipeline, machine_settings, step
from recorder.sources import chunk


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    rec = tmp_path_factory.mktemp("p") / "rec"
    config = Config(
        wake=WakeConfig(models=("hey_jarvis",)), storage=StorageConfig(directory=str(rec))
    )
    return build_pipeline(config, dry_run=True)


def test_a_dry_run_pipeline_creates_no_recordings_directory(pipeline):
    assert not pipeline.storage.directory.exists()
    assert list(pipeline.engine.names) == ["hey_jarvis"]


def test_the_step_detects_the_wake_word_and_cuts_the_request(pipeline):
    scene = SCENES["jarvis_pause_command"]
    engine, vad = pipeline.engine, pipeline.vad
    engine.reset()
    machine = build_machine(pipeline.config, engine)
    machine.start()
    events = []
    for frame in chunk(read_pcm(AUDIO / "jarvis_pause_command.wav")):
        analysis = step(machine, engine, vad, frame)
        assert analysis is not None and set(analysis.scores) == {"hey_jarvis"}
        events += analysis.events
    events += machine.finish(EndReason.EOF)
    [wake] = [e for e in events if isinstance(e, WakeDetected)]
    [ready] = [e for e in events if isinstance(e, UtteranceReady)]
    assert scene["wake"][1] <= frames_to_s(wake.frame_index + 1) <= scene["wake"][1] + 0.7
    assert scene["wake"][0] <= frames_to_s(ready.start_frame) < scene["wake"][1]
    assert frames_to_s(ready.end_frame) >= scene["command"][1]


def test_muted_or_stopped_frames_are_not_analysed(pipeline):
    machine = build_machine(pipeline.config, pipeline.engine, muted=True)
    frame = next(chunk(read_pcm(AUDIO / "jarvis_bare.wav")))
    assert (
        machine.state is State.OFF and step(machine, pipeline.engine, pipeline.vad, frame) is None
    )
    machine.start()
    assert machine.state is State.MUTED
    assert step(machine, pipeline.engine, pipeline.vad, frame) is None


def test_durations_become_frames():
    config = Config(
        wake=WakeConfig(threshold=0.4, refractory_s=2.0, per_model={}),
        vad=VadConfig(silence_s=0.8, lookback_s=1.0, min_speech_s=0.01),
    )
    s = machine_settings(config, ["a", "b"])
    assert dict(s.thresholds) == {"a": 0.4, "b": 0.4}
    assert (s.refractory_frames, s.silence_frames, s.lookback_frames) == (25, 10, 12)
    assert s.min_speech_frames == 1  # never zero
