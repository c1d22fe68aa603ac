"""What the simulated terminal measures about itself, and the conditions it can suffer.

Readings that a physical terminal gets from its sensors come from here. Those the
sim can measure for real (free flash, RSS, CPU time, load, a TCP connect, PC/SC
readers, the firmware image read back from flash) are measured; supply voltage,
battery, tamper switch, reader power and the load monitor under ``system_load`` come
from the rig's fault lines when it wires them (``fault_lines``), else they are
nominal.

Lines that stand for a condition the terminal can really suffer make it suffer it
(``ProvokedConditions``): ``flash_full`` fills the flash partition with a file,
``ram_pressure`` takes memory until RSS is over its limit, ``cpu_load`` runs busy
worker threads, ``flash_corrupt`` flips a bit in every read of the firmware image,
``log_io``/``log_full`` make the log partition fail with EIO/ENOSPC. The checks then
measure the result as they would on a healthy terminal. Unit tests subclass
``Hardware`` to provoke faults without any of this.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hil.procstat import cpu_demand_s
from hil.sim.faultlines import BATTERY_LOW_PCT, LOAD_PER_CPU_UNDER_FAULT, SUPPLY_LOW_V
from hil.sim.pcsc import list_readers

if TYPE_CHECKING:
    from hil.sim.faultlines import FaultLineInputs
    from hil.sim.scanner import CalibrationReading

NOMINAL_SUPPLY_V = 12.0
NOMINAL_BATTERY_PCT = 100

_MIB = 1024 * 1024
#: The terminal's flash partition (the state directory): documented capacity. Free flash
#: is this minus what the files in it take, or the host filesystem's free space if less.
FLASH_CAPACITY_MIB = 64
#: What ``flash_full`` leaves free: below the memory item's 16 MiB limit.
FLASH_LEFT_WHEN_FULL_MIB = 8
#: The file ``flash_full`` writes into the partition (sparse: it costs the host no disk).
FLASH_FILL_NAME = "flash-fill.bin"
#: How far over the memory item's RSS limit ``ram_pressure`` takes the process.
RAM_PRESSURE_OVER_MIB = 64
#: Busy worker threads ``cpu_load`` runs: two keep the process over 90% of one CPU
#: even when another process competes for the machine's cores.
CPU_LOAD_WORKERS = 2
_HASH_BLOCK = b"\xa5" * (1024 * 1024)  # hashing releases the GIL: the workers burn real CPU


@dataclass(frozen=True)
class PowerReading:
    supply_v: float
    battery_pct: int


def tree_bytes(root: Path) -> int:
    """Bytes the files under ``root`` take (their size as written, sparse or not)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # removed meanwhile
    return total


class ProvokedConditions:
    """Makes the process suffer what the rig's fault lines provoke, idempotently:
    ``apply`` is called with every line state the rig sends (also on reconnects)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.flash_root: Path | None = None
        self._ballast: bytearray | None = None
        self._workers: list[threading.Thread] = []
        self._stop_workers = threading.Event()

    def apply(self, lines: dict[str, bool], *, rss_limit_bytes: int, rss_now: int) -> None:
        with self._lock:
            self._fill_flash(lines.get("flash_full", False))
            self._press_ram(lines.get("ram_pressure", False), rss_limit_bytes, rss_now)
            self._load_cpu(lines.get("cpu_load", False))

    def _fill_flash(self, full: bool) -> None:
        if self.flash_root is None:
            return
        fill = self.flash_root / FLASH_FILL_NAME
        if not full:
            fill.unlink(missing_ok=True)
            return
        others = tree_bytes(self.flash_root) - (fill.stat().st_size if fill.exists() else 0)
        size = max(FLASH_CAPACITY_MIB - FLASH_LEFT_WHEN_FULL_MIB, 0) * _MIB - others
        with fill.open("wb") as f:
            f.truncate(max(size, 0))

    def _press_ram(self, pressed: bool, limit: int, rss_now: int) -> None:
        if not pressed:
            self._ballast = None  # large buffers are unmapped: RSS drops at once
            return
        if self._ballast is not None:
            return
        size = max(limit + RAM_PRESSURE_OVER_MIB * _MIB - rss_now, _MIB)
        ballast = bytearray(size)
        # Touch every page: untouched zero pages are not resident and would not count.
        ballast[:: os.sysconf("SC_PAGE_SIZE")] = b"\x01" * len(
            range(0, size, os.sysconf("SC_PAGE_SIZE"))
        )
        self._ballast = ballast

    def _load_cpu(self, busy: bool) -> None:
        if not busy:
            self._stop_workers.set()
            for worker in self._workers:
                worker.join(timeout=1.0)
            self._workers = []
            return
        if self._workers:
            return
        self._stop_workers = threading.Event()
        stop = self._stop_workers
        for n in range(CPU_LOAD_WORKERS):
            worker = threading.Thread(target=_burn, args=(stop,), name=f"cpu-load-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def release(self) -> None:
        """Power off: memory and CPU are freed (what is in flash stays in flash)."""
        with self._lock:
            self._press_ram(False, 0, 0)
            self._load_cpu(False)


def _burn(stop: threading.Event) -> None:
    while not stop.is_set():
        hashlib.sha256(_HASH_BLOCK).digest()


def _process_start_monotonic() -> float:
    """Monotonic time at which this process started (from /proc); falls back to now."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        start_ticks = int(fields[19])  # field 22 "starttime", counted after "(comm)"
        with open("/proc/uptime", encoding="ascii") as f:
            uptime_s = float(f.read().split()[0])
        ticks = os.sysconf("SC_CLK_TCK")
        return time.monotonic() - (uptime_s - start_ticks / ticks)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


