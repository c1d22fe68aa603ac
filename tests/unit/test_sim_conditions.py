"""What the rig's fault lines make the simulated terminal suffer, measured for real.

The conditions a terminal can really suffer (a full flash, memory pressure, CPU load,
a corrupt flash read, a failing log partition) are produced in this process and the
self-check items measure them with the real ``Hardware``; sensor readings come from
the lines. Each is checked both ways: provoked, then released.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hil.sim.config import ConfigValueError, validate
from hil.sim.hardware import FLASH_FILL_NAME, Hardware
from hil.sim.selfcheck import CheckContext, ItemResult, run_item
from hil.sim.state import LogStore
from tests.conftest import fresh_process_hardware
from tests.unit.test_sim_selfcheck import Rig

MIB = 1024 * 1024


class Lines:
    """The fault-line inputs as the sim reads them, levels set by the test."""

    def __init__(self) -> None:
        self.levels: dict[str, bool] = {}
        self.readable = True
        self.reason = ""
        self._listeners: list[Callable[[dict[str, bool]], None]] = []

    def on_change(self, listener: Callable[[dict[str, bool]], None]) -> None:
        self._listeners.append(listener)

    def is_set(self, name: str) -> bool:
        return self.levels.get(name, False)

    def set(self, **levels: bool) -> None:
        self.levels.update(levels)
        for listener in self._listeners:
            listener(dict(self.levels))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Rig, Hardware, Lines]]:
    rig = Rig(tmp_path / "flash")
    hardware: Hardware = fresh_process_hardware()
    lines = Lines()
    hardware.attach_fault_lines(lines, flash_root=rig.layout.root)  # type: ignore[arg-type]
    rig.logs = LogStore(rig.layout.logs_dir, storage_error=hardware.log_storage_error)
    yield rig, hardware, lines
    hardware.close()


def run(rig: Rig, hardware: Hardware, item: str) -> ItemResult:
    ctx = CheckContext(**{**rig.ctx().__dict__, "hardware": hardware, "sleep": time.sleep})
    return run_item(item, ctx, delay_s=0, sleep=lambda s: None)


def test_a_full_flash_is_measured_not_reported(world: tuple[Rig, Hardware, Lines]) -> None:
    rig, hardware, lines = world
    before = run(rig, hardware, "memory")
    assert before.code == "OK" and before.details["flash_free_bytes"] > 60 * MIB
    lines.set(flash_full=True)
    fill = rig.layout.root / FLASH_FILL_NAME
    assert fill.stat().st_blocks * 512 < MIB  # sparse: the host's disk is not filled
    full = run(rig, hardware, "memory")
    assert (full.status, full.code) == ("fail", "E_MEM_FLASH_LOW")
    assert 7 * MIB < full.details["flash_free_bytes"] < 9 * MIB
    lines.set(flash_full=True)  # the same state again (a reconnect): nothing changes
    assert run(rig, hardware, "memory").code == "E_MEM_FLASH_LOW"
    lines.set(flash_full=False)
    assert not fill.exists() and run(rig, hardware, "memory").code == "OK"


def test_memory_pressure_is_real_memory(world: tuple[Rig, Hardware, Lines]) -> None:
    rig, hardware, lines = world
    lines.set(ram_pressure=True)
    pressed = run(rig, hardware, "memory")
    assert (pressed.status, pressed.code) == ("fail", "E_MEM_RAM")
    assert hardware.rss_bytes() > 512 * MIB  # measured by the kernel, not by the check
    lines.set(ram_pressure=False)
    assert hardware.rss_bytes() < 512 * MIB
    assert run(rig, hardware, "memory").code == "OK"


def test_cpu_load_is_real_cpu(world: tuple[Rig, Hardware, Lines]) -> None:
    rig, hardware, lines = world
    lines.set(cpu_load=True)
    busy = run(rig, hardware, "performance")
    assert (busy.status, busy.code) == ("warn", "E_PERF_CPU")
    assert busy.details["cpu_pct"] > 90 and busy.details["window_s"] >= 0.25
    lines.set(cpu_load=False)
    assert not [t for t in threading.enumerate() if t.name.startswith("cpu-load-")]
    quiet = run(rig, hardware, "performance")
    assert quiet.details["cpu_pct"] < 90 and quiet.code in ("OK", "E_PERF_LOAD")


def test_a_corrupt_flash_read_fails_integrity(world: tuple[Rig, Hardware, Lines]) -> None:
    rig, hardware, lines = world
    image = rig.layout.active_image
    lines.set(flash_corrupt=True)
    read = hardware.read_flash(image)
    flipped = [i for i, (a, b) in enumerate(zip(read, image.read_bytes(), strict=True)) if a != b]
    assert len(flipped) == 1  # one byte, one bit; the file itself is untouched
    assert run(rig, hardware, "memory").code == "E_MEM_INTEGRITY"
    lines.set(flash_corrupt=False)
    assert run(rig, hardware, "memory").code == "OK"


@pytest.mark.parametrize(
    ("line", "reason"), [("log_io", os.strerror(5)), ("log_full", os.strerror(28))]
)
def test_a_failing_log_partition_keeps_entries_until_it_works(
    world: tuple[Rig, Hardware, Lines], line: str, reason: str
) -> None:
    rig, hardware, lines = world
    rig.logs.append("info", "I_BEFORE", "written")
    lines.set(**{line: True})
    failing = run(rig, hardware, "logs")
    assert (failing.status, failing.code) == ("fail", "E_LOG_IO")
    assert failing.message == f"log store unusable: {reason}"
    held = rig.logs.append("error", "E_LOG_IO", f"logs: {failing.message}")
    entries, _ = rig.logs.read(0)
    assert [e.code for e in entries] == ["I_BEFORE", "E_LOG_IO"]  # served from RAM
    assert rig.logs.held_in_ram == 1
    lines.set(**{line: False})
    assert run(rig, hardware, "logs").code == "OK"  # the probe writes what was held
    assert held.seq in [e.seq for e in LogStore(rig.layout.logs_dir).read(0)[0]]
    assert rig.logs.held_in_ram == 0


def test_sensor_lines_set_their_readings(world: tuple[Rig, Hardware, Lines]) -> None:
    rig, hardware, lines = world
    lines.set(battery_low=True)
    assert run(rig, hardware, "power").code == "E_POWER_BATTERY_LOW"
    lines.set(battery_low=False, supply_low=True)
    assert run(rig, hardware, "power").code == "E_POWER_LOW"
    lines.set(supply_low=False, system_load=True)
    loaded = run(rig, hardware, "performance")
    assert loaded.code == "E_PERF_LOAD"
    assert loaded.details["load_source"] == "fault line system_load"
    lines.set(system_load=False, secure_element=True)
    security = run(rig, hardware, "security")
    assert (security.status, security.code) == ("fail", "E_SEC_NO_PASSWORD")
    assert "secure element not answering" in security.message
    lines.set(secure_element=False)
    assert run(rig, hardware, "security").code == "OK"


def test_a_terminal_id_can_be_withdrawn_but_not_malformed() -> None:
    assert validate("terminal_id", "") == ""
    with pytest.raises(ConfigValueError):
        validate("terminal_id", "T000001")
