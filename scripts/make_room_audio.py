#!/usr/bin/env python3
"""Make the room scenes in tests/audio/rooms/: a real person's "Alexa", a pause, a command, in
the rooms where webrtcvad alone fails.

The wake word is openWakeWord's real recording (tests/fixtures/openwakeword/alexa_test.wav,
Apache-2.0); the TV is real people's speech (that directory's turn_on_the_office_lights and
negative_reference clips); the commands are espeak-ng voices. rooms.json records where each
phrase starts and ends, in seconds. Needs espeak-ng, sox and numpy.

    python3 scripts/make_room_audio.py [OUT_DIR]

sox dithers espeak-ng's output, so a new run differs from the committed files by a sample value
or two; the committed files are the ones the tests were measured on.

- breath_pause: a quiet room; after "Alexa" the talker breathes (0.4 s of shaped noise 20 dB
  below the voice) and the microphone clicks, then, 1.6 s after the wake word, the command.
- tv_talk: a TV's talk 10 dB below the talker from 3 s before the wake word to 12 s after the
  command.
- quiet_talker_in_noise: a far talker (-50 dBFS) in steady fan-like noise 10 dB below.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_voices import active_level_db, pink_noise  # noqa: E402
from make_test_audio import noise_bed, speak, write_scenes  # noqa: E402

RATE = 16000
FIXTURES = REPO / "tests" / "fixtures" / "openwakeword"


def read(name: str) -> np.ndarray:
    with wave.open(str(FIXTURES / name)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def at_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    return x * 10 ** ((dbfs - active_level_db(x)) / 20)


def place(parts: list[tuple[str, float, np.ndarray]], tail_s: float):
    """(label, gap before it in s, audio) back to back; label -> [start, end] in s."""
    pieces, marks, t = [], {}, 0.0
    for label, gap, audio in parts:
        pieces.append(np.zeros(int(gap * RATE)))
        t += gap
        marks[label] = [round(t, 4), round(t + len(audio) / RATE, 4)]
        pieces.append(audio)
        t += len(audio) / RATE
    pieces.append(np.zeros(int(tail_s * RATE)))
    return np.concatenate(pieces), marks


def breath(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Noise shaped like a breath: low-passed, rising and falling over its length."""
    n = int(seconds * RATE)
    x = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
    return x * np.sin(np.pi * np.arange(n) / n) ** 2


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/audio/rooms")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(21)
    talker = -28.0
    alexa = at_level(read("alexa_test.wav"), talker)
    lights = at_level(speak("turn on the kitchen lights", "en-us", 150), talker)
    weather = at_level(speak("what is the weather like tomorrow", "en-gb", 150), talker)
    scenes = {}

    x, marks = place([("wake", 2.5, alexa), ("command", 1.6, lights)], 3.0)
    w_end = int(marks["wake"][1] * RATE)
    b = at_level(breath(0.4, rng), talker - 20)
    x[w_end + int(0.5 * RATE) : w_end + int(0.5 * RATE) + len(b)] += b
    click = w_end + int(1.1 * RATE)
    x[click : click + 40] += (
        0.25 * 32768 * np.exp(-np.arange(40) / 8) * np.sign(rng.standard_normal(40))
    )
    marks["breath"] = [round((w_end + 0.5 * RATE) / RATE, 4), round((w_end + 0.9 * RATE) / RATE, 4)]
    scenes["breath_pause"] = (x + noise_bed(len(x) / RATE + 1, 1)[: len(x)], marks)

    x, marks = place([("wake", 3.0, alexa), ("command", 0.5, weather)], 12.0)
    tv = np.concatenate(
        [read("turn_on_the_office_lights_test_clip.wav"), read("negative_reference.wav")]
    )
    tv = at_level(tv[: len(x)], talker - 10)
    scenes["tv_talk"] = (x + tv + noise_bed(len(x) / RATE + 1, 2)[: len(x)], marks)

    far = -50.0
    x, marks = place(
        [("wake", 3.0, at_level(alexa, far)), ("command", 0.5, at_level(lights, far))], 3.0
    )
    fan = pink_noise(len(x), rng)
    fan *= 32768 * 10 ** ((far - 10) / 20) / np.sqrt(np.mean(fan**2))
    scenes["quiet_talker_in_noise"] = (x + fan, marks)

    write_scenes(
        out,
        "rooms.json",
        {
            name: (np.clip(np.round(x), -32768, 32767).astype("<i2"), marks)
            for name, (x, marks) in scenes.items()
        },
    )


if __name__ == "__main__":
    main()
