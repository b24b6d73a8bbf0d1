"""recorder: a wake-word gated, on-device voice recorder."""

import os

__version__ = "0.1.0"

# Nothing leaves the device: onnxruntime's PyPI builds otherwise look up a telemetry host some
# seconds after the first session is created. This runs before any module imports onnxruntime.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
