"""Steps shared by every area: terminal states, power, configuration.

Also what several areas build on: ``RigCursor``, where the rig's own records stood
before an action (events, host messages, the terminal's log), so a check after it
looks only at what the action caused; and ``clear_earlier_faults``, which "the terminal
is idle" uses so that every scenario starts from an idle screen that holds no fault an
earlier scenario provoked.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass

import pytest
from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.selfcheck import IDLE_SCREEN, IDLE_SUMMARY_PREFIX, ITEM_NAMES, ITEMS, item_code
from hil.errors import DutError, HilError, RigError, TerminalCommandError
from hil.instruments.host import AcquirerHost
from hil.rig import Rig
from hil.steps.phrases import phrase
from hil.terminal import BootRecord, ConfigValue, Screen, Terminal

log = logging.getLogger(__name__)

#: Log entries read a page at a time when the rig looks for where the log stands.
LOG_PAGE = 500


@dataclass(frozen=True)
class RigCursor:
    """Where the terminal's events, its log and the host's messages stood before an action."""

    #: cursor in the terminal's event log
    events: int
    #: number of messages the host had recorded (None: the rig has no host)
    host_messages: int | None
    #: time.monotonic() when the cursor was taken
    taken_at: float
    #: the first log sequence number the action can have written (None: not taken)
    log_from: int | None = None


#: Per terminal, the highest log sequence number the rig has seen + 1, so finding where
#: the log stands costs a read of what is new, not of the whole log.
_log_positions: weakref.WeakKeyDictionary[Terminal, int] = weakref.WeakKeyDictionary()


def log_position(terminal: Terminal) -> int:
    """The sequence number the terminal's next log entry will have (at least)."""
    position = _log_positions.get(terminal, 0)
    while True:
        entries = terminal.log(since=position, limit=LOG_PAGE)
        if not entries:
            break
        position = max(entry.seq for entry in entries) + 1
        if len(entries) < LOG_PAGE:
            break
    _log_positions[terminal] = position
    return position


def rig_cursor(terminal: Terminal, hil_rig: Rig, *, with_log: bool = False) -> RigCursor:
    """Take the cursor just before an action (``with_log``: the log's position too)."""
    host_messages: int | None = None
    try:
        host = hil_rig.instrument("host")
    except RigError:
        host = None
    if isinstance(host, AcquirerHost):
        host_messages = len(host.records())
    log_from = log_position(terminal) if with_log else None
    return RigCursor(terminal.mark(), host_messages, time.monotonic(), log_from)


def absent_codes(hil_rig: Rig) -> dict[str, str]:
    """item -> the code it must report because the rig wires no channel for it."""
    return {
        spec.item: spec.absent_code
        for spec in ITEMS
        if spec.needs_channel is not None
        and spec.absent_code is not None
        and spec.needs_channel not in hil_rig.channels
    }


def shown_problem_codes(screen: Screen) -> list[str]:
    """The codes an idle screen lists in its summaries of faults and warnings."""
    codes: list[str] = []
    for line in screen.lines:
        for prefix in IDLE_SUMMARY_PREFIX.values():
            if line.startswith(prefix):
                codes.extend(code.strip() for code in line[len(prefix) :].split(","))
    return [code for code in codes if code]


def clear_earlier_faults(terminal: Terminal, hil_rig: Rig) -> None:
    """Run again the items whose fault or warning an earlier scenario left on the idle
    screen (the rig has released what provoked it): each must now pass. Items the rig
    cannot exercise (no channel) keep their documented absent code."""
    screen = terminal.display()
    if screen.screen != IDLE_SCREEN:
        return
    expected_absent = absent_codes(hil_rig)
    stale: dict[str, str] = {}
    for code in shown_problem_codes(screen):
        entry = item_code(code)
        if entry is None:
            raise DutError(f"the idle screen lists {code}, which no self-check item documents")
        if expected_absent.get(entry.item) != code:
            stale[entry.item] = code
    if not stale:
        return
    with reporting.action("clear faults left by earlier scenarios", codes=sorted(stale.values())):
        run = terminal.run_selfcheck(sorted(stale, key=ITEM_NAMES.index))
    # What still fails is left for the scenario's own checks to judge (a rig provisioned
    # with the factory password keeps its warning; "no fault left" steps catch a terminal
    # that keeps a fault the rig released).
    remaining = [f"{r.item} {r.code}" for r in run.results if r.status != "pass"]
    if remaining:
        reporting.attach_json("faults the clearing run still reported", remaining)


def instrument_of(hil_rig: Rig, section: str, protocol: type) -> object:
    """The rig's instrument of rig-file section ``section``, checked to offer ``protocol``
    (a runtime-checkable instrument Protocol); callers cast to that Protocol."""
    instrument = hil_rig.instrument(section)
    if not isinstance(instrument, protocol):
        raise RigError(
            f"the [{section}] instrument does not offer {protocol.__name__}", instrument=section
        )
    return instrument


