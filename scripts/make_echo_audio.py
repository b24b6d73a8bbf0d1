#!/usr/bin/env python3
"""Make the scenes in tests/audio/echo/: a device that plays music, recorded with its loopback.

Each scene is a 16 kHz 16-bit stereo WAV: channel 0 the microphone, channel 1 the reference
(what the speaker plays, as a ReSpeaker array's loopback channel delivers it). The playback is
bench_voices.py's music-like sound at -20 dBFS; the microphone hears it through a room
(bench_echo.py's impulse response: a direct path 1 ms after the reference and a 250 ms RT60
tail) plus the room's quiet bed. echo.json records where each phrase starts and ends (s).

    python3 scripts/make_echo_audio.py [OUT_DIR]

- request_over_music: the talker of tests/audio/rooms/breath_pause.wav (openWakeWord's real
  "Alexa", a pause, a command) 8 s into the music, the echo 5 dB above the talker.
- request_late_in_music: the same talker 14 s into other music (the canceller long settled),
  the echo 5 dB above the talker, 8 s of music after the talker's clip: what the canceller leaves of
  this music's drums kept webrtcvad in speech for 4.6 s past the command before the residual
  echo's estimate (`recorder.residual`).
- played_wake_word: the music, and 3 s in the device itself plays a real "Alexa" (openWakeWord's
  recording); the echo 10 dB above the talker's level; nobody in the room speaks.
"""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench_echo import REFERENCE_DBFS, room_ir, through_room  # noqa: E402
from bench_voices import active_level_db, music_like  # noqa: E402
from make_test_audio import noise_bed  # noqa: E402

RATE = 16000
AUDIO = REPO / "tests" / "audio"
TALKER_DBFS = -28.0  # the room scenes' talker


def read(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)


def music(seconds: float, seed: int) -> np.ndarray:
    x = music_like(int(seconds * RATE), np.random.default_rng(seed))
    return x * 10 ** ((REFERENCE_DBFS - active_level_db(x * 32768)) / 20) * 32768


def write_stereo(path: Path, mic: np.ndarray, reference: np.ndarray) -> None:
    both = np.stack([mic, reference], axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(np.round(both), -32768, 32767).astype("<i2").tobytes())


def request(path: Path, at_s: float, seed: int, ir: np.ndarray, after_s: float) -> dict:
    """The talker of breath_pause.wav `at_s` into music, its echo 5 dB above the talker, and
    `after_s` of music after the talker's clip; the scene's marks."""
    talker = read(AUDIO / "rooms" / "breath_pause.wav")
    room_marks = json.loads((AUDIO / "rooms" / "rooms.json").read_text())["breath_pause"]
    played = music(at_s + len(talker) / RATE + after_s, seed=seed)
    mic = (
        through_room(played, ir, TALKER_DBFS + 5)
        + noise_bed(len(played) / RATE + 1, 3)[: len(played)]
    )
    at = int(at_s * RATE)
    mic[at : at + len(talker)] += talker
    write_stereo(path, mic, played)
    return {
        "duration_s": round(len(mic) / RATE, 4),
        "wake": [round(at_s + t, 4) for t in room_marks["wake"]],
        "command": [round(at_s + t, 4) for t in room_marks["command"]],
    }


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else AUDIO / "echo")
    out.mkdir(parents=True, exist_ok=True)
    ir = room_ir(0.25, seed=3)
    marks: dict[str, dict] = {}

    marks["request_over_music"] = request(out / "request_over_music.wav", 8.0, 5, ir, 4.0)
    marks["request_late_in_music"] = request(out / "request_late_in_music.wav", 14.0, 21, ir, 8.0)

    alexa = read(REPO / "tests" / "fixtures" / "openwakeword" / "alexa_test.wav")
    alexa *= 10 ** ((REFERENCE_DBFS - active_level_db(alexa)) / 20)
    played = music(10.0, seed=6)
    at_s = 3.0
    at = int(at_s * RATE)
    played[at : at + len(alexa)] += alexa
    mic = (
        through_room(played, ir, TALKER_DBFS + 10)
        + noise_bed(len(played) / RATE + 1, 4)[: len(played)]
    )
    write_stereo(out / "played_wake_word.wav", mic, played)
    marks["played_wake_word"] = {
        "duration_s": round(len(mic) / RATE, 4),
        "played_wake": [at_s, round(at_s + len(alexa) / RATE, 4)],
    }
    (out / "echo.json").write_text(json.dumps(marks, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
