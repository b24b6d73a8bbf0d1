"""The sidecar's record and the id format."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from recorder import __version__
from recorder.machine import EndReason, UtteranceReady, WakeDetected
from recorder.recording import RecordingMeta, time_id, utc_iso

T0 = datetime(2026, 11, 28, 3, 58, 1, 123456, tzinfo=UTC)


def test_ids_and_times_are_utc_to_the_millisecond_and_sort_by_time():
    assert utc_iso(T0) == "2026-11-28T03:58:01.123Z"
    assert time_id(T0) == "20261128T035801.123Z"
    later = T0.replace(second=2, microsecond=0)
    assert sorted([time_id(later), time_id(T0)]) == [time_id(T0), time_id(later)]


def a_request() -> UtteranceReady:
    """40 frames from frame 30, detected at frame 39."""
    wake = WakeDetected(frame_index=39, wake_word="hey_jarvis", score=0.876543)
    return UtteranceReady(
        wake,
        start_frame=30,
        end_frame=70,
        end_reason=EndReason.SILENCE,
        audio=np.zeros(40 * 1280, dtype=np.int16),
    )


def test_a_request_becomes_its_sidecar_record():
    event = a_request()
    meta = RecordingMeta.of(event, T0, 0.5, "file:x.wav", {"chime_offset_s": 3.2})
    assert meta.id == "20261128T035803.523Z"  # the run's start plus 30 frames of 80 ms
    assert meta.to_json() == {
        "wake_word": "hey_jarvis",
        "score": 0.8765,
        "threshold": 0.5,
        "started_at": "2026-11-28T03:58:03.523Z",
        "duration_s": 3.2,
        "sample_rate": 16000,
        "channels": 1,
        "sample_format": "s16le",
        "samples": 51200,
        "end_reason": "silence",
        "source": "file:x.wav",
        "source_offset_s": 2.4,
        "wake_offset_s": 3.2,
        "recorder_version": __version__,
        "chime_offset_s": 3.2,
    }


def test_a_sidecar_record_reads_back_into_the_same_record():
    from recorder.sources.base import Gap

    event = a_request()
    meta = RecordingMeta.of(
        event, T0, 0.5, "mic", {"device_rate": 48000}, gaps=[Gap(32 * 1280, 640)]
    )
    written = {**meta.to_json(), "id": meta.id, "audio_sha256": "ab", "transcript": {"text": "x"}}
    back = RecordingMeta.from_json(written)
    assert back.to_json() == written  # storage's keys and the transcript are kept as extra
    assert (back.id, back.samples, back.gaps) == (meta.id, meta.samples, meta.gaps)
    assert back.started_at == meta.started_at.replace(microsecond=523000)  # to the millisecond
    older = RecordingMeta.from_json({**written, "recorder_version": "0.0.1"})
    assert older.to_json()["recorder_version"] == "0.0.1"


def test_a_sidecar_without_a_field_or_with_a_wrong_one_is_a_value_error():
    wake = WakeDetected(frame_index=39, wake_word="hey_jarvis", score=0.9)
    event = UtteranceReady(wake, 30, 70, EndReason.SILENCE, np.zeros(1280, dtype=np.int16))
    good = RecordingMeta.of(event, T0, 0.5, "mic").to_json()
    for bad in (
        {k: v for k, v in good.items() if k != "samples"},
        {**good, "samples": "1280"},
        {**good, "score": True},
        {**good, "started_at": "yesterday"},
        {**good, "gaps": [{"offset_s": 0.1}]},
        {**good, "gaps": 3},
    ):
        with pytest.raises(ValueError, match="not a recording's sidecar record"):
            RecordingMeta.from_json(bad)