def host_of(hil_rig: Rig) -> AcquirerHost | None:
    """The rig's acquirer host, or None when it has none."""
    if "host" not in hil_rig.capabilities:
        return None
    host = hil_rig.instrument("host")
    return host if isinstance(host, AcquirerHost) else None


def expect_sale_refused(
    terminal: Terminal,
    hil_rig: Rig,
    amount: int,
    code: str,
    *,
    entry_mode: str | None = None,
    present_ms: int | None = None,
) -> None:
    """A sale of ``amount`` (minor units) is refused with ``code`` before anything is
    sent: the terminal says so, and the host (when the rig has one) saw no sale. With
    ``entry_mode`` the sale asks for that instrument (a terminal that does not refuse
    waits ``present_ms`` for it, then fails with another code)."""
    before = rig_cursor(terminal, hil_rig)
    with reporting.action(
        "try a sale", amount=amount, entry_mode=entry_mode or "default", expected_refusal=code
    ):
        try:
            if entry_mode is None:
                sale = terminal.sale(amount)
            else:
                sale = terminal.sale(amount, entry_mode=entry_mode, present_ms=present_ms)
        except TerminalCommandError as e:
            assert e.code == code, (
                f"sale refused with {e.code}: {e.terminal_message}; expected {code}"
            )
        else:
            raise DutError(
                f"the terminal made a sale it must refuse with {code}: {sale.describe()}"
            )
    host = host_of(hil_rig)
    if host is not None:
        sales = [
            r
            for r in host.records()[before.host_messages or 0 :]
            if r.transaction == "sale" and r.direction == "in"
        ]
        assert not sales, (
            f"the terminal refused the sale with {code} but the host received "
            f"{len(sales)} sale message(s)"
        )


# --- states and power -------------------------------------------------------------------


@given(phrase("the terminal is idle"), target_fixture="boot")
def terminal_is_idle(terminal: Terminal, hil_rig: Rig) -> BootRecord | None:
    """Get the terminal to idle from wherever it is (booting it if need be), with no
    fault an earlier scenario provoked left on its screen."""
    terminal.ensure_idle()
    clear_earlier_faults(terminal, hil_rig)
    return terminal.last_boot


@given(phrase("the terminal is powered off"))
def terminal_is_powered_off(terminal: Terminal) -> None:
    """Bring the terminal to idle, then switch it off gracefully."""
    terminal.ensure_idle()
    terminal.power_off()


@when(phrase("the terminal is powered on"), target_fixture="boot")
def power_on(terminal: Terminal) -> BootRecord:
    """Switch the terminal on and wait until it is ready or reports a failed boot."""
    return terminal.power_on()


@when(phrase("the power is cut"))
def power_cut(terminal: Terminal) -> None:
    """Cut the terminal's supply hard, mid-whatever."""
    terminal.power_cut()


@when(phrase("the terminal is rebooted over the test port"), target_fixture="boot")
def reboot(terminal: Terminal) -> BootRecord:
    """Ask the terminal to reboot and wait for the new boot to finish."""
    return terminal.reboot()


@then(phrase("the terminal still answers on its test port"))
def still_answers(terminal: Terminal) -> None:
    """The terminal answers and is idle: the fault provoked did not wedge it."""
    info = terminal.info()
    assert info.state == "idle", f"terminal state {info.state!r} after the fault"


# --- configuration ----------------------------------------------------------------------


@given(phrase('the configuration key "{key:ConfigKey}" is set to "{value:ConfigValue}"'))
@when(phrase('the configuration key "{key:ConfigKey}" is set to "{value:ConfigValue}"'))
def set_config(terminal: Terminal, key: str, value: ConfigValue) -> None:
    """Set a configuration key and check the terminal stored exactly that value."""
    terminal.config_set(key, value)
    stored = terminal.config_get(key)
    if stored != value:
        raise DutError(f"config.set {key}={value!r} answered ok but config.get says {stored!r}")


@given(
    phrase(
        'for this scenario the configuration key "{key:ConfigKey}" is set to "{value:ConfigValue}"'
    )
)
def set_config_for_scenario(
    terminal: Terminal, request: pytest.FixtureRequest, key: str, value: ConfigValue
) -> None:
    """Set a configuration key for this scenario only: the earlier value is put back after it."""
    previous = terminal.config_get(key)
    set_config(terminal, key, value)

    def restore() -> None:
        # The terminal's flash keeps config across scenarios and power cycles.
        try:
            terminal.config_set(key, previous)
        except HilError:
            log.exception("could not put back configuration key %s", key)

    request.addfinalizer(restore)


@then(phrase('the configuration key "{key:ConfigKey}" still equals "{value:ConfigValue}"'))
def config_still_equals(terminal: Terminal, key: str, value: ConfigValue) -> None:
    """The terminal still holds this configuration value (e.g. after a power cut)."""
    stored = terminal.config_get(key)
    with reporting.action("check configuration", key=key, expected=value, actual=stored):
        assert stored == value, f"config {key} is {stored!r}, expected {value!r}"
