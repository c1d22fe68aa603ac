"""pcscd with a pool of vpcd readers, shared by every hil session on the host.

Only one pcscd runs per host (its socket is /run/pcscd/pcscd.comm, fixed in Debian's
build), so hil runs one pcscd for all its sessions: ``pcscd --foreground --config DIR``
with a reader folder of its own (no systemd, no edit of /etc) holding a *pool* of vpcd
readers. Reader ``i`` of the pool is named ``<name> <i>`` and listens on
``port + 2*i`` (slot 0, the chip reader) and ``port + 2*i + 1`` (slot 1, contactless).

Each session claims one free reader of the pool (a claim file holding its pid, start
time, run ID and work folder, under an ``flock``), so parallel rigs (pytest-xdist
workers, two suites at once) each get their own slots. When every reader is taken, a
claim waits (bounded) for one to come free. A claim whose session died is freed only
once nothing that session started still runs: a terminal of a dead run still watching
the reader would answer the next run's card too (hil.runtime stops it first). The first
session starts pcscd if no running one lists the pool; the last session to release its
claim stops it, and only if hil started it (recognised by its ``--config`` folder): a
pcscd somebody else runs is used, never stopped. A hil pcscd left behind by a killed
run is reused when it lists the pool, replaced when it does not and nobody holds a
claim.

The pool's files (lock, claims, pcscd's log, its reader folder and the driver copies
it loads, as root) live in ``hil-pcscd-<port>`` under the private runtime folder
(hil.runtime), never under a predictable name in a shared temp folder.

vpcd listens for the card side on every interface (``DEVICENAME /dev/null:PORT``): its
reversed mode (vpcd connecting out to a card server on loopback) crashes pcscd as soon
as a card is removed (vsmartcard 3.3, measured), so it cannot model removal. See
docs/cards.md for the exposure and how a lab limits it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import RigError
from hil.lifecycle import notice
from hil.runinfo import run_id
from hil.runtime import private_dir, process_start_time, runtime_root, stop_left_behind

log = logging.getLogger(__name__)

PCSCD_PID_FILE = Path("/run/pcscd/pcscd.pid")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
CONFIG_MARKER = "hil-pcscd-"
START_TIMEOUT_S = 10.0
#: how often a claim waiting for a free reader looks again (another process releases
#: it; there is no event to wait on)
CLAIM_POLL_S = 0.5


@dataclass(frozen=True)
class VpcdReader:
    """One vpcd reader entry: FRIENDLYNAME and the port of its slot 0."""

    name: str
    port: int

    def slot_name(self, slot: int) -> str:
        # pcsc-lite names a reader "<FRIENDLYNAME> <reader index> <slot>", both 2 digits.
        return f"{self.name} 00 {slot:02d}"

    def slot_port(self, slot: int) -> int:
        return self.port + slot

    def config_text(self, driver: Path = VPCD_DRIVER) -> str:
        return (
            "# written by pos-hil (hil.cards.pcscd): one vpcd reader, two slots\n"
            f'FRIENDLYNAME "{self.name}"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"
            f"LIBPATH      {driver}\n"
            f"CHANNELID    0x{self.port:04X}\n"
        )


def list_readers() -> list[str] | None:
    """Readers pcscd lists now; None when no pcscd answers."""
    from smartcard.scard import (
        SCARD_E_NO_READERS_AVAILABLE,
        SCARD_S_SUCCESS,
        SCARD_SCOPE_USER,
        SCardEstablishContext,
        SCardListReaders,
        SCardReleaseContext,
    )

    result, context = SCardEstablishContext(SCARD_SCOPE_USER)
    if result != SCARD_S_SUCCESS:
        return None
    try:
        result, names = SCardListReaders(context, [])
        if result == SCARD_E_NO_READERS_AVAILABLE:
            return []
        if result != SCARD_S_SUCCESS:
            return None
        return [str(n) for n in names]
    finally:
        SCardReleaseContext(context)


def running_pcscd_pid() -> int | None:
    """The pid of a live pcscd, from its pid file or /proc; None if none runs."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(PCSCD_PID_FILE.read_text().strip())
        if _is_pcscd(pid):
            return pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_pcscd(int(entry.name)):
            return int(entry.name)
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_pcscd(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name = stat[stat.find("(") + 1 : stat.rfind(")")]
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    return name == "pcscd" and state != "Z"


def started_by_hil(pid: int) -> bool:
    return any(CONFIG_MARKER in part for part in _cmdline(pid))


EPHEMERAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_port_range(path: Path = EPHEMERAL_PORT_RANGE) -> range | None:
    """The ports this host hands out as source ports of outgoing connections, if known."""
    try:
        low, high = (int(part) for part in path.read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def _taken_port_hint(port: int) -> str:
    # A vpcd port inside the ephemeral range can be held by any outgoing connection
    # (the rig's own card connections included) for as long as that connection lives.
    ephemeral = ephemeral_port_range()
    if ephemeral is None or port not in ephemeral:
        return "choose another [cards] port"
    return (
        f"it is inside this host's ephemeral port range {ephemeral.start}-{ephemeral.stop - 1}, "
        f"where any outgoing connection may hold it: choose a [cards] port below {ephemeral.start}"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As vpcd binds: connections of an earlier pcscd in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))  # where vpcd will listen
        except OSError as e:
            return e.errno != errno.EADDRINUSE
    return True


def _stop(pid: int, timeout: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_pcscd(pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # waiting for another process to exit: no event to wait on
    if _is_pcscd(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class VpcdPool:
    """``size`` vpcd readers named after ``name`` from ``port`` upwards (2 ports each).

    ``driver`` is the vpcd IFD handler a pcscd that hil starts for the pool loads; a
    pcscd already serving the pool is used with whatever driver it loaded.
    bench/bench_cards.py sets it to compare a patched driver (docs/cards.md,
    "Insertion latency: the floor"); rigs always use Debian's.
    """

    name: str
    port: int
    size: int = 4
    driver: Path = VPCD_DRIVER

    def reader(self, index: int) -> VpcdReader:
        # One reader keeps the plain name, so a lab's existing vpcd entry fits as is.
        name = self.name if self.size == 1 else f"{self.name} {index + 1}"
        return VpcdReader(name, self.port + 2 * index)

    def readers(self) -> list[VpcdReader]:
        return [self.reader(i) for i in range(self.size)]

    def slot_names(self) -> list[str]:
        return [r.slot_name(s) for r in self.readers() for s in (0, 1)]

    @property
    def state_dir(self) -> Path:
        """The pool's private folder, checked (RigError if unsafe) and made if missing."""
        return private_dir(runtime_root() / f"{CONFIG_MARKER}{self.port}")

    def driver_copy(self, index: int) -> Path:
        return self.state_dir / "drivers" / f"libifdvpcd-{index + 1}.so"

    def config_text(self) -> str:
        # vpcd keeps its slots in globals of the loaded library, and pcscd loads a
        # library once per path: readers sharing one .so share (and clobber) their
        # slots. A copy of the driver per reader gives each reader its own.
        return "\n".join(r.config_text(self.driver_copy(i)) for i, r in enumerate(self.readers()))


class PcscdClaim:
    """One session's hold on one reader of the pool; release it on close."""

    def __init__(self, pool: VpcdPool, index: int, claim_file: Path) -> None:
        self.pool = pool
        self.index = index
        self.reader = pool.reader(index)
        self._claim_file = claim_file
        self._released = False

    def describe(self) -> str:
        pid = running_pcscd_pid()
        owner = "hil's" if pid is not None and started_by_hil(pid) else "an existing"
        return f"{owner} pcscd pid {pid}, pool reader {self.index + 1}/{self.pool.size}"

    def alive(self) -> bool:
        return running_pcscd_pid() is not None

    def log_tail(self, limit: int = 800) -> str:
        try:
            return (self.pool.state_dir / "pcscd.log").read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        with _locked(self.pool):
            with contextlib.suppress(FileNotFoundError):
                self._claim_file.unlink()
            if _live_claims(self.pool) or _legacy_claims(self.pool):
                return
            pid = running_pcscd_pid()
            if (
                pid is not None
                and started_by_hil(pid)
                and _config_of(pid) == _config_dir(self.pool)
            ):
                _stop(pid)


def _config_dir(pool: VpcdPool) -> Path:
    return pool.state_dir / "reader.conf.d"


def _config_of(pid: int) -> Path | None:
    parts = _cmdline(pid)
    for flag in ("--config", "-c"):
        if flag in parts and parts.index(flag) + 1 < len(parts):
            return Path(parts[parts.index(flag) + 1])
    return None


@contextlib.contextmanager
def _locked(pool: VpcdPool) -> Any:
    with open(pool.state_dir / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ReaderHolder:
    """Who holds a reader of the pool: a live session, or what a dead one left running."""

    index: int
    pid: int
    run_id: str
    dead_run: bool = False

    def describe(self) -> str:
        who = "a terminal of dead run" if self.dead_run else "run"
        return f"reader {self.index + 1}: pid {self.pid} ({who} {self.run_id})"


class ReadersBusy(RigError):
    """Every reader of the pool stayed taken for as long as the claim would wait."""

    def __init__(self, pool: VpcdPool, holders: list[ReaderHolder], waited_s: float) -> None:
        held = "; ".join(h.describe() for h in sorted(holders, key=lambda h: h.index))
        super().__init__(
            f"all {pool.size} card readers of '{pool.name}' stayed in use for "
            f"{waited_s:.0f} s ({held}); raise [cards] readers or reader_wait_s",
            instrument="cards",
        )
        self.holders = holders


def _live_claims(pool: VpcdPool) -> dict[int, ReaderHolder]:
    """Reader index -> who holds it. A claim of a session that died is removed once
    nothing that session started still runs (its terminal is stopped first)."""
    claims: dict[int, ReaderHolder] = {}
    for path in pool.state_dir.glob("claim-*.json"):
        try:
            record = json.loads(path.read_text())
            index, pid = int(record["index"]), int(record["pid"])
            start_time = record.get("start_time")
            run = str(record.get("run_id", "?"))
            work_dir = record.get("work_dir")
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if not 0 <= index < pool.size:
            path.unlink(missing_ok=True)
            continue
        alive = _pid_alive(pid) if start_time is None else process_start_time(pid) == start_time
        if alive:
            claims[index] = ReaderHolder(index, pid, run)
            continue
        survivors = stop_left_behind(Path(work_dir)) if work_dir else []
        if survivors:
            claims[index] = ReaderHolder(index, survivors[0].pid, run, dead_run=True)
        else:
            path.unlink(missing_ok=True)
    return claims


#: where pos-hil before the runtime folder kept the pool (a predictable, shared name)
LEGACY_STATE_ROOT = Path("/tmp")


def _legacy_claims(pool: VpcdPool) -> dict[int, ReaderHolder]:
    """Readers an older pos-hil on this host holds (mixed versions while a lab upgrades).

    Older versions claim in ``/tmp/hil-pcscd-<port>`` and cannot see our claims, but
    share the one pcscd: honouring theirs keeps two terminals off one reader. Only
    read, never written, and only when the folder and the claim are plain entries
    owned by this user (no symlink is followed). Remove once every host has upgraded.
    """
    folder = LEGACY_STATE_ROOT / f"{CONFIG_MARKER}{pool.port}"
    try:
        info = os.lstat(folder)
    except OSError:
        return {}
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return {}
    claims: dict[int, ReaderHolder] = {}
    for path in folder.glob("claim-*.json"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd) as file:
                if os.fstat(file.fileno()).st_uid != os.geteuid():
                    continue
                record = json.load(file)
            index, pid = int(record["index"]), int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if 0 <= index < pool.size and _pid_alive(pid):
            claims[index] = ReaderHolder(index, pid, "of an older pos-hil")
    return claims


def claim_reader(
    pool: VpcdPool,
    *,
    timeout: float = START_TIMEOUT_S,
    wait_s: float = 0.0,
    work_dir: Path | None = None,
) -> PcscdClaim:
    """A reader of ``pool`` for this session, with a pcscd that lists the pool.

    When every reader is taken, waits up to ``wait_s`` for one to come free, saying so
    (``hil.lifecycle.notice``); then raises ``ReadersBusy`` naming the holders.
    ``work_dir`` is the claiming rig's work folder: if this process dies, whatever the
    rig recorded there is stopped before the reader goes to anyone else.
    """
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        with _locked(pool):
            holders = {**_legacy_claims(pool), **_live_claims(pool)}
            _ensure_pcscd(pool, holders, timeout)
            free = [i for i in range(pool.size) if i not in holders]
            if free:
                # From the top: an older pos-hil, blind to our claims, takes the lowest.
                index = free[-1]
                claim_file = pool.state_dir / f"claim-{index}.json"
                record = {
                    "index": index,
                    "pid": os.getpid(),
                    "start_time": process_start_time(os.getpid()),
                    "run_id": run_id(),
                    "work_dir": None if work_dir is None else str(work_dir),
                }
                claim_file.write_text(json.dumps(record))
                return PcscdClaim(pool, index, claim_file)
        if time.monotonic() >= deadline:
            raise ReadersBusy(pool, list(holders.values()), wait_s)
        if not said:
            held = "; ".join(h.describe() for h in sorted(holders.values(), key=lambda h: h.index))
            notice(
                f"cards: all {pool.size} card readers of '{pool.name}' are in use ({held}); "
                f"waiting up to {wait_s:.0f} s for one to come free"
            )
            said = True
        time.sleep(CLAIM_POLL_S)


def _ensure_pcscd(pool: VpcdPool, holders: dict[int, ReaderHolder], timeout: float) -> None:
    """A pcscd that lists the pool: the running one, else one hil starts."""
    wanted = pool.slot_names()
    listed = list_readers()
    if listed is not None and all(name in listed for name in wanted):
        return
    pid = running_pcscd_pid()
    if pid is not None:
        if not started_by_hil(pid):
            shown = ", ".join(listed or []) or "no readers"
            raise RigError(
                f"a pcscd (pid {pid}) is running without hil's vpcd readers "
                f"{wanted[:2]}... (it lists: {shown}); only one pcscd can run per "
                "host. Stop it (e.g. 'systemctl stop pcscd.socket pcscd') or set "
                "[cards] reader/port/readers to vpcd readers it serves (Debian's "
                'default: reader = "Virtual PCD", port = 35963, readers = 1)',
                instrument="cards",
            )
        if holders:
            raise RigError(
                f"hil's pcscd (pid {pid}) serves another reader pool and is in use by "
                f"session(s) {sorted({h.pid for h in holders.values()})}; use the same "
                "[cards] reader/port/readers as they do, or wait for them",
                instrument="cards",
            )
        log.warning("replacing pcscd pid %s left by an earlier hil run", pid)
        _stop(pid)
    _start(pool, timeout)


def _start(pool: VpcdPool, timeout: float) -> None:
    binary = shutil.which("pcscd") or (
        "/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None
    )
    if binary is None:
        raise RigError(
            "pcscd is not installed (scripts/setup.sh installs pcscd and vsmartcard-vpcd)",
            instrument="cards",
        )
    if not pool.driver.exists():
        hint = " (install Debian package vsmartcard-vpcd)" if pool.driver == VPCD_DRIVER else ""
        raise RigError(f"vpcd driver {pool.driver} missing{hint}", instrument="cards")
    for reader in pool.readers():
        for slot in (0, 1):
            if not _port_free(reader.slot_port(slot)):
                raise RigError(
                    f"vpcd port {reader.slot_port(slot)} for '{reader.slot_name(slot)}' is "
                    f"taken by another program; {_taken_port_hint(reader.slot_port(slot))}",
                    instrument="cards",
                )
    config_dir = _config_dir(pool)
    shutil.rmtree(config_dir, ignore_errors=True)
    config_dir.mkdir(parents=True)
    for index in range(pool.size):
        copy = pool.driver_copy(index)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pool.driver, copy)
    (config_dir / "hil-vpcd").write_text(pool.config_text(), encoding="ascii")
    log_path = pool.state_dir / "pcscd.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [binary, "--foreground", "--config", str(config_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C is for pytest, and pcscd outlives the session
            # that started it while other sessions still use it.
            start_new_session=True,
        )
    wanted = pool.slot_names()
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:].strip()
            raise RigError(
                f"pcscd exited with code {process.returncode} at start-up: {tail}",
                instrument="cards",
            )
        listed = list_readers()
        if listed is not None and all(name in listed for name in wanted):
            # Nobody waits for it: reap it in the background so it never lingers a zombie.
            threading.Thread(target=process.wait, name="pcscd-reaper", daemon=True).start()
            return
        if time.monotonic() > deadline:
            process.terminate()
            raise RigError(
                f"pcscd did not list {wanted} within {timeout:.0f} s (it lists {listed})",
                instrument="cards",
            )
        time.sleep(0.02)  # start-up only: pcscd offers no readiness notification
