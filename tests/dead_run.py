"""A run that dies without teardown: a Python script run as run ``run``, SIGKILLed as
soon as it has printed its first line (what it set up, for the test to check)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from hil.runinfo import RUN_ID_ENV


def killed_after_first_line(script: str, run: str) -> str:
    owner = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, RUN_ID_ENV: run},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline().strip()
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert line, "the run died before it said what it set up"
    return line
