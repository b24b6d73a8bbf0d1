"""The configuration's schema: one frozen dataclass per TOML section, each value's range and
the checks across keys. Path fields are marked on the field (`PATH`)."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.config_lights import Apa102Settings, check_lights, gpio_patterns, parse_apa102
from recorder.errors import RecorderError

LOG_LEVELS = ("debug", "info", "warning", "error")
ECHO_CANCELLERS = ("linear", "webrtc")
DEFAULT_THRESHOLD = 0.5
"""An openWakeWord model's detection threshold unless the configuration sets one."""


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False):
    return {"lo": lo, "hi": hi, "lo_open": lo_open}


PATH = {"path": True}
"""A field's metadata for a path: relative to the file's directory, written resolved."""


def is_path(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("path"))


@dataclass(frozen=True)
class AudioConfig:
    source: str = "mic"
    """`mic`, `mic:NAME_OR_INDEX`, `file:PATH` (WAV), `stdin` (raw s16le 16 kHz mono) or `sample`
    (the package's recording)."""
    realtime: bool = False
    """Pace a file source at 1x instead of as fast as the CPU allows."""
    device_rate: int | None = field(default=None, metadata=_range(1000, 384000))
    """Open the microphone at this rate (Hz); unset: 16000 if accepted, else its default."""
    device_channels: int | None = field(default=None, metadata=_range(1, 64))
    """Open the microphone with this many channels; unset: 1 if accepted, else its maximum."""
    channel: int | str = 0
    """The input channel to keep (0-based), or "mix" to average them all."""
    reference_channel: int | None = field(default=None, metadata=_range(0, 63))
    """The capture channel that carries what the speaker plays (a loopback): the wake word,
    the speech gate and the VAD hear the microphone with its echo cancelled."""
    echo_canceller: str = "linear"
    """With a reference: "linear" (`recorder.aec`, numpy) or "webrtc" (WebRTC's AEC3, the
    `aec` extra)."""

    def __post_init__(self) -> None:
        c = self.channel
        if not (c == "mix" or isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 64):
            raise RecorderError(
                f'[audio] channel: must be a channel number from 0 to 63 or "mix", got {c!r}'
            )
        if self.echo_canceller not in ECHO_CANCELLERS:
            raise RecorderError(
                f"[audio] echo_canceller: must be one of {', '.join(ECHO_CANCELLERS)}, "
                f"got {self.echo_canceller!r}"
            )
        if self.reference_channel is not None and c in ("mix", self.reference_channel):
            raise RecorderError(
                f"[audio] reference_channel = {self.reference_channel}: the microphone's "
                f"channel must be another one, got channel = {c!r}"
            )


@dataclass(frozen=True)
class ModelOverride:
    threshold: float | None = field(default=None, metadata=_range(0.0, 1.0, lo_open=True))
    patience: int | None = field(default=None, metadata=_range(1, 100))
    verifier: str | None = None
    """A second-stage verifier (.npz) asked when the score reaches the threshold."""


