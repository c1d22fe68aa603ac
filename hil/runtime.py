"""The runtime folder: where a run keeps its private files, and how what a dead run
left behind is found and removed.

A run writes key material (the terminal's flash holds its keys), logs and, as root,
the files pcscd loads. None of it goes to a predictable name in a shared temp folder:
everything lives under one **runtime folder** that is private to the user running
pos-hil, checked every time it is used::

    <runtime folder>/              0700, owned by the runner, never a symlink
      rig-XXXXXXXX/                one rig's work folder (0700, made by mkdtemp)
        owner.json                 {"format", "run_id", "pid", "start_time", "created"}
        owner.lock                 flock held by the owning process while it lives
        started/<pid>.json         each process the rig started and has not seen end
        flash/, dut-stderr.log     the terminal's flash (default) and output
      hil-pcscd-<port>/            hil's pcscd and its card reader pool (hil.cards.pcscd)

The runtime folder is ``$HIL_RUNTIME_DIR`` if set, else ``/run/pos-hil`` for root
(one place per host, whatever login session), else ``$XDG_RUNTIME_DIR/pos-hil``, else
``<temp dir>/pos-hil-<uid>``. Inside a folder that only its owner can write, nobody
else can plant a symlink or swap a file, so paths below it are used plainly; the
folder itself is made with ``mkdir(0700)`` and checked through a descriptor opened
with ``O_NOFOLLOW | O_DIRECTORY``.

**What a dead run left behind.** A run killed with SIGKILL runs no teardown. Its
terminal notices through its watchdog pipe (``HIL_RIG_ALIVE_FD``) and powers off, but
a terminal written by someone else may not; its work folder stays. So every new rig
first looks at the work folders in the runtime folder: one whose owner no longer holds
``owner.lock`` belongs to a dead run. The processes it recorded are stopped, but only
after checking that each is still the same process (pid and start time from
``/proc/PID/stat``) and that it carries the dead run's ``HIL_RUN_ID`` in its
environment; then the folder is removed. Never by a process name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import select
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from hil.errors import RigError
from hil.runinfo import RUN_ID_ENV, run_id

log = logging.getLogger(__name__)

RUNTIME_DIR_ENV = "HIL_RUNTIME_DIR"
WORK_PREFIX = "rig-"
#: A work folder's name: WORK_PREFIX and mkdtemp's eight characters. Only these are ever
#: cleaned up as a dead run's: anything else in the runtime folder (the terminal locks,
#: pcscd's folder) is not a work folder, whatever its name starts with.
_WORK_FOLDER_NAME = re.compile(re.escape(WORK_PREFIX) + r"[a-z0-9_]{8}")
OWNER_FILE = "owner.json"
LOCK_FILE = "owner.lock"
STARTED_DIR = "started"
OWNER_FORMAT = "pos-hil-work/1"
#: a work folder without an owner record is being made right now, unless it is older
UNOWNED_GRACE_S = 60.0
#: a dead run's process gets this long to power off after SIGTERM before SIGKILL
STOP_GRACE_S = 3.0


def default_runtime_dir(environ: Mapping[str, str], uid: int, temp_dir: str) -> Path:
    """Where the runtime folder is for this user (see the module docstring)."""
    if environ.get(RUNTIME_DIR_ENV):
        return Path(environ[RUNTIME_DIR_ENV])
    if uid == 0:
        return Path("/run/pos-hil")
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "pos-hil"
    return Path(temp_dir) / f"pos-hil-{uid}"


def runtime_root() -> Path:
    """The checked runtime folder, made if missing; RigError (one line) if unsafe."""
    path = default_runtime_dir(os.environ, os.geteuid(), tempfile.gettempdir())
    return private_dir(path)


def private_dir(path: Path) -> Path:
    """``path`` as a folder only we can use: made atomically with mode 0700 if missing;
    refused if it is a symlink, not a folder, not ours, or open to others."""
    made = False
    try:
        os.mkdir(path, 0o700)
        made = True
    except FileExistsError:
        pass
    except OSError as e:
        raise RigError(f"runtime folder {path}: cannot create it: {e.strerror}") from e
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        kind = "a symlink" if os.path.islink(path) else "not a folder"
        raise RigError(f"runtime folder {path}: refused: it is {kind}") from e
    try:
        if made:
            os.fchmod(fd, 0o700)  # the umask may have taken bits we need (never added any)
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if info.st_uid != os.geteuid():
        raise RigError(
            f"runtime folder {path}: refused: owned by uid {info.st_uid}, not by this user "
            f"(uid {os.geteuid()}); remove it or set {RUNTIME_DIR_ENV}"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise RigError(
            f"runtime folder {path}: refused: mode {stat.S_IMODE(info.st_mode):04o} lets "
            f"others in, it must be 0700 (chmod 700 it if it is yours)"
        )
    return path


# --- processes, recognised by pid, start time and run ID ------------------------------


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat);
    None if no such process (or a zombie). With the pid it names one process for good:
    a reused pid has another start time."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if not fields or fields[0] == "Z":
        return None
    return int(fields[19])  # fields[0] is field 3 (state)


def carries_run_id(pid: int, run: str) -> bool:
    """Whether ``pid`` was started with ``HIL_RUN_ID=run`` in its environment."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{RUN_ID_ENV}={run}".encode() in environ.split(b"\0")


