"""Steps shared by every area: terminal states, power, configuration."""

from __future__ import annotations

import json
from typing import Any

from pytest_bdd import given, parsers, then, when

from hil import reporting
from hil.errors import DutError
from hil.terminal import BootRecord, Terminal


def parse_value(text: str) -> Any:
    """A step's value: JSON if it parses (45000, true, "x"), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@given("the terminal is idle", target_fixture="boot")
def terminal_is_idle(terminal: Terminal) -> BootRecord | None:
    terminal.ensure_idle()
    return terminal.last_boot


@given("the terminal is powered off")
def terminal_is_powered_off(terminal: Terminal) -> None:
    terminal.ensure_idle()
    terminal.power_off()


@when("the terminal is powered on", target_fixture="boot")
def power_on(terminal: Terminal) -> BootRecord:
    return terminal.power_on()


@when("the power is cut")
def power_cut(terminal: Terminal) -> None:
    terminal.power_cut()


@when("the terminal is rebooted over the test port", target_fixture="boot")
def reboot(terminal: Terminal) -> BootRecord:
    return terminal.reboot()


@given(parsers.parse('the configuration key "{key}" is set to "{value}"'))
@when(parsers.parse('the configuration key "{key}" is set to "{value}"'))
def set_config(terminal: Terminal, key: str, value: str) -> None:
    terminal.config_set(key, parse_value(value))
    stored = terminal.config_get(key)
    if stored != parse_value(value):
        raise DutError(f"config.set {key}={value} answered ok but config.get says {stored!r}")


@then(parsers.parse('the configuration key "{key}" still equals "{value}"'))
def config_still_equals(terminal: Terminal, key: str, value: str) -> None:
    stored = terminal.config_get(key)
    with reporting.action("check configuration", key=key, expected=value, actual=stored):
        assert stored == parse_value(value), f"config {key} is {stored!r}, expected {value!r}"


@then(parsers.parse('it reports boot reason "{reason}"'))
def boot_reason_is(boot: BootRecord, reason: str) -> None:
    assert boot.failed is None, f"boot failed: {boot.failed.data if boot.failed else ''}"
    assert boot.boot is not None, "no sys.boot event was seen during the boot"
    assert boot.boot_reason == reason, f"boot reason {boot.boot_reason!r}, expected {reason!r}"