@dataclass(frozen=True)
class WakeConfig:
    models: tuple[str, ...] = ("hey_jarvis",)
    """Manifest names (`hey_jarvis`, `alexa`, ...) or paths to openWakeWord .onnx models."""
    threshold: float | None = field(default=None, metadata=_range(0.0, 1.0, lo_open=True))
    """Every model's detection threshold; unset: each model's own (0.5 for openWakeWord's,
    the model's probability_cutoff for microWakeWord's)."""
    patience: int = field(default=1, metadata=_range(1, 100))
    """Consecutive 80 ms frames at or above the threshold."""
    refractory_s: float = field(default=2.0, metadata=_range(0.0, 3600.0))
    gate: bool = True
    """Run the embedding model only around speech (same detections, a fraction of the CPU)."""
    calibrate: bool = False
    """Count, per model and candidate threshold, the activations each would make (counters in
    the state directory, no audio) for `recorder calibrate`."""
    save_activations: str = field(default="", metadata=PATH)
    """Directory for ~2 s of audio around every detection (stores wake-word audio; off)."""
    models_dir: str = field(default="", metadata=PATH)
    """Where the .onnx files are installed; empty: $RECORDER_MODELS_DIR, else
    ~/.local/share/recorder/models ($XDG_DATA_HOME), or a source checkout's models/."""
    per_model: dict[str, ModelOverride] = field(default_factory=dict)
    """[wake.per_model.NAME] threshold / patience for one model (or one `model:class`)."""

    def threshold_for(self, name: str, model_default: float = DEFAULT_THRESHOLD) -> float:
        """[wake.per_model.NAME] threshold, else [wake] threshold, else `model_default` (the
        engine's: see `pipeline.thresholds`)."""
        o = self._override(name)
        if o and o.threshold is not None:
            return o.threshold
        return self.threshold if self.threshold is not None else model_default

    def patience_for(self, name: str) -> int:
        o = self._override(name)
        return o.patience if o and o.patience is not None else self.patience

    def verifier_for(self, name: str) -> str | None:
        o = self._override(name)
        return o.verifier if o else None

    def _override(self, name: str) -> ModelOverride | None:
        return self.per_model.get(name) or self.per_model.get(name.split(":")[0])


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = field(default=3, metadata=_range(0, 3))
    """webrtcvad's mode: 0 (least) to 3 (most aggressive in rejecting non-speech); a request
    judged against the room (judge_room) hears with mode 1 and judges what it lets through."""
    silence_s: float = field(default=0.8, metadata=_range(0.08, 60.0))
    """A request ends after this much non-speech once speech has begun."""
    pause_s: float = field(default=1.6, metadata=_range(0.08, 60.0))
    """...or after this much, while less than 1 s of the command has been heard (a pause after
    a first word, or after a sound in the pause that followed the wake word)."""
    max_length_s: float = field(default=15.0, metadata=_range(0.5, 3600.0))
    no_speech_timeout_s: float = field(default=4.0, metadata=_range(0.08, 600.0))
    """Nothing is saved when no speech starts within this time after the wake word."""
    min_speech_s: float = field(default=0.24, metadata=_range(0.08, 5.0))
    """Speech this long after the detection starts a request (the wake word's tail is shorter)."""
    lookback_s: float = field(default=1.0, metadata=_range(0.0, 5.0))
    """At most this much audio from before the detecting frame's end is kept."""
    judge_room: bool = True
    """After a wake word, speech counts only where it stands out of the room heard before it
    and comes near the talker's level (recorder/endpoint.py); false: webrtcvad's decision."""
    talker_range_db: float = field(default=12.0, metadata=_range(1.0, 60.0))
    """A frame more than this far below the wake phrase's loudest is not the talker's speech."""
    room_margin_db: float = field(default=3.0, metadata=_range(0.0, 30.0))
    """The last frames must stand at most this far above the room's level (less in a steady
    room, and at most half the talker's lead over the room)."""


@dataclass(frozen=True)
class StorageConfig:
    directory: str = field(default="~/.local/share/recorder/recordings", metadata=PATH)
    max_age: str = "30d"
    """Delete recordings older than this (e.g. "30d", "12h"; "0" or empty: keep them)."""
    max_count: int = field(default=0, metadata=_range(0, 10**9))
    """Keep at most this many recordings (0: no limit)."""
    max_total_mb: float = field(default=0.0, metadata=_range(0.0, 10.0**9))
    """Keep at most this many megabytes of recordings (0: no limit)."""
    encrypt_to: str | tuple[str, ...] = ""
    """Seal every recording to these age recipients ("age1...") or recipients files (a
    string or a list; needs `wakeword-recorder[crypto]`); empty: plaintext WAV + JSON."""
    state_dir: str = field(default="", metadata=PATH)
    """The state directory (audit log, mute switch, calibration and enrolment files); empty:
    $STATE_DIRECTORY, else $XDG_STATE_HOME/recorder (~/.local/state/recorder)."""

    @property
    def max_age_s(self) -> float:
        return parse_duration(self.max_age, "[storage] max_age") if self.max_age else 0.0


