"""One run drives a bench terminal at a time.

A physical terminal (``[dut] driver = "physical"``) is locked by its model and serial
number while a rig drives it: two rig files describing the same bench name the same
terminal, so a second run, or a second rig of ``hil run --rigs`` listing the bench
twice, can never drive a terminal in use. The second waits up to ``[rig] lock_wait_s``
(default 0: it does not wait) and then stops as a rig fault (exit 3) naming the holder:
its run ID, process, rig file and since when.

The lock is an ``flock`` on a file in the private runtime folder (hil.runtime): the
kernel drops it when the holder dies, however it dies, so a killed run never leaves a
bench locked. The file holds the holder's note, for the message only. Terminals the rig
starts itself (sim, command) are not locked: every rig gets its own.

Scope: the runs of one user on one machine share the runtime folder. Benches shared by
several machines or people are what labgrid's places are for (docs/labgrid.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path

from hil.errors import RigError
from hil.lifecycle import notice
from hil.runinfo import run_id
from hil.runtime import private_dir, runtime_root

LOCK_FOLDER = "terminal-locks"
#: How often a waiting run tries again (a lock file gives no wake-up to wait on).
_RETRY_S = 0.2


def lock_name(model: str, serial_number: str) -> str:
    """The lock file's name for a terminal: its model and serial, file-name safe."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{model}--{serial_number}") + ".lock"


class TerminalLock:
    """A held lock on one terminal; ``release`` (or the process's end) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(
        cls,
        model: str,
        serial_number: str,
        *,
        rig_name: str,
        rig_file: str,
        wait_s: float = 0.0,
        folder: Path | None = None,
    ) -> TerminalLock:
        """Take the terminal's lock, waiting up to ``wait_s``; RigError naming the
        holder when it stays taken."""
        folder = private_dir((folder or runtime_root()) / LOCK_FOLDER)
        path = folder / lock_name(model, serial_number)
        terminal = f"terminal {model} {serial_number}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        deadline = time.monotonic() + wait_s
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _holder(fd)
                    if time.monotonic() >= deadline:
                        waited = f"waited {wait_s:g} s" if wait_s else "did not wait"
                        raise RigError(
                            f"rig '{rig_name}': {terminal} is in use by {holder}; "
                            f"{waited} ([rig] lock_wait_s)"
                        ) from None
                    if not told:
                        notice(
                            f"rig '{rig_name}': {terminal} is in use by {holder}; "
                            f"waiting up to {wait_s:g} s for it"
                        )
                        told = True
                    time.sleep(_RETRY_S)
            note = {
                "run_id": run_id(),
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "rig": rig_name,
                "rig_file": rig_file,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            data = json.dumps(note).encode("utf-8")
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd)

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # no stale note for the next holder's message
        os.close(self._fd)  # the flock goes with the last descriptor
        self._fd = -1


def _holder(fd: int) -> str:
    """The holder's note, in words; what is known if it is being written or unreadable."""
    try:
        note = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (
            f"run {note['run_id']} (pid {note['pid']} on {note['host']}, rig '{note['rig']}' "
            f"from {note['rig_file']}, since {note['since']})"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return "another run (its note is being written)"
