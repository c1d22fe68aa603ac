"""hil.riglock: a bench terminal is driven by one run at a time; the second is told who
holds it, waits if told to, and a holder that dies frees it whatever killed it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hil.errors import RigError
from hil.riglock import TerminalLock, lock_name


def _take(folder: Path, wait_s: float = 0.0, rig: str = "bench-a") -> TerminalLock:
    return TerminalLock.acquire(
        "POS-A8", "SN 0001/x", rig_name=rig, rig_file=f"{rig}.toml", wait_s=wait_s, folder=folder
    )


def test_a_second_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    held = _take(tmp_path, rig="bench-a")
    with pytest.raises(RigError) as refused:
        _take(tmp_path, rig="bench-b")
    message = str(refused.value)
    assert message.startswith("rig 'bench-b': terminal POS-A8 SN 0001/x is in use by run ")
    assert f"(pid {os.getpid()} on " in message and "rig 'bench-a' from bench-a.toml" in message
    assert message.endswith("did not wait ([rig] lock_wait_s)")
    held.release()
    _take(tmp_path).release()  # free again
    assert lock_name("POS-A8", "SN 0001/x") == "POS-A8--SN_0001_x.lock"


def test_a_run_told_to_wait_gets_the_terminal_once_freed(tmp_path: Path) -> None:
    held = _take(tmp_path)
    threading.Timer(0.3, held.release).start()
    started = time.monotonic()
    lock = _take(tmp_path, wait_s=30.0)
    assert time.monotonic() - started >= 0.3  # it did wait for the holder
    lock.release()


def test_waiting_is_bounded(tmp_path: Path) -> None:
    held = _take(tmp_path)
    started = time.monotonic()
    with pytest.raises(RigError, match=r"waited 0\.3 s"):
        _take(tmp_path, wait_s=0.3)
    assert time.monotonic() - started >= 0.3
    held.release()


def test_a_holder_killed_with_sigkill_leaves_the_terminal_free(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from hil.riglock import TerminalLock;"
        f"TerminalLock.acquire('POS-A8', 'SN 0001/x', rig_name='x', rig_file='x.toml', "
        f"folder=Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RigError, match=f"pid {holder.pid} on"):
            _take(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    _take(tmp_path).release()


def test_a_runs_clean_up_of_dead_work_folders_leaves_the_locks_alone(tmp_path: Path) -> None:
    """Every run starts by removing dead runs' work folders from the runtime folder. The
    locks live there too: cleaning up must not take a held lock away (it did, once the
    lock folder was a minute old: a second run then drove a terminal in use)."""
    from hil.runtime import remove_dead_work_folders

    held = _take(tmp_path)
    try:
        for entry in tmp_path.iterdir():  # the lock folder, long since made
            os.utime(entry, (time.time() - 3600, time.time() - 3600))
        remove_dead_work_folders(tmp_path)
        with pytest.raises(RigError, match="is in use by run "):
            _take(tmp_path, rig="bench-b")
    finally:
        held.release()


def test_only_a_work_folders_name_is_taken_for_one() -> None:
    from hil.runtime import is_work_folder_name

    assert is_work_folder_name("rig-a1b2_c3d")
    for name in ("rig-locks", "terminal-locks", "rig-a1b2_c3d4", "hil-pcscd-29990"):
        assert not is_work_folder_name(name), name
