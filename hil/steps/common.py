"""Steps shared by every area: terminal states, power, configuration.

Also what several areas build on: ``RigCursor``, where the rig's own records stood
before an action, so a check after it looks only at what the action caused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pytest_bdd import given, then, when

from hil import reporting
from hil.errors import DutError, RigError
from hil.instruments.host import AcquirerHost
from hil.rig import Rig
from hil.steps.phrases import phrase
from hil.terminal import BootRecord, ConfigValue, Terminal


@dataclass(frozen=True)
class RigCursor:
    """Where the terminal's events and the host's messages stood before an action."""

    #: cursor in the terminal's event log
    events: int
    #: number of messages the host had recorded (None: the rig has no host)
    host_messages: int | None
    #: time.monotonic() when the cursor was taken
    taken_at: float


def rig_cursor(terminal: Terminal, hil_rig: Rig) -> RigCursor:
    """Take the cursor just before an action."""
    host_messages: int | None = None
    try:
        host = hil_rig.instrument("host")
    except RigError:
        host = None
    if isinstance(host, AcquirerHost):
        host_messages = len(host.records())
    return RigCursor(terminal.mark(), host_messages, time.monotonic())


def instrument_of(hil_rig: Rig, section: str, protocol: type) -> object:
    """The rig's instrument of rig-file section ``section``, checked to offer ``protocol``
    (a runtime-checkable instrument Protocol); callers cast to that Protocol."""
    instrument = hil_rig.instrument(section)
    if not isinstance(instrument, protocol):
        raise RigError(
            f"the [{section}] instrument does not offer {protocol.__name__}", instrument=section
        )
    return instrument


# --- states and power -------------------------------------------------------------------


@given(phrase("the terminal is idle"), target_fixture="boot")
def terminal_is_idle(terminal: Terminal) -> BootRecord | None:
    """Get the terminal to idle from wherever it is (booting it if need be)."""
    terminal.ensure_idle()
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


@then(phrase('the configuration key "{key:ConfigKey}" still equals "{value:ConfigValue}"'))
def config_still_equals(terminal: Terminal, key: str, value: ConfigValue) -> None:
    """The terminal still holds this configuration value (e.g. after a power cut)."""
    stored = terminal.config_get(key)
    with reporting.action("check configuration", key=key, expected=value, actual=stored):
        assert stored == value, f"config {key} is {stored!r}, expected {value!r}"
