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
from hil.instruments.faultlines import FaultLines
from hil.rig import Rig
from hil.steps.common import instrument_of
from hil.steps.phrases import StepValueError, phrase
from hil.steps.selfcheck import ItemCheck, check_idle_screen, documented, judge_item
from hil.terminal import Terminal

#: The amount of the sale a held fault line must refuse (minor units).
PROBE_SALE_AMOUNT = 100


@pytest.fixture
def fault_lines(hil_rig: Rig) -> FaultLines:
    """The rig's fault lines; every line is released after each scenario."""
    return cast(FaultLines, instrument_of(hil_rig, "faultlines", FaultLines))


@given(phrase('the rig asserts fault line "{line:FaultLine}"'))
@when(phrase('the rig asserts fault line "{line:FaultLine}"'))
def assert_line(fault_lines: FaultLines, line: str) -> None:
    """Assert the fault on this line (reader_power, supply_low, tamper)."""
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
def item_reports_fault_line(item_check: ItemCheck, terminal: Terminal, line: str) -> None:
    """The item this line belongs to failed with the line's documented code, the idle
    screen shows the code with its text, and the system log holds the code."""
    entry = documented(FAULT_LINE_CODES[line], "fail")
    with reporting.action("check fault report", line=line, item=entry.item, expected=entry.code):
        judge_item(item_check, entry.item, "fail", entry.code)
    check_idle_screen(terminal, entry)
    logged = {log_entry.code for log_entry in terminal.log(limit=1000)}
    assert entry.code in logged, f"the system log does not hold {entry.code}"


@then(phrase('a sale is refused because of fault line "{line:FaultLine}"'))
def sale_refused(terminal: Terminal, line: str) -> None:
    """A sale attempted now is refused with the code documented for this line."""
    if line not in PAYMENT_REFUSALS:
        raise StepValueError(
            f"fault line {line} is not documented to stop payments (lines that do: "
            f"{', '.join(PAYMENT_REFUSALS)})"
        )
    code = PAYMENT_REFUSALS[line]
    with reporting.action("try a sale", expected_refusal=code):
        try:
            sale = terminal.sale(PROBE_SALE_AMOUNT)
        except TerminalCommandError as e:
            assert e.code == code, (
                f"sale refused with {e.code}: {e.terminal_message}; expected {code}"
            )
            return
    raise DutError(f"the terminal accepted a sale while '{line}' is asserted: {sale.describe()}")