def processes_of_run(run: str) -> list[int]:
    """Every process on this host started with ``HIL_RUN_ID=run`` (the runner, its
    terminal, helpers): how a run's leftovers are found, never by a process name."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [pid for pid in pids if carries_run_id(pid, run)]


@dataclass(frozen=True)
class StartedProcess:
    """A process a rig started, as recorded in its work folder."""

    pid: int
    start_time: int
    run_id: str
    command: str

    def is_running(self) -> bool:
        return process_start_time(self.pid) == self.start_time

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command}, run {self.run_id})"


def stop_process(process: StartedProcess) -> bool:
    """Stop a dead run's process and its process group: SIGTERM (a terminal powers off
    cleanly), SIGKILL after ``STOP_GRACE_S``. Only if it is still the process that
    was recorded and carries its run ID. Returns whether it is gone."""
    try:
        # A pidfd names this process for good: signals sent through it can never
        # reach a later process that got the same pid.
        pidfd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return True
    try:
        if not process.is_running():
            return True  # ended; the pid now belongs to someone else, or to nobody
        if not carries_run_id(process.pid, process.run_id):
            log.warning(
                "not stopping %s: its environment lacks %s=%s, so it may not be ours",
                process.describe(),
                RUN_ID_ENV,
                process.run_id,
            )
            return False
        for signum, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            _signal_group(pidfd, process.pid, signum)
            if select.select([pidfd], [], [], wait)[0]:
                log.warning("stopped %s left by a dead run", process.describe())
                # The terminal is gone; whatever it started in its group goes with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                return True
        return False
    finally:
        os.close(pidfd)


def _signal_group(pidfd: int, pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signum)
    # The rig starts each terminal as the leader of its own session and group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)


class ProcessLedger:
    """The processes a rig started and has not yet seen end: ``started/<pid>.json`` in
    its work folder, so that a later run can stop them if this one dies."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / STARTED_DIR

    def record(self, pid: int, command: Sequence[str]) -> None:
        start_time = process_start_time(pid)
        if start_time is None:
            return  # already gone: nothing to leave behind
        entry = {
            "pid": pid,
            "start_time": start_time,
            "run_id": run_id(),
            "command": " ".join(command)[:200],
        }
        self.folder.mkdir(mode=0o700, exist_ok=True)
        _write_json_atomically(self.folder / f"{pid}.json", entry)

    def forget(self, pid: int) -> None:
        (self.folder / f"{pid}.json").unlink(missing_ok=True)

    def entries(self) -> list[StartedProcess]:
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                data = json.loads(path.read_text())
                found.append(
                    StartedProcess(
                        int(data["pid"]),
                        int(data["start_time"]),
                        str(data["run_id"]),
                        str(data.get("command", "")),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("unreadable process record %s", path)
        return found


# --- work folders -----------------------------------------------------------------------


class WorkFolder:
    """One rig's private folder under the runtime folder, held while its owner lives."""

    def __init__(self, path: Path, lock_fd: int, run: str) -> None:
        self.path = path
        self.run_id = run
        self._lock_fd = lock_fd

    @classmethod
    def create(cls) -> WorkFolder:
        """A new work folder, after removing those of dead runs."""
        root = runtime_root()
        remove_dead_work_folders(root)
        path = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=root))
        lock_fd = os.open(
            path / LOCK_FILE,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        # Held for as long as this process lives: the kernel lets go when it dies, by
        # whatever signal, and that is how a later run knows the folder is orphaned.
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        run = run_id()
        _write_json_atomically(
            path / OWNER_FILE,
            {
                "format": OWNER_FORMAT,
                "run_id": run,
                "pid": os.getpid(),
                "start_time": process_start_time(os.getpid()),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        return cls(path, lock_fd, run)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def is_work_folder_name(name: str) -> bool:
    """Whether ``name`` is a run's work folder (``WorkFolder.create`` makes them)."""
    return _WORK_FOLDER_NAME.fullmatch(name) is not None


def remove_dead_work_folders(root: Path | None = None) -> None:
    """Remove every work folder under ``root`` whose owner is dead, stopping the
    processes it recorded first."""
    root = runtime_root() if root is None else root
    for entry in sorted(root.iterdir()):
        if is_work_folder_name(entry.name):
            clean_up_if_dead(entry)


def clean_up_if_dead(folder: Path) -> list[StartedProcess]:
    """If ``folder``'s owner is dead: stop what it recorded, remove it. Returns the
    recorded processes still running (those of a live owner, or any that would not
    stop); [] once the folder is gone."""
    with _owner_lock(folder) as owner_dead:
        if owner_dead is None:
            return []
        ledger = ProcessLedger(folder)
        if not owner_dead:
            return [p for p in ledger.entries() if p.is_running()]
        survivors = [p for p in ledger.entries() if not stop_process(p)]
        if survivors:
            log.warning(
                "work folder %s of a dead run kept: %s still running",
                folder,
                ", ".join(p.describe() for p in survivors),
            )
            return survivors
        log.warning("removing work folder %s of a dead run (%s)", folder, _owner_text(folder))
        shutil.rmtree(folder, ignore_errors=True)
        return []


def stop_left_behind(folder: Path) -> list[StartedProcess]:
    """The process that owned ``folder`` is known to be dead (a card reader claim says
    so): stop what it recorded there, and remove the folder if it is a work folder of
    ours. Returns the recorded processes still running ([] when all are gone)."""
    if folder.parent == runtime_root() and is_work_folder_name(folder.name):
        return clean_up_if_dead(folder)
    # A folder the caller chose (Rig(work_dir=...)): not ours to remove.
    return [p for p in ProcessLedger(folder).entries() if not stop_process(p)]


@contextlib.contextmanager
def _owner_lock(folder: Path) -> Iterator[bool | None]:
    """Yields True (owner dead: we hold its lock now), False (owner alive) or None
    (not a work folder, or gone)."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        yield None
        return
    if not stat.S_ISDIR(info.st_mode):
        yield None
        return
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        # Being made right now, or its maker died before it held the lock.
        if time.time() - info.st_mtime > UNOWNED_GRACE_S:
            shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        # The owner writes owner.json only once it holds the lock: without it the folder
        # is one being made, whose maker has not locked it yet.
        if not (folder / OWNER_FILE).exists():
            yield None if time.time() - info.st_mtime <= UNOWNED_GRACE_S else True
            return
        yield True
    finally:
        os.close(fd)


def _owner_text(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        return f"run {owner['run_id']}, pid {owner['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


def _write_json_atomically(path: Path, value: object) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value), encoding="utf-8")
    os.replace(temporary, path)
