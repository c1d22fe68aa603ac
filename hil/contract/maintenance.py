"""Firmware update and fault diagnosis as the test-port protocol documents them (rig side).

The rig's own statement of docs/test-port-protocol.md ("Firmware update" and "Payment
application watchdog"), kept apart from the simulated terminal (``hil.sim.update``,
``hil.sim.watchdog``) so a scenario judges the terminal against the documentation.
``tests/unit/test_maintenance_contract.py`` checks these tables against the doc.
"""

from __future__ import annotations

from typing import Literal

#: The phases of an update, in order. Each has one documented hold point.
UPDATE_PHASES: tuple[str, ...] = ("downloading", "verifying", "writing", "switching")

#: Which image a terminal must boot after a power cut at a phase's hold point: the one
#: it ran before the update ("old") or the update ("new"). The commit (boot-select
#: naming the new slot) is the first step of switching; the hold point of switching is
#: just after it.
BOOTS_AFTER_CUT: dict[str, Literal["old", "new"]] = {
    "downloading": "old",
    "verifying": "old",
    "writing": "old",
    "switching": "new",
}

#: Why a terminal refuses an update (fw.update_failed code), by what is wrong.
UPDATE_REFUSALS: dict[str, str] = {
    "unsigned": "E_FW_UNSIGNED",
    "tampered": "E_FW_SIGNATURE",
    "wrong model": "E_FW_MODEL",
    "downgrade": "E_FW_DOWNGRADE",
    "malformed": "E_FW_FORMAT",
    "bad version": "E_FW_VERSION",
    "write failed": "E_FW_WRITE",
}

#: Logged by the first boot after an update was interrupted by a power cut.
UPDATE_INTERRUPTED_CODE = "E_FW_UPDATE_INTERRUPTED"

#: Edge-triggered fault lines that make the payment application fail once, and the
#: code its watchdog must log for each.
APP_FAULT_LINES: dict[str, str] = {"app_crash": "E_APP_CRASH", "app_hang": "E_APP_HANG"}
#: Logged when the watchdog has restarted the application.
APP_RESTARTED_CODE = "I_APP_RESTARTED"
#: Payments are refused with this while the application is down.
APP_DOWN_CODE = "E_APP_DOWN"
#: The screen shown between the watchdog firing and the restart.
APP_FAULT_SCREEN = "app_fault"

#: Nominal watchdog timing (seconds; a process terminal's delays are multiplied by its
#: time scale): the application kicks every KICK, the watchdog fires when no kick came
#: for TIMEOUT (it looks every CHECK), the restart takes START.
WATCHDOG_TIMEOUT_S = 3.0
WATCHDOG_KICK_S = 0.5
WATCHDOG_CHECK_S = 0.25
APP_START_S = 1.0


def recovery_window_s(time_scale: float) -> tuple[float, float]:
    """The documented span from a fault to the application's restart: no sooner than
    the watchdog can notice (TIMEOUT - KICK: the last kick may have come just before
    the fault), no later than TIMEOUT + CHECK + START."""
    low = (WATCHDOG_TIMEOUT_S - WATCHDOG_KICK_S) * time_scale
    high = (WATCHDOG_TIMEOUT_S + WATCHDOG_CHECK_S + APP_START_S) * time_scale
    return low, high
