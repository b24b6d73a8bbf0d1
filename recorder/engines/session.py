"""onnxruntime sessions as the engines run them: one thread, no spinning, no telemetry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recorder.errors import RecorderError


def session(model: Path | bytes, label: Path | str | None = None) -> Any:
    """An inference session on the CPU for a model file or a serialized model; `label` names
    a serialized model in the one-line error when it cannot be loaded."""
    import onnxruntime as ort

    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    name = str(label if label is not None else model if isinstance(model, Path) else "(in memory)")
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several unrelated types for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecorderError(f"model {name}: cannot be loaded ({first})") from None
