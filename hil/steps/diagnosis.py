"""Steps for fault diagnosis: the payment application's watchdog, provoked both ways.

The payment application crashes or hangs, its watchdog restarts it, and the terminal is
usable again; without a fault the watchdog never fires.

The rig provokes the fault with an edge-triggered fault line (``app_crash``,
``app_hang``) and judges independently, against the documented contract
(``hil.contract.maintenance``): the time to recover measured on the rig's clock and
bounded below by what the watchdog can notice, the log entry read over the test port,
the screens the terminal showed, and the restarts counted over the whole scenario.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from pytest_bdd import then, when

from hil import reporting
from hil.contract.maintenance import (
    APP_FAULT_LINES,
    APP_FAULT_SCREEN,
    APP_RESTARTED_CODE,
    WATCHDOG_TIMEOUT_S,
    recovery_window_s,
)
from hil.contract.selfcheck import IDLE_SCREEN
from hil.instruments.faultlines import FaultLines
from hil.rig import Rig
from hil.steps.common import instrument_of, log_position
from hil.steps.phrases import phrase
from hil.terminal import AppFault, AppRestarted, ScreenChanged, Terminal, as_report

#: The rig allows this much on top of the documented recovery window: event delivery
#: and scheduling on a loaded machine must never fail a healthy terminal.
RECOVERY_MARGIN_S = 10.0
#: A quiet watch lasts this many watchdog timeouts (at least).
QUIET_TIMEOUTS = 2


@dataclass(frozen=True)
class AppFaultRun:
    line: str
    cursor: int
    log_from: int
    #: the rig's clock just before it asserted the line
    provoked_at: float
    restarted: AppRestarted


@when(
    phrase('the rig makes the payment application fail with fault line "{line:AppFaultLine}"'),
    target_fixture="app_fault_run",
)
def provoke_app_fault(terminal: Terminal, hil_rig: Rig, line: str) -> AppFaultRun:
    """Assert the edge-triggered line (released again at once: the edge is what counts)
    and wait for the watchdog's restart of the application."""
    lines = cast(FaultLines, instrument_of(hil_rig, "faultlines", FaultLines))
    cursor = terminal.mark()
    log_from = log_position(terminal)
    provoked_at = time.monotonic()
    lines.set(line)
    lines.clear(line)
    _, high = recovery_window_s(hil_rig.time_scale)
    restarted = terminal.wait_event(AppRestarted, since=cursor, timeout=high + RECOVERY_MARGIN_S)
    reporting.attach_json("application restart", as_report(restarted))
    return AppFaultRun(line, cursor, log_from, provoked_at, restarted)


@then(phrase("the watchdog restarted it within the documented recovery window"))
def recovered_in_window(app_fault_run: AppFaultRun, hil_rig: Rig) -> None:
    """From the rig's assert to the restart event: no sooner than the watchdog can
    notice a silent application, no later than the documented window plus a margin."""
    low, high = recovery_window_s(hil_rig.time_scale)
    took = app_fault_run.restarted.received_at - app_fault_run.provoked_at
    measurement = reporting.measure(
        "app_recovery", took, "s", low=low, high=high + RECOVERY_MARGIN_S
    )
    assert measurement.passed, measurement.describe()


@then(phrase("the system log holds the application fault code followed by the restart"))
def logged_fault_then_restart(terminal: Terminal, app_fault_run: AppFaultRun) -> None:
    """Read over the test port: the line's documented code (level error), then the
    restart, both written after the rig provoked the fault."""
    code = APP_FAULT_LINES[app_fault_run.line]
    entries = terminal.log(since=app_fault_run.log_from, limit=1000)
    codes = [e.code for e in entries]
    reporting.attach_json("log since the fault", [as_report(e) for e in entries])
    assert code in codes, f"the log holds no {code} after {app_fault_run.line}; codes: {codes}"
    fault = next(e for e in entries if e.code == code)
    assert fault.level == "error", f"{code} logged at level {fault.level!r}, not error"
    assert APP_RESTARTED_CODE in codes[codes.index(code) :], (
        f"no {APP_RESTARTED_CODE} after {code} in the log; codes: {codes}"
    )
    assert app_fault_run.restarted.code == code, (
        f"the restart event names {app_fault_run.restarted.code}, the line provokes {code}"
    )
    other = [c for c in APP_FAULT_LINES.values() if c != code and c in codes]
    assert not other, f"the log also holds {other}: the wrong fault was diagnosed"


