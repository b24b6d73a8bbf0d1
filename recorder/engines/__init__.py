"""Wake-word engines: each turns 80 ms frames into a score per wake word.

`base.py` holds the `WakeEngine` protocol; `oww.py` is openWakeWord's feature pipeline and
classifiers on onnxruntime; `micro.py` runs microWakeWord models through pymicro-wakeword (an
optional package, imported only when a micro model is asked for); `composite.py` runs several
engines on the same frames.
"""

from recorder.engines.base import WakeEngine
from recorder.engines.composite import CompositeEngine
from recorder.engines.micro import MicroWakeWordEngine
from recorder.engines.oww import OpenWakeWordEngine

__all__ = ["CompositeEngine", "MicroWakeWordEngine", "OpenWakeWordEngine", "WakeEngine"]