@dataclass(frozen=True)
class IndicatorConfig:
    command: str = ""
    """Run on every state change with the new state as its last argument."""
    state_file: str = field(default="", metadata=PATH)
    """A file rewritten atomically with the current state."""
    required: bool = True
    """Fail closed: discard a request whose `recording` state could not be shown."""
    timeout_s: float = field(default=2.0, metadata=_range(0.01, 60.0))
    gpio_led: int | None = field(default=None, metadata=_range(0, 27))
    """An LED on this GPIO pin (BCM number; needs `wakeword-recorder[pi]`)."""
    mute_switch: int | None = field(default=None, metadata=_range(0, 27))
    """A switch on this GPIO pin (BCM number, to ground; needs `wakeword-recorder[pi]`) that mutes
    while it is closed, whatever the control socket says."""
    mute_button: int | None = field(default=None, metadata=_range(0, 27))
    """A push button on this GPIO pin (BCM number, to ground; needs `wakeword-recorder[pi]`):
    each press mutes, or unmutes, as `recorder mute` and `unmute` do."""
    gpio_recording: str = "on"
    """The LED's pattern per state: on, off, blink or pulse (pulse needs a PWM pin)."""
    gpio_listening: str = "dim"
    gpio_muted: str = "pulse"
    gpio_error: str = "blink"
    apa102: dict = field(default_factory=dict)
    """APA102 LEDs on SPI: { leds = 3, brightness = 0.5, bus = 0, device = 1, power_pin = 5,
    colors = { recording = "#0000ff", ... } } (needs `wakeword-recorder[pi]`); empty: none."""
    awake_sound: str = field(default="", metadata=PATH)
    """A WAV played when a recording starts (the microphone keeps recording)."""
    done_sound: str = field(default="", metadata=PATH)
    """A WAV played when a recording ends."""
    chime_device: str = ""
    """Output device for the chimes, by name or index; empty: the default output."""

    def __post_init__(self) -> None:
        check_lights(self._gpio(), self.gpio_led, self.apa102)
        for key in ("mute_switch", "gpio_led"):
            if self.mute_button is not None and getattr(self, key) == self.mute_button:
                raise RecorderError(
                    f"[indicator] mute_button: GPIO {self.mute_button} is also {key}'s pin"
                )

    def _gpio(self) -> dict[str, str]:
        return {
            "gpio_recording": self.gpio_recording,
            "gpio_listening": self.gpio_listening,
            "gpio_muted": self.gpio_muted,
            "gpio_error": self.gpio_error,
        }

    def led_patterns(self) -> dict[str, str]:
        """`gpio_led`'s pattern per state name."""
        return gpio_patterns(self._gpio())

    def apa102_settings(self) -> Apa102Settings | None:
        return parse_apa102(self.apa102) if self.apa102 else None


KEEP_AUDIO = ("always", "until_transcribed")


@dataclass(frozen=True)
class HandoffConfig:
    command: str = ""
    """Run as `COMMAND SIDECAR_PATH` after each request is saved (no shell; the sidecar JSON
    on stdin, RECORDER_ID, RECORDER_AUDIO, RECORDER_WAKE_WORD in the environment)."""
    timeout_s: float = field(default=30.0, metadata=_range(0.1, 3600.0))
    """The command is killed (with its process group) after this long."""
    queue: int = field(default=16, metadata=_range(1, 10000))
    """Saved requests waiting for the command or the transcription; beyond it one is skipped."""
    wyoming: str = ""
    """A Wyoming speech-to-text server, `unix:///PATH` only (needs `wakeword-recorder[wyoming]`)."""
    wyoming_timeout_s: float = field(default=60.0, metadata=_range(0.1, 3600.0))
    """A transcription that has not answered by then is given up (`transcript_error`)."""
    language: str = ""
    """Asked of the speech-to-text server (e.g. "en"); empty: the server's default."""
    keep_audio: str = "always"
    """`always`, or `until_transcribed`: delete the audio once the transcript is saved."""

    def __post_init__(self) -> None:
        check_handoff(self)


