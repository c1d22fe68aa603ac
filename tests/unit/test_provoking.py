"""The rig's means to provoke: the fault-line tables against the documentation, the
documented idle screen, card profiles expiring relative to today, and the fault-line
harness a scenario unplugs."""

from __future__ import annotations

import time
from datetime import date

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary, expiring, month_from
from hil.contract.maintenance import APP_FAULT_LINES
from hil.contract.selfcheck import (
    FAULT_LINE_CODES,
    HARNESS_UNPLUGGED_CODES,
    PAYMENT_REFUSALS,
    idle_screen_lines,
    item_code,
)
from hil.instruments.faultlines import FAULT_LINES, SimFaultLines
from hil.sim.faultlines import FAULT_LINES as SIM_FAULT_LINES
from hil.sim.faultlines import FaultLineInputs
from tests.conftest import REPO

PROTOCOL_DOC = REPO / "docs" / "test-port-protocol.md"
LINES_HEADER = "| line | kind | what the terminal gets | self-check | payments |"
APP_LINES_HEADER = "| line | provokes once, on its rising edge | watchdog code |"


def _documented_app_lines() -> dict[str, str]:
    """Edge-triggered line -> the watchdog code it provokes, from the doc."""
    lines = PROTOCOL_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(APP_LINES_HEADER) + 2
    table = {}
    for row in lines[start:]:
        if not row.startswith("|"):
            break
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        table[cells[0].strip("`")] = cells[2].strip("`")
    return table


def _documented_lines() -> dict[str, tuple[str, str]]:
    """line -> (its self-check code, its payment refusal or "go on"), from the doc."""
    lines = PROTOCOL_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(LINES_HEADER) + 2
    table = {}
    for row in lines[start:]:
        if not row.startswith("|"):
            break
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        code = cells[3].split("`")[1]
        table[cells[0].strip("`")] = (code, cells[4].strip("`"))
    return table


def test_fault_lines_are_the_documented_ones_everywhere() -> None:
    documented = _documented_lines()
    app_lines = _documented_app_lines()
    assert app_lines == APP_FAULT_LINES
    assert (
        tuple(documented) + tuple(app_lines)
        == FAULT_LINES
        == SIM_FAULT_LINES
        == tuple(FAULT_LINE_CODES) + tuple(APP_FAULT_LINES)
    )
    for line, (code, payments) in documented.items():
        assert FAULT_LINE_CODES[line] == code, line
        assert PAYMENT_REFUSALS.get(line, "go on") == payments, line
        entry = item_code(code)
        assert entry is not None and entry.status in ("fail", "warn")
        # a line whose item only warns must never be documented to stop payments
        assert entry.status == "fail" or line not in PAYMENT_REFUSALS


def test_the_documented_idle_screen() -> None:
    latest = [
        ("qr_scanner", "warn", "E_CAMERA_LOW_LIGHT"),
        ("comm", "fail", "E_COMM_TIMEOUT"),
        ("power", "pass", "OK"),
        ("memory", "fail", "E_MEM_RAM"),
    ]
    assert idle_screen_lines("T0000001", latest) == [
        "请刷卡/插卡/挥卡",
        "Present card",
        "T0000001",
        "故障 Faults: E_MEM_RAM,E_COMM_TIMEOUT",
        "警告 Warnings: E_CAMERA_LOW_LIGHT",
        "E_MEM_RAM 内存不足 Out of memory",
        "E_COMM_TIMEOUT 通讯超时 Communication timeout",
        "E_CAMERA_LOW_LIGHT 扫码光线不足 Scanner light too low",
    ]
    assert idle_screen_lines("", [("power", "pass", "OK")])[2:] == ["未设置终端号 No TID"]
    assert set(HARNESS_UNPLUGGED_CODES.values()) == {"E_POWER_UNVERIFIED", "E_TAMPER_UNVERIFIED"}


@pytest.mark.parametrize(
    ("today", "months", "expected"),
    [
        (date(2026, 1, 31), -1, (2025, 12)),
        (date(2026, 1, 1), 0, (2026, 1)),
        (date(2026, 12, 15), 1, (2027, 1)),
        (date(2026, 3, 31), -14, (2025, 1)),
    ],
)
def test_months_around_today(today: date, months: int, expected: tuple[int, int]) -> None:
    assert month_from(today, months) == expected


def test_a_profile_expiring_relative_to_today_is_valid_through_its_month() -> None:
    base = ProfileLibrary(DEFAULT_PROFILES).get("visa-credit")
    today = date(2026, 2, 28)
    this_month = expiring(base, 0, today)
    assert (this_month.expiry, this_month.name) == ("2602", "visa-credit@2602")
    assert this_month.expiry_date() == date(2026, 2, 28)
    assert not this_month.is_expired(today) and this_month.is_expired(date(2026, 3, 1))
    last_month = expiring(base, -1, today)
    assert last_month.expiry == "2601" and last_month.is_expired(today)
    assert last_month.effective <= last_month.expiry and last_month.pan == base.pan
    assert expiring(base, 1, today).expiry == "2603"


def test_the_harness_unplugs_the_terminals_inputs_and_plugs_them_back() -> None:
    lines = SimFaultLines(ack_timeout=5.0)
    inputs = FaultLineInputs(lines.address)
    try:
        inputs.start()
        assert inputs.readable
        lines.set("battery_low")
        assert inputs.is_set("battery_low")
        lines.unplug()
        deadline = time.monotonic() + 2
        while inputs.readable and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not inputs.readable and not lines.plugged
        assert inputs.is_set("battery_low")  # what it last read stays in force
        lines.clear("battery_low")  # nobody hears it: the level waits for the reconnect
        lines.plug()  # back within the terminal's 1 s retry
        assert inputs.readable and not inputs.is_set("battery_low")
        lines.set("tamper")
        lines.put_back()
        assert not any(inputs.snapshot().values()) and lines.plugged
    finally:
        inputs.close()
        lines.close()
