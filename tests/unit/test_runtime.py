"""The private runtime folder and the clean-up of what dead runs left behind, with real
folders, real processes and real kills (each test in its own runtime folder)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.errors import RigError
from hil.runinfo import RUN_ID_ENV
from hil.runtime import (
    LOCK_FILE,
    OWNER_FILE,
    RUNTIME_DIR_ENV,
    ProcessLedger,
    StartedProcess,
    WorkFolder,
    default_runtime_dir,
    private_dir,
    process_start_time,
    remove_dead_work_folders,
    runtime_root,
)
from tests.dead_run import killed_after_first_line

NOBODY = 65534


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runtime"
    monkeypatch.setenv(RUNTIME_DIR_ENV, str(folder))
    monkeypatch.setenv(RUN_ID_ENV, "unit-runtime")
    return folder


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process of run 'dead-run' that ignores SIGTERM, as a vendor terminal might."""
    process = subprocess.Popen(
        [sys.executable, "-c", _IGNORES_SIGTERM],
        env={**os.environ, RUN_ID_ENV: "dead-run"},
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


_IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(120)"
)


def test_the_runtime_folder_is_per_user_and_root_uses_run() -> None:
    assert default_runtime_dir({}, 0, "/tmp") == Path("/run/pos-hil")
    assert default_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/0"}, 0, "/tmp") == Path(
        "/run/pos-hil"
    )
    assert default_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}, 1000, "/tmp") == Path(
        "/run/user/1000/pos-hil"
    )
    assert default_runtime_dir({}, 1000, "/tmp") == Path("/tmp/pos-hil-1000")
    assert default_runtime_dir({RUNTIME_DIR_ENV: "/x"}, 1000, "/tmp") == Path("/x")


def test_a_missing_runtime_folder_is_made_private(root: Path) -> None:
    old_umask = os.umask(0o777)  # even a umask that takes every bit
    try:
        assert runtime_root() == root
    finally:
        os.umask(old_umask)
    info = os.lstat(root)
    assert info.st_mode & 0o777 == 0o700 and info.st_uid == os.geteuid()


def test_a_planted_symlink_is_refused_and_nothing_is_written_through_it(root: Path) -> None:
    target = root.parent / "attacker"
    target.mkdir(mode=0o700)
    root.symlink_to(target)
    with pytest.raises(RigError) as refused:
        WorkFolder.create()
    assert str(refused.value) == f"runtime folder {root}: refused: it is a symlink"
    assert list(target.iterdir()) == []


def test_a_folder_open_to_others_is_refused(root: Path) -> None:
    root.mkdir(mode=0o700)
    root.chmod(0o755)
    with pytest.raises(RigError, match=r"refused: mode 0755 lets others in, it must be 0700"):
        runtime_root()
    assert list(root.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder away")
def test_a_folder_owned_by_someone_else_is_refused(root: Path) -> None:
    root.mkdir(mode=0o700)
    os.chown(root, NOBODY, NOBODY)
    with pytest.raises(RigError) as refused:
        WorkFolder.create()
    assert "\n" not in str(refused.value)
    assert f"refused: owned by uid {NOBODY}, not by this user" in str(refused.value)
    assert list(root.iterdir()) == []


def test_a_file_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(RigError, match="refused: it is not a folder"):
        private_dir(path)


def test_a_work_folder_is_private_owned_and_removed(root: Path) -> None:
    folder = WorkFolder.create()
    assert folder.path.parent == root and os.lstat(folder.path).st_mode & 0o777 == 0o700
    owner = json.loads((folder.path / OWNER_FILE).read_text())
    assert owner["run_id"] == "unit-runtime" and owner["pid"] == os.getpid()
    assert owner["start_time"] == process_start_time(os.getpid())
    remove_dead_work_folders()  # its owner (this process) lives: left alone
    assert folder.path.is_dir()
    folder.remove()
    assert not folder.path.exists()


def _dead_run_folder(root: Path, process: subprocess.Popen[bytes], run: str = "dead-run") -> Path:
    """A work folder whose owner was SIGKILLed after recording ``process``."""
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from hil.runtime import ProcessLedger, WorkFolder
        folder = WorkFolder.create()
        ProcessLedger(folder.path).record({process.pid}, ["terminal"])
        print(folder.path, flush=True)
        time.sleep(120)
        """
    )
    return Path(killed_after_first_line(script, run))


def test_a_dead_runs_terminal_is_stopped_and_its_folder_removed(
    root: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    folder = _dead_run_folder(root, sleeper)
    assert (folder / LOCK_FILE).exists() and sleeper.poll() is None
    started = time.monotonic()
    remove_dead_work_folders()
    # It ignored SIGTERM, so SIGKILL followed after the grace period.
    assert sleeper.wait(1) == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert not folder.exists()


def test_a_reused_pid_is_never_killed(root: Path, sleeper: subprocess.Popen[bytes]) -> None:
    folder = _dead_run_folder(root, sleeper)
    record = folder / "started" / f"{sleeper.pid}.json"
    entry = json.loads(record.read_text())
    entry["start_time"] -= 1  # the recorded process was another one with the same pid
    record.write_text(json.dumps(entry))
    remove_dead_work_folders()
    assert sleeper.poll() is None, "a process with the recorded pid but not the recorded start"
    assert not folder.exists()


def test_a_process_without_the_runs_id_is_never_killed(
    root: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    folder = _dead_run_folder(root, sleeper, run="another-run")
    remove_dead_work_folders()
    assert sleeper.poll() is None
    assert folder.exists(), "kept while something it recorded may still run"


def test_the_ledger_forgets_ended_processes(root: Path) -> None:
    ledger = ProcessLedger(root.parent)
    process = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    ledger.record(process.pid, ["python", "-c", "input()"])
    [entry] = ledger.entries()
    assert entry == StartedProcess(
        process.pid, process_start_time(process.pid) or -1, "unit-runtime", "python -c input()"
    )
    assert entry.is_running()
    process.communicate(b"\n")
    assert not entry.is_running()
    ledger.forget(process.pid)
    assert ledger.entries() == []