@dataclass(frozen=True)
class ControlConfig:
    group: str = ""
    """Members of this group may use `status` and `events` (the control socket is then 0660
    and owned by it); empty: only the daemon's user and root."""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    indicator: IndicatorConfig = field(default_factory=IndicatorConfig)
    log: LogConfig = field(default_factory=LogConfig)
    handoff: HandoffConfig = field(default_factory=HandoffConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative paths in the file are resolved against."""

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


MAX_DURATION_S = 100 * 365 * 86400.0
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def check_handoff(h: HandoffConfig) -> None:
    """The hand-off's values that need no file system: its command's syntax, the Wyoming
    URI's scheme (the daemon speaks only AF_UNIX), the audio policy."""
    if h.command:
        try:
            argv = shlex.split(h.command)
        except ValueError as e:
            raise RecorderError(f"[handoff] command: cannot parse {h.command!r} ({e})") from None
        if not argv:
            raise RecorderError("[handoff] command: empty command")
    if h.wyoming:
        scheme, sep, rest = h.wyoming.partition("://")
        if not sep:
            raise RecorderError(
                f"[handoff] wyoming: {h.wyoming!r} is not a URI; use unix:///PATH/TO/stt.sock"
            )
        if scheme in ("tcp", "http", "https", "ws", "wss"):
            raise RecorderError(
                f"[handoff] wyoming: {h.wyoming!r}: the daemon opens no network socket; serve "
                "the speech-to-text on a Unix socket (unix:///PATH), or bridge to another host "
                "from a separate unit (docs/handoff.md)"
            )
        if scheme != "unix":
            raise RecorderError(
                f"[handoff] wyoming: unknown scheme {scheme + '://'!r} in {h.wyoming!r}; "
                "only unix:///PATH is accepted"
            )
        if not rest.startswith("/"):
            raise RecorderError(
                f"[handoff] wyoming: {h.wyoming!r}: the socket's path must be absolute "
                "(unix:///PATH)"
            )
    if h.keep_audio not in KEEP_AUDIO:
        raise RecorderError(
            f"[handoff] keep_audio: must be one of {', '.join(KEEP_AUDIO)}, got {h.keep_audio!r}"
        )
    if h.keep_audio == "until_transcribed" and not h.wyoming:
        raise RecorderError(
            '[handoff] keep_audio: "until_transcribed" needs [handoff] wyoming (a transcriber)'
        )


def parse_duration(text: str, what: str) -> float:
    """ "90s", "15m", "12h", "30d", "2w" (or a bare number of seconds) in seconds."""
    t = text.strip().lower()
    unit = _UNITS_S.get(t[-1:])
    number = t[:-1] if unit else t
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        value = -1.0
    if not t or not 0 <= value <= MAX_DURATION_S:
        raise RecorderError(f"{what}: {text!r} is not a duration like 90s, 15m, 12h, 30d or 2w")
    return value


def check_range(where: str, f: dataclasses.Field, value: Any) -> None:
    if value is None or "lo" not in f.metadata:
        return
    lo, hi, lo_open = f.metadata["lo"], f.metadata["hi"], f.metadata["lo_open"]
    if (
        value != value
        or (lo is not None and (value <= lo if lo_open else value < lo))
        or (hi is not None and value > hi)
    ):
        low = f"above {lo}" if lo_open else f"at least {lo}"
        raise RecorderError(f"{where}: must be {low} and at most {hi}, got {value!r}")


def validate(config: Config, where: str = "config") -> Config:
    """Checks across keys and values that a command-line flag may also have set."""
    for f in dataclasses.fields(Config):
        if f.name == "base_dir":
            continue
        section = getattr(config, f.name)
        for sf in dataclasses.fields(section):
            check_range(f"{where}: [{f.name}] {sf.name}", sf, getattr(section, sf.name))
    if not config.wake.models:
        raise RecorderError(f"{where}: [wake] models: at least one model is needed")
    if config.log.level not in LOG_LEVELS:
        raise RecorderError(f"{where}: [log] level: must be one of {', '.join(LOG_LEVELS)}")
    if config.storage.max_age:
        parse_duration(config.storage.max_age, f"{where}: [storage] max_age")
    if config.vad.max_length_s < config.vad.min_speech_s:
        raise RecorderError(f"{where}: [vad] max_length_s: must be at least min_speech_s")
    return config