@then(phrase("the display showed the application fault, then the idle screen"))
def screens_fault_then_idle(terminal: Terminal, app_fault_run: AppFaultRun) -> None:
    """The terminal showed the documented fault screen with the code, then went back
    to its idle screen, and shows idle now."""
    code = APP_FAULT_LINES[app_fault_run.line]
    screens = [e.screen for e in terminal.find_events(ScreenChanged, since=app_fault_run.cursor)]
    reporting.attach_json("screens since the fault", [as_report(s) for s in screens])
    order = [s.screen for s in screens]
    faults = [i for i, s in enumerate(screens) if s.screen == APP_FAULT_SCREEN]
    assert faults, f"no '{APP_FAULT_SCREEN}' screen after the fault; screens: {order}"
    assert any(code in line for line in screens[faults[0]].lines), (
        f"the fault screen does not show {code}: {list(screens[faults[0]].lines)}"
    )
    assert IDLE_SCREEN in order[faults[0] :], f"no idle screen after the fault screen: {order}"
    now = terminal.display()
    assert now.screen == IDLE_SCREEN, f"the display shows {now.screen!r}, not idle"


@then(phrase("the payment application was restarted exactly once"))
def restarted_once(terminal: Terminal, app_fault_run: AppFaultRun) -> None:
    """One fault, one restart: counted from the events since the fault and from the
    terminal's own counter, which must agree."""
    restarts = terminal.find_events(AppRestarted, since=app_fault_run.cursor)
    faults = terminal.find_events(AppFault, since=app_fault_run.cursor)
    status = terminal.app_status()
    reporting.attach_json("application status", as_report(status))
    assert len(faults) == 1 and len(restarts) == 1, (
        f"{len(faults)} watchdog fault(s) and {len(restarts)} restart(s) for one provoked fault"
    )
    assert status.state == "running", f"the payment application is {status.state!r}"
    assert status.restarts == restarts[0].restarts, (
        f"the terminal counts {status.restarts} restarts, its event said {restarts[0].restarts}"
    )


@when(
    phrase("the rig watches the terminal for two watchdog timeouts"),
    target_fixture="quiet_watch",
)
def watch_quietly(terminal: Terminal, hil_rig: Rig) -> tuple[int, int, int]:
    """Take the cursors, then wait: proving that nothing fires needs the time for it to
    fire (two watchdog timeouts of this terminal, documented in the contract)."""
    status = terminal.app_status()
    cursor = terminal.mark()
    log_from = log_position(terminal)
    wait_s = QUIET_TIMEOUTS * WATCHDOG_TIMEOUT_S * hil_rig.time_scale
    with reporting.action("watch the terminal", seconds=round(wait_s, 3)):
        time.sleep(wait_s)
    return cursor, log_from, status.restarts


@then(phrase("the watchdog never fired and the application was never restarted"))
def never_fired(terminal: Terminal, quiet_watch: tuple[int, int, int]) -> None:
    """No fault or restart event, no application fault code in the log, the restart
    counter unchanged, the application running."""
    cursor, log_from, restarts_before = quiet_watch
    events = terminal.find_events(AppFault, since=cursor) + terminal.find_events(
        AppRestarted, since=cursor
    )
    logged = [
        e.code
        for e in terminal.log(since=log_from, limit=1000)
        if e.code in (*APP_FAULT_LINES.values(), APP_RESTARTED_CODE)
    ]
    status = terminal.app_status()
    reporting.attach_json("application status", as_report(status))
    assert not events, f"the watchdog fired with no fault: {[as_report(e) for e in events]}"
    assert not logged, f"the log holds {logged} with no fault provoked"
    assert status.restarts == restarts_before, (
        f"restarts went from {restarts_before} to {status.restarts} with no fault"
    )
    assert status.state == "running", f"the payment application is {status.state!r}"
