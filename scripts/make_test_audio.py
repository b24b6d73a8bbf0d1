#!/usr/bin/env python3
"""Synthesize the test scenes in tests/audio/ with espeak-ng and sox.

Each scene is 16 kHz mono s16 speech (espeak-ng voices) placed at known offsets over a quiet
noise bed (low brown noise plus 50 Hz mains hum). scenes.json records where every phrase starts
and ends, in seconds, so tests can check exactly what was kept. Needs: espeak-ng, sox, numpy.

    python3 scripts/make_test_audio.py [OUT_DIR]

sox dithers when it converts espeak-ng's output, so a new run differs from the committed files
by a sample value or two; the committed files are the ones the tests were measured on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

RATE = 16000


def speak(text: str, voice: str, speed: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True
        )
        subprocess.run(
            ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True
        )
        with wave.open(str(out)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    loud = np.flatnonzero(np.abs(x) > 300)  # trim espeak's leading/trailing silence
    x = x[loud[0] : loud[-1] + 1]
    return x / np.abs(x).max() * 0.35 * 32768


def noise_bed(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # remove the drift
    brown *= 0.003 * 32768 / (brown.std() + 1e-9)
    hum = 0.002 * 32768 * np.sin(2 * np.pi * 50 * np.arange(n) / RATE)
    return brown + hum


def scene(parts: list[tuple[str, float, np.ndarray | None]], tail_s: float, seed: int):
    """parts: (label, gap before it in s, audio). Returns samples and label -> [start, end]."""
    pieces, marks, t = [], {}, 0.0
    for label, gap, audio in parts:
        pieces.append(np.zeros(int(gap * RATE)))
        t += gap
        if audio is not None:
            marks[label] = [round(t, 4), round(t + len(audio) / RATE, 4)]
            pieces.append(audio)
            t += len(audio) / RATE
    pieces.append(np.zeros(int(tail_s * RATE)))
    speech = np.concatenate(pieces)
    x = speech + noise_bed(len(speech) / RATE, seed)
    return np.clip(np.round(x), -32768, 32767).astype("<i2"), marks


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/audio")
    out.mkdir(parents=True, exist_ok=True)
    jarvis = speak("Hey Jarvis", "en-us", 150)
    jarvis_f = speak("Hey Jarvis", "en+f3", 140)
    alexa = speak("Alexa", "en-us", 150)
    lights = speak("turn on the kitchen lights", "en-us", 150)
    time_q = speak("what time is it", "en+f3", 140)
    music = speak("play some music in the living room please", "en-us", 150)
    chat = speak("we were talking about dinner tonight", "en+m3", 150)
    story = speak(
        "tell me a long story about a dragon who lived in a castle by the sea "
        "and never ever went to sleep",
        "en-us",
        150,
    )
    scenes = {
        "jarvis_pause_command": ([("wake", 2.0, jarvis), ("command", 0.4, lights)], 2.5),
        "jarvis_runon_command": ([("wake", 2.0, jarvis_f), ("command", 0.0, time_q)], 2.5),
        "jarvis_bare": ([("wake", 2.0, jarvis)], 6.0),
        "alexa_command": ([("wake", 2.0, alexa), ("command", 0.3, music)], 2.5),
        "command_without_wake": ([("speech", 2.0, lights), ("speech2", 1.0, music)], 3.0),
        "speech_then_wake": (
            [("chat", 1.5, chat), ("wake", 0.4, jarvis), ("command", 0.3, lights)],
            2.5,
        ),
        "two_requests": (
            [
                ("wake", 2.0, jarvis),
                ("command", 0.4, lights),
                ("wake2", 3.0, jarvis_f),
                ("command2", 0.3, time_q),
            ],
            2.5,
        ),
        "jarvis_long_command": ([("wake", 2.0, jarvis), ("command", 0.3, story)], 2.5),
    }
    seeds = {name: seed for seed, name in enumerate(sorted(scenes))}
    # microWakeWord's "Okay Nabu" (espeak-ng's default English voices trigger it)
    nabu = speak("Okay Nabu", "en-us", 150)
    nabu_f = speak("Okay Nabu", "en+f3", 140)
    nabu_gb = speak("Okay Nabu", "en-gb", 150)
    weather = speak("what is the weather like tomorrow", "en-gb", 150)
    nabu_scenes = {
        "nabu_pause_command": ([("wake", 2.0, nabu), ("command", 0.4, lights)], 2.5),
        "nabu_two_requests": (
            [
                ("wake", 2.0, nabu_f),
                ("command", 0.3, time_q),
                ("wake2", 3.0, nabu_gb),
                ("command2", 0.3, weather),
            ],
            2.5,
        ),
        "speech_then_nabu": (
            [("chat", 1.5, chat), ("wake", 0.4, nabu), ("command", 0.3, music)],
            2.5,
        ),
        "nabu_and_jarvis": (
            [
                ("wake", 2.0, nabu),
                ("command", 0.4, lights),
                ("wake2", 3.0, jarvis),
                ("command2", 0.4, time_q),
            ],
            2.5,
        ),
    }
    seeds.update({name: 100 + i for i, name in enumerate(sorted(nabu_scenes))})
    scenes.update(nabu_scenes)
    write_scenes(
        out,
        "scenes.json",
        {name: scene(parts, tail, seeds[name]) for name, (parts, tail) in scenes.items()},
    )


def write_scenes(out: Path, index: str, scenes: dict[str, tuple[np.ndarray, dict]]) -> None:
    """Each scene as OUT/NAME.wav (16 kHz mono s16) and its marks, with its length, in INDEX."""
    meta = {}
    for name, (samples, marks) in sorted(scenes.items()):
        with wave.open(str(out / f"{name}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(samples.tobytes())
        meta[name] = {"duration_s": round(len(samples) / RATE, 4), **marks}
    (out / index).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
