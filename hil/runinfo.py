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


# --- who ran it, where, with which pos-hil ------------------------------------------------

OPERATOR_ENV = "HIL_OPERATOR"
STATION_ENV = "HIL_STATION"


def operator(given: str | None = None) -> str:
    """Who ran the run: ``--operator``, else $HIL_OPERATOR, else the login name."""
    if given:
        return given
    from_env = os.environ.get(OPERATOR_ENV, "")
    if from_env:
        return from_env
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a bare container)
        return "unknown"


def station() -> str:
    """The machine the run ran on: $HIL_STATION, else the host name."""
    import socket

    return os.environ.get(STATION_ENV, "") or socket.gethostname()


def pos_hil_commit() -> str:
    """``git describe`` of the pos-hil checkout this runs from (with ``-dirty`` when it
    has changes), or ``none`` for an installed pos-hil or when git is unavailable."""
    import subprocess
    from pathlib import Path

    import hil

    checkout = Path(hil.__file__).resolve().parent.parent
    if not (checkout / ".git").exists():  # only pos-hil's own checkout, never a parent's
        return "none"
    try:
        described = subprocess.run(
            ["git", "-C", str(checkout), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    text = described.stdout.strip()
    return text if described.returncode == 0 and text else "none"
