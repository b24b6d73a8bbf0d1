"""`recorder run` until it listens: which modules it has imported by then. For the tests of
what the daemon's start loads, and for the benchmark's floor of the standard library."""

from __future__ import annotations

import subprocess
import sys

UNTIL_LISTENING = """
import os, sys
from recorder import cli

class Watch:  # the daemon's `-> listening` line: the modules imported so far, then exit 0
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        if "-> listening" in text:
            print(" ".join(sorted(sys.modules)), flush=True)
            os._exit(0)
        return self.stream.write(text)
    def __getattr__(self, name):
        return getattr(self.stream, name)

sys.stderr = Watch(sys.stderr)
sys.exit(cli.main(sys.argv[1:]) or 3)
"""


def modules_at_listening(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    """The modules `recorder ARGV` (a `run`) has imported when it reports `listening`."""
    done = subprocess.run(
        [sys.executable, "-c", UNTIL_LISTENING, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"recorder {' '.join(argv)} did not listen: {done.stderr[-2000:]}")
    return set(done.stdout.split())
