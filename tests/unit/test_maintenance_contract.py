"""The rig's firmware-update and watchdog contract (hil.contract.maintenance) against
docs/test-port-protocol.md, so the rig judges by what is documented."""

from __future__ import annotations

import re

from hil.contract.maintenance import (
    APP_DOWN_CODE,
    APP_FAULT_SCREEN,
    APP_RESTARTED_CODE,
    APP_START_S,
    BOOTS_AFTER_CUT,
    UPDATE_INTERRUPTED_CODE,
    UPDATE_PHASES,
    UPDATE_REFUSALS,
    WATCHDOG_CHECK_S,
    WATCHDOG_KICK_S,
    WATCHDOG_TIMEOUT_S,
)
from tests.conftest import REPO

DOC = (REPO / "docs" / "test-port-protocol.md").read_text(encoding="utf-8")
PHASES_HEADER = (
    "| phase | what the terminal does | hold point (`hold_at`) | a power cut there boots |"
)


def _section(title: str) -> str:
    start = DOC.index(f"\n### {title}\n")
    end = DOC.find("\n### ", start + 1)
    return DOC[start : end if end > 0 else len(DOC)]


def test_the_phases_and_what_a_cut_at_each_boots_are_the_documented_ones() -> None:
    lines = _section("Firmware update").splitlines()
    start = lines.index(PHASES_HEADER) + 2
    documented: dict[str, str] = {}
    for row in lines[start:]:
        if not row.startswith("|"):
            break
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        documented[cells[0].strip("`")] = cells[-1].removeprefix("the ").removesuffix(" image")
    assert tuple(documented) == UPDATE_PHASES
    assert documented == BOOTS_AFTER_CUT


def test_every_refusal_and_log_code_is_documented() -> None:
    update = _section("Firmware update")
    for code in UPDATE_REFUSALS.values():
        assert f"`{code}`" in update, code
        assert re.search(rf"^\| [^\n]*`{code}`[^\n]*\| error \|", DOC, re.M), code
    assert f"`{UPDATE_INTERRUPTED_CODE}`" in update
    watchdog = _section("Payment application watchdog")
    for code in (APP_RESTARTED_CODE, APP_DOWN_CODE, APP_FAULT_SCREEN):
        assert f"`{code}`" in watchdog, code


def test_the_watchdog_times_are_the_documented_ones() -> None:
    watchdog = _section("Payment application watchdog")
    for seconds in (WATCHDOG_TIMEOUT_S, WATCHDOG_KICK_S, WATCHDOG_CHECK_S, APP_START_S):
        assert f"{seconds:g} s" in watchdog or f"{seconds:.1f} s" in watchdog, seconds
    low = WATCHDOG_TIMEOUT_S - WATCHDOG_KICK_S
    high = WATCHDOG_TIMEOUT_S + WATCHDOG_CHECK_S + APP_START_S
    assert f"no less than {low:g} s" in watchdog
    assert f"no more than {high:g} s" in watchdog