class Hardware:
    def __init__(self, *, decode_memo: Path | None = None) -> None:
        self._started = _process_start_monotonic()
        #: HIL_DECODE_MEMO: where the camera keeps what it decoded (hil.sim.scanner.DecodeMemo)
        self.decode_memo = decode_memo
        #: the rig's fault lines (hil.sim.faultlines), when the rig wires them
        self.fault_lines: FaultLineInputs | None = None
        self.conditions = ProvokedConditions()

    # --- fault lines ------------------------------------------------------------------

    def attach_fault_lines(self, inputs: FaultLineInputs, *, flash_root: Path) -> None:
        """Read the rig's lines from ``inputs`` and suffer what they provoke."""
        from hil.sim.selfcheck import LIMITS  # the limit ram_pressure must cross

        self.fault_lines = inputs
        self.conditions.flash_root = flash_root
        limit = int(LIMITS["memory.max_rss_mib"]) * _MIB
        inputs.on_change(
            lambda lines: self.conditions.apply(
                lines, rss_limit_bytes=limit, rss_now=self.rss_bytes()
            )
        )

    def close(self) -> None:
        self.conditions.release()

    def fault_lines_unreadable(self) -> str:
        """Why wired fault lines cannot be read ("" when they can)."""
        if self.fault_lines is None:
            return "fault-line inputs not started"
        return "" if self.fault_lines.readable else self.fault_lines.reason

    def _fault(self, line: str) -> bool:
        return self.fault_lines is not None and self.fault_lines.is_set(line)

    # --- sensors ----------------------------------------------------------------------

    def supply(self) -> PowerReading:
        supply = SUPPLY_LOW_V if self._fault("supply_low") else NOMINAL_SUPPLY_V
        battery = BATTERY_LOW_PCT if self._fault("battery_low") else NOMINAL_BATTERY_PCT
        return PowerReading(supply, battery)

    def tamper_open(self) -> bool:
        return self._fault("tamper")

    def reader_powered(self) -> bool:
        """False while the rig holds the card reader's supply cut."""
        return not self._fault("reader_power")

    def secure_element_error(self) -> str:
        """Why the secure element holding the admin record does not answer ("" if it does)."""
        return "secure element not answering" if self._fault("secure_element") else ""

    def log_storage_error(self) -> OSError | None:
        """The error the log partition answers with now, or None when it works."""
        if self._fault("log_io"):
            return OSError(errno.EIO, os.strerror(errno.EIO))
        if self._fault("log_full"):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return None

    # --- flash and memory -------------------------------------------------------------

    def read_flash(self, path: Path) -> bytes:
        """A file read back from flash (``flash_corrupt``: one bit flipped in the middle)."""
        data = path.read_bytes()
        if self._fault("flash_corrupt") and data:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
        return data

    def flash_free_bytes(self, path: Path) -> int:
        """Free space of the flash partition at ``path``: its capacity minus what its
        files take, or what the host filesystem has left if that is less."""
        st = os.statvfs(path)
        partition_free = max(FLASH_CAPACITY_MIB * _MIB - tree_bytes(path), 0)
        return min(st.f_bavail * st.f_frsize, partition_free)

    def rss_bytes(self) -> int:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")

    # --- CPU and load -----------------------------------------------------------------

    def cpu_seconds(self) -> float:
        """CPU *demand* of the terminal so far, in seconds: the time its threads ran plus
        the time they waited on a run queue, summed over its threads (Linux schedstat).

        The sim's operating system runs nothing but the terminal, yet it shares the lab
        machine's CPUs: what the threads *got* (``os.times()``) falls when other jobs load
        the machine, so a busy terminal could read as idle on a shared CI host. What they
        *asked for* does not. Falls back to ``os.times()`` where schedstat is missing."""
        demand = cpu_demand_s("self")
        if demand is not None:
            return demand
        t = os.times()
        return t.user + t.system

    def clock(self) -> float:
        """Seconds on a monotonic clock (what CPU time is measured against)."""
        return time.monotonic()

    def process_seconds(self) -> float:
        return max(time.monotonic() - self._started, 1e-3)

    def load_reading(self, measured_per_cpu: float) -> tuple[float, str]:
        """The load-per-CPU monitor: the terminal's own run queue averaged over the
        item's window (``measured_per_cpu``), unless the ``system_load`` line sets it.

        Not the lab machine's load average: that is other people's work, not the
        terminal's, and a shared CI machine would make a healthy terminal warn."""
        if self._fault("system_load"):
            return LOAD_PER_CPU_UNDER_FAULT, "fault line system_load"
        return measured_per_cpu, "measured"

    def cpu_count(self) -> int:
        return os.cpu_count() or 1

    # --- links and peripherals --------------------------------------------------------

    def tcp_connect_ms(self, address: str, port: int, timeout_s: float) -> float:
        """Open and close a TCP connection; raises OSError when it fails."""
        started = time.monotonic()
        with socket.create_connection((address, port), timeout=timeout_s):
            pass
        return (time.monotonic() - started) * 1000.0

    def read_calibration_target(self, camera: str) -> CalibrationReading:
        """Pull frames from the camera channel and try to read the calibration target."""
        from hil.sim.scanner import DecodeMemo, read_calibration_target

        memo = DecodeMemo(self.decode_memo) if self.decode_memo is not None else None
        return read_calibration_target(camera, memo)

    def pcsc_readers(self) -> list[str]:
        """Reader names from PC/SC; raises RuntimeError when PC/SC is unusable."""
        return list_readers()
