"""The endpointer on real speech: the talker judged against the room heard before the wake word."""

from __future__ import annotations

import json

import numpy as np
from conftest import AUDIO, read_pcm

from recorder.audio import FRAME_S, FRAME_SAMPLES
from recorder.endpoint import Endpointer, rms_db
from recorder.vad import WebRtcVad

ROOMS = AUDIO / "rooms"
MARKS = json.loads((ROOMS / "rooms.json").read_text())


def frames(samples: np.ndarray) -> list[np.ndarray]:
    return [
        samples[i : i + FRAME_SAMPLES]
        for i in range(0, len(samples) - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    ]


def decisions(scene: str, wake_at_s: float, phrase_s: float, judge: bool = True) -> np.ndarray:
    """The endpointer's decision per frame, told of a wake word at `wake_at_s`."""
    ep = Endpointer(WebRtcVad(3), WebRtcVad(1), talker_range_db=12.0 if judge else None)
    wake_frame = int(wake_at_s / FRAME_S)
    out = []
    for i, f in enumerate(frames(read_pcm(ROOMS / f"{scene}.wav"))):
        out.append(ep.is_speech(f))
        if i == wake_frame:
            ep.wake(round(phrase_s / FRAME_S) + 1)
    return np.array(out)


def span(marks: list[float]) -> slice:
    return slice(int(marks[0] / FRAME_S) + 1, int(marks[1] / FRAME_S))


def span_samples(marks: list[float]) -> slice:
    return slice(int(marks[0] * 16000), int(marks[1] * 16000))


def longest_run(flags: np.ndarray, value: bool) -> int:
    best = run = 0
    for f in flags:
        run = run + 1 if f == value else 0
        best = max(best, run)
    return best


def test_rms_db():
    assert rms_db(np.zeros(FRAME_SAMPLES)) == -120.0
    full = np.full(FRAME_SAMPLES, 32767)
    assert abs(rms_db(full)) < 0.01
    assert abs(rms_db(full / 10) + 20) < 0.01


def test_after_the_command_the_tv_is_not_the_talker():
    marks = MARKS["tv_talk"]
    wake_end = marks["wake"][1] + 0.1
    judged = decisions("tv_talk", wake_end, marks["wake"][1] - marks["wake"][0])
    alone = decisions("tv_talk", wake_end, 0, judge=False)
    after = slice(int((marks["command"][1] + 1.0) / FRAME_S), len(judged))
    assert alone[after].mean() > 0.5  # webrtcvad hears the TV's talk as speech
    assert judged[after].mean() < 0.1
    # and the command itself is heard with no gap as long as silence_s (0.8 s)
    assert longest_run(judged[span(marks["command"])], False) < 10
    assert judged[span(marks["command"])].mean() > 0.6


def test_a_breath_after_the_wake_word_is_not_speech():
    marks = MARKS["breath_pause"]
    judged = decisions("breath_pause", marks["wake"][1] + 0.1, marks["wake"][1] - marks["wake"][0])
    assert not judged[span(marks["breath"])].any()
    assert judged[span(marks["command"])].mean() > 0.6


def test_a_room_as_loud_as_the_talker_does_not_cut_the_command():
    """The margin shrinks with the talker's lead over the room: in steady noise as loud as the
    voice, the command still reads as speech, so it is kept whole (if long) rather than cut."""
    marks = MARKS["breath_pause"]
    x = read_pcm(ROOMS / "breath_pause.wav").astype(np.float64)
    rng = np.random.default_rng(3)
    noise = rng.standard_normal(len(x))
    cmd = x[span_samples(marks["command"])]
    noise *= np.sqrt(np.mean(cmd**2)) / np.sqrt(np.mean(noise**2))  # 0 dB SNR
    y = np.clip(np.round(x + noise), -32768, 32767).astype(np.int16)
    ep = Endpointer(WebRtcVad(3), WebRtcVad(1))
    wake_frame = int((marks["wake"][1] + 0.1) / FRAME_S)
    out = []
    for i, f in enumerate(frames(y)):
        out.append(ep.is_speech(f))
        if i == wake_frame:
            ep.wake(9)
    assert ep.room_db > -200.0  # the room was judged
    assert longest_run(np.array(out)[span(marks["command"])], False) < 10


def test_release_forgets_the_room_and_too_little_room_is_not_judged():
    ep = Endpointer(WebRtcVad(3), WebRtcVad(1))
    loud = (np.sin(np.arange(FRAME_SAMPLES) * 0.3) * 8000).astype(np.int16)
    for _ in range(3):
        ep.is_speech(np.zeros(FRAME_SAMPLES, dtype=np.int16))
    ep.wake(1)
    assert ep.floor_db is None  # three frames of room: webrtcvad decides alone
    for _ in range(20):
        ep.is_speech(np.zeros(FRAME_SAMPLES, dtype=np.int16))
    ep.is_speech(loud)
    ep.wake(1)
    assert ep.floor_db is not None
    ep.release()
    assert ep.floor_db is None
    ep.wake(1)  # the levels before the release are gone
    assert ep.floor_db is None


def pink(n: int, seed: int) -> np.ndarray:
    """Noise whose power falls 3 dB an octave: a fan's, a road's rumble."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / 16000)
    spec[1:] /= np.sqrt(f[1:] / f[1])
    spec[0] = 0
    return np.fft.irfft(spec, n)


def judged_in(y: np.ndarray, wake_s: float, phrase_frames: int) -> np.ndarray:
    ep = Endpointer(WebRtcVad(3), WebRtcVad(1))
    wake_frame = int(wake_s / FRAME_S)
    out = []
    for i, f in enumerate(frames(y)):
        out.append(ep.is_speech(f))
        if i == wake_frame:
            ep.wake(phrase_frames)
    return np.array(out)


def judged_in_band(y: np.ndarray, wake_s: float) -> bool:
    ep = Endpointer(WebRtcVad(3), WebRtcVad(1))
    for f in frames(y)[: int(wake_s / FRAME_S) + 1]:
        ep.is_speech(f)
    ep.wake(9)
    assert ep.floor_db is not None
    return ep.in_band


def test_in_a_steady_rumble_the_talker_is_judged_in_the_speech_band():
    """Pink noise 3 dB under the command: its level swings by several dB from frame to frame
    in the low frequencies, which would hide the talker's softer words; in the speech band it
    is steady, and the command is heard without a gap as long as silence_s."""
    marks = MARKS["breath_pause"]
    x = read_pcm(ROOMS / "breath_pause.wav").astype(np.float64)
    noise = pink(len(x), 5)
    cmd = x[span_samples(marks["command"])]
    noise *= np.sqrt(np.mean(cmd**2) / np.mean(noise**2)) * 10 ** (-3 / 20)
    y = np.clip(np.round(x + noise), -32768, 32767).astype(np.int16)
    judged = judged_in(y, marks["wake"][1] + 0.1, 9)
    assert judged_in_band(y, marks["wake"][1] + 0.1)
    assert not judged_in_band(read_pcm(ROOMS / "tv_talk.wav"), MARKS["tv_talk"]["wake"][1] + 0.1)
    command = judged[span(marks["command"])]
    assert longest_run(command, False) < 6
    assert command.mean() > 0.6
    after = judged[int((marks["command"][1] + 1.0) / FRAME_S) :]
    assert after.mean() < 0.1  # and the rumble after it is not the talker


class HearsEverything:
    """A VAD that calls every frame speech, as webrtcvad does a TV's talk or a song."""

    def is_speech(self, samples: np.ndarray) -> bool:
        return True


def noise_at(db: float, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal(FRAME_SAMPLES)
    return np.round(x / np.sqrt(np.mean(x**2)) * 32768 * 10 ** (db / 20)).astype(np.int16)


def test_after_the_talker_pauses_only_the_talkers_level_counts():
    """Room sound the VAD calls speech, -44 and -36 dBFS in turn; the talker at -24. After the
    command, a pause in the room, then room sound steadily at -37 dB: loud enough to keep the
    last frames above the room's mean, below the talker's floor (-36). Once the talker has
    paused, such frames are not the talker's, though they were while the talker was speaking;
    and a second request judges its talker afresh."""
    rng = np.random.default_rng(1)
    ep = Endpointer(HearsEverything(), HearsEverything())
    for _ in range(2):
        for i in range(30):
            ep.is_speech(noise_at(-44 if i % 2 else -36, rng))
        for _ in range(6):
            ep.is_speech(noise_at(-24, rng))
        ep.wake(6)
        assert ep.floor_db is not None and abs(ep.floor_db + 36) < 0.5
        command = [ep.is_speech(noise_at(-24, rng)) for _ in range(10)]
        assert all(command)
        assert ep.is_speech(noise_at(-37, rng))  # a fading word end, while talking
        pause = [ep.is_speech(noise_at(-44, rng)) for _ in range(6)]
        room = [ep.is_speech(noise_at(-37, rng)) for _ in range(20)]
        assert not any(pause[3:]) and not any(room)
        ep.release()
