"""Steps for the rig's hardware fault lines: hold and release them, judge the effect.

The rig drives the lines through ``FaultLines``; what each line provokes (the item's
code, its screen text and log entry, payments refused while it is held) is judged
against the documented contract (``hil.contract.selfcheck``).
"""

from __future__ import annotations

from typing import cast

import pytest
from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.selfcheck import FAULT_LINE_CODES, PAYMENT_REFUSALS
from hil.errors import DutError, TerminalCommandError
from hil.instruments.faultlines import FaultLineHarness, FaultLines
from hil.rig import Rig
from hil.steps.common import expect_sale_refused, instrument_of
from hil.steps.phrases import StepValueError, phrase
from hil.steps.selfcheck import (
    ItemCheck,
    check_idle_screen,
    check_logged,
    documented_problem,
    judge_item,
)
from hil.terminal import Terminal
from hil.terminal.screensource import ScreenSource

#: The amount of the sale a held fault line must refuse (minor units).
PROBE_SALE_AMOUNT = 100


@pytest.fixture
def fault_lines(hil_rig: Rig) -> FaultLines:
    """The rig's fault lines; every line is released after each scenario."""
    return cast(FaultLines, instrument_of(hil_rig, "faultlines", FaultLines))


@pytest.fixture
def fault_line_harness(hil_rig: Rig) -> FaultLineHarness:
    """The harness between the rig's fault lines and the terminal; back in after each
    scenario."""
    return cast(FaultLineHarness, instrument_of(hil_rig, "faultlines", FaultLineHarness))


@given(phrase('the rig asserts fault line "{line:FaultLine}"'))
@when(phrase('the rig asserts fault line "{line:FaultLine}"'))
def assert_line(fault_lines: FaultLines, line: str) -> None:
    """Assert the fault on this line (the lines are listed with the FaultLine type)."""
    fault_lines.set(line)


@when(phrase('the rig releases fault line "{line:FaultLine}"'))
def release_line(fault_lines: FaultLines, line: str) -> None:
    """Release the fault on this line."""
    fault_lines.clear(line)


@when(phrase("the rig cuts the card reader's power"))
def cut_reader_power(fault_lines: FaultLines) -> None:
    """Assert the reader_power line: the card reader loses its supply."""
    fault_lines.set("reader_power")


@when(phrase("the rig restores the card reader's power"))
def restore_reader_power(fault_lines: FaultLines) -> None:
    """Release the reader_power line."""
    fault_lines.clear("reader_power")


@then(
    phrase(
        'the self-check reports fault line "{line:FaultLine}" with its documented code, '
        "screen text and log entry"
    )
)
def item_reports_fault_line(
    item_check: ItemCheck, terminal: Terminal, screen_source: ScreenSource, line: str
) -> None:
    """The item this line belongs to reported the line's documented code (a failure, or a
    warning for the lines that only warn), the idle screen shows exactly the documented
    screen with the code and its text, and the log holds the code from that run."""
    entry = documented_problem(FAULT_LINE_CODES[line])
    with reporting.action("check fault report", line=line, item=entry.item, expected=entry.code):
        judge_item(item_check, entry.item, entry.status, entry.code)
    check_idle_screen(terminal, entry, screen_source)
    check_logged(terminal, item_check)


@then(phrase('a sale is refused because of fault line "{line:FaultLine}"'))
def sale_refused(terminal: Terminal, hil_rig: Rig, line: str) -> None:
    """A sale attempted now is refused with the code documented for this line, and
    nothing reaches the host."""
    if line not in PAYMENT_REFUSALS:
        raise StepValueError(
            f"fault line {line} is not documented to stop payments (lines that do: "
            f"{', '.join(PAYMENT_REFUSALS)})"
        )
    expect_sale_refused(terminal, hil_rig, PROBE_SALE_AMOUNT, PAYMENT_REFUSALS[line])


@then(phrase('the fault on line "{line:FaultLine}" has its documented effect on payments'))
def payment_effect(terminal: Terminal, hil_rig: Rig, line: str) -> None:
    """While the line is held a sale is refused with its documented code and nothing
    reaches the host; a line documented not to stop payments lets a sale be approved."""
    if line in PAYMENT_REFUSALS:
        expect_sale_refused(terminal, hil_rig, PROBE_SALE_AMOUNT, PAYMENT_REFUSALS[line])
        return
    with reporting.action("a sale must still go through", line=line):
        try:
            sale = terminal.sale(PROBE_SALE_AMOUNT)
        except TerminalCommandError as e:
            raise DutError(
                f"a sale was refused with {e.code} while '{line}' is asserted, which the "
                f"documentation does not make stop payments: {e.terminal_message}"
            ) from e
        assert sale.outcome == "approved", f"sale while '{line}' is asserted: {sale.describe()}"


@when(phrase("the rig unplugs the fault-line harness"))
def unplug_harness(fault_line_harness: FaultLineHarness) -> None:
    """Pull the fault-line harness: the terminal's fault-line inputs read nothing."""
    fault_line_harness.unplug()


@when(phrase("the rig plugs the fault-line harness back"))
def plug_harness(fault_line_harness: FaultLineHarness) -> None:
    """Plug the harness back in; returns once the terminal reads its lines again."""
    fault_line_harness.plug()
