"""Wake-word engines: each turns 80 ms frames into a score per wake word.

`base.py` holds the `WakeEngine` protocol; `oww.py` is openWakeWord's feature pipeline and
classifiers on onnxruntime.
"""

from recorder.engines.base import WakeEngine
from recorder.engines.oww import OpenWakeWordEngine

__all__ = ["OpenWakeWordEngine", "WakeEngine"]
