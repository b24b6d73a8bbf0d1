"""webrtcvad per 80 ms frame, on the synthesized scenes (phrase times in scenes.json)."""

from __future__ import annotations

import numpy as np
from conftest import AUDIO, RATE, SCENES, read_pcm

from recorder.audio import FRAME_SAMPLES
from recorder.vad import SUBFRAME_SAMPLES, WebRtcVad, gate_vad


def frame_flags(vad: WebRtcVad, samples: np.ndarray) -> np.ndarray:
    n = len(samples) // FRAME_SAMPLES
    return np.array(
        [vad.is_speech(samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(n)]
    )


def inside(flags: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    frame_s = FRAME_SAMPLES / RATE
    return flags[int(start_s / frame_s) + 1 : int(end_s / frame_s) - 1]


def test_speech_is_found_in_the_phrases_and_not_in_the_quiet_bed():
    scene = SCENES["command_without_wake"]
    samples = read_pcm(AUDIO / "command_without_wake.wav")
    flags = frame_flags(WebRtcVad(3), samples)
    speech = np.concatenate([inside(flags, *scene["speech"]), inside(flags, *scene["speech2"])])
    quiet = inside(flags, 0.0, scene["speech"][0] - 0.2)
    assert speech.mean() > 0.6, speech.mean()
    assert quiet.mean() == 0.0  # the brown-noise-and-hum bed before the first phrase


def test_silence_and_faint_noise_are_not_speech():
    vad = WebRtcVad(3)
    assert not vad.is_speech(np.zeros(FRAME_SAMPLES, dtype=np.int16))
    noise = np.random.default_rng(1).normal(0, 30, FRAME_SAMPLES).astype(np.int16)
    assert not vad.is_speech(noise)


def test_the_gate_opens_on_less_speech_than_the_request_detector():
    """The gate needs one 20 ms sub-frame of speech, the request detector two of four."""
    samples = read_pcm(AUDIO / "command_without_wake.wav")
    strict = frame_flags(WebRtcVad(3), samples)
    gate = frame_flags(gate_vad(), samples)
    assert np.all(gate[strict])  # wherever a frame is speech, the gate is open too
    start, end = (int(t * RATE) for t in SCENES["command_without_wake"]["speech"])
    gate_opened = request_speech = 0
    for i in range(start, end - SUBFRAME_SAMPLES, SUBFRAME_SAMPLES):
        one = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        one[-SUBFRAME_SAMPLES:] = samples[i : i + SUBFRAME_SAMPLES]  # 60 ms of silence, then 20
        gate_opened += gate_vad().is_speech(one)  # ms of a word (fresh detectors: no history)
        request_speech += WebRtcVad(3).is_speech(one)
    assert gate_opened > request_speech + 5, (gate_opened, request_speech)


def test_level_gate_opens_for_a_far_talker_where_webrtcvad_stays_shut():
    """The room scene's talker at -50 dBFS over fan noise 10 dB below: webrtcvad's strict mode
    never opens during the wake phrase; the level rule does, and the noise alone does not."""
    import json

    from conftest import AUDIO, read_pcm

    from recorder.vad import LevelGate

    marks = json.loads((AUDIO / "rooms" / "rooms.json").read_text())["quiet_talker_in_noise"]
    samples = read_pcm(AUDIO / "rooms" / "quiet_talker_in_noise.wav")
    n = len(samples) // FRAME_SAMPLES
    phrase = range(int(marks["wake"][0] / 0.08), int(marks["wake"][1] / 0.08) + 1)
    noise_only = range(1, int(marks["wake"][0] / 0.08) - 1)
    strict, gate = WebRtcVad(3, 1), LevelGate(WebRtcVad(3, 1))
    s = [strict.is_speech(samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(n)]
    g = [gate.is_speech(samples[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]) for i in range(n)]
    assert not any(s[i] for i in phrase)
    assert sum(g[i] for i in phrase) >= 3
    assert not any(g[i] for i in noise_only)
