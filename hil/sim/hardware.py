"""What the simulated terminal measures about itself.

Readings that a physical terminal gets from its sensors come from here. Those the
sim can measure for real (free flash, RSS, CPU time, load, a TCP connect, PC/SC
readers) are measured; supply voltage, tamper switch and reader power come from the
rig's fault lines when it wires them (``fault_lines``), else they are nominal. Unit
tests subclass ``Hardware`` to provoke faults.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hil.sim.faultlines import SUPPLY_LOW_V
from hil.sim.pcsc import list_readers

if TYPE_CHECKING:
    from hil.sim.faultlines import FaultLineInputs
    from hil.sim.scanner import CalibrationReading

NOMINAL_SUPPLY_V = 12.0
NOMINAL_BATTERY_PCT = 100


@dataclass(frozen=True)
class PowerReading:
    supply_v: float
    battery_pct: int


def _process_start_monotonic() -> float:
    """Monotonic time at which this process started (from /proc), so CPU utilisation
    includes interpreter start-up; falls back to now."""
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
    def __init__(self) -> None:
        self._started = _process_start_monotonic()
        #: the rig's fault lines (hil.sim.faultlines), when the rig wires them
        self.fault_lines: FaultLineInputs | None = None

    def fault_lines_unreadable(self) -> str:
        """Why wired fault lines cannot be read ("" when they can)."""
        if self.fault_lines is None:
            return "fault-line inputs not started"
        return "" if self.fault_lines.readable else self.fault_lines.reason

    def _fault(self, line: str) -> bool:
        return self.fault_lines is not None and self.fault_lines.is_set(line)

    def supply(self) -> PowerReading:
        if self._fault("supply_low"):
            return PowerReading(SUPPLY_LOW_V, NOMINAL_BATTERY_PCT)
        return PowerReading(NOMINAL_SUPPLY_V, NOMINAL_BATTERY_PCT)

    def tamper_open(self) -> bool:
        return self._fault("tamper")

    def reader_powered(self) -> bool:
        """False while the rig holds the card reader's supply cut."""
        return not self._fault("reader_power")

    def flash_free_bytes(self, path: Path) -> int:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize

    def rss_bytes(self) -> int:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")

    def cpu_seconds(self) -> float:
        t = os.times()
        return t.user + t.system

    def process_seconds(self) -> float:
        return max(time.monotonic() - self._started, 1e-3)

    def load_average(self) -> tuple[float, float, float]:
        return os.getloadavg()

    def cpu_count(self) -> int:
        return os.cpu_count() or 1

    def tcp_connect_ms(self, address: str, port: int, timeout_s: float) -> float:
        """Open and close a TCP connection; raises OSError when it fails."""
        started = time.monotonic()
        with socket.create_connection((address, port), timeout=timeout_s):
            pass
        return (time.monotonic() - started) * 1000.0

    def read_calibration_target(self, camera: str) -> CalibrationReading:
        """Pull frames from the camera channel and try to read the calibration target."""
        from hil.sim.scanner import read_calibration_target

        return read_calibration_target(camera)

    def pcsc_readers(self) -> list[str]:
        """Reader names from PC/SC; raises RuntimeError when PC/SC is unusable."""
        return list_readers()
