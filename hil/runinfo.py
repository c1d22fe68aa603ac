"""The run ID: one per run, in every artifact the run writes and every process it starts.

``hil run`` (or a plain pytest session with the plugin) takes the ID from
``HIL_RUN_ID`` when the caller set one (a CI job naming its runs), else makes one, and
puts it back into the environment so every process the run starts (the terminal,
pcscd, helpers) carries it: that is how what a dead run left behind is recognised,
never by a process name.
"""

from __future__ import annotations

import os
import re
import secrets
import time

from hil.errors import ConfigError

RUN_ID_ENV = "HIL_RUN_ID"

_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_run_id() -> str:
    """``20261129T213001Z-3f9a1c``: UTC start time, then 24 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def run_id() -> str:
    """This run's ID: ``HIL_RUN_ID`` if set, else a new one, which is then exported so
    child processes inherit it. A malformed ``HIL_RUN_ID`` is a ConfigError: it names
    files and folders, so it must be a plain word."""
    current = os.environ.get(RUN_ID_ENV, "")
    if not current:
        current = new_run_id()
        os.environ[RUN_ID_ENV] = current
    elif not _VALID.match(current):
        raise ConfigError(
            f"{RUN_ID_ENV}: {current!r} is not a run ID (letters, digits, '.', '_', '-'; "
            "at most 64; starting with a letter or digit)"
        )
    return current
