"""recorder: a wake-word gated, on-device voice recorder."""

__version__ = "0.1.0"
