"""Every scenario ends with a scan of the terminal's raw output for cardholder data.

The terminal's adapter scans every event and answer before anything masks it, and at
the end of each scenario the log entries written since the last look, the refusals and
the bytes outside frames (``hil.terminal.leaks``). A full PAN, track data or a PIN
block found there fails the scenario as a terminal defect (``CardDataLeak``), whatever
its steps did; the report names where and which field, with the number masked. What
the rig itself writes stays masked (``hil.masking``).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, runtime_checkable

import pytest

from hil import reporting
from hil.errors import HilError
from hil.masking import mask_text
from hil.terminal import Terminal
from hil.terminal.leaks import CardDataLeak, Leak


@runtime_checkable
class LeakWatcher(Protocol):
    """A terminal port that scans what the terminal writes (``TestPortAdapter`` does)."""

    def take_leaks(self, *, read_log: bool = True) -> list[Leak]: ...


def leaks_now(terminal: Terminal) -> list[Leak]:
    """What the terminal leaked since the last look; the log is read too when the
    terminal can answer (a terminal that is off or gone is scanned as far as it got)."""
    port = terminal.port
    if not isinstance(port, LeakWatcher):
        return []
    if terminal.power is not None and not terminal.power.is_on:
        return port.take_leaks(read_log=False)  # switched off: nothing to ask it
    try:
        return port.take_leaks()
    except HilError as e:
        reporting.attach_text("leak scan: the log could not be read", mask_text(str(e)))
        return port.take_leaks(read_log=False)


@pytest.hookimpl(trylast=True)
def pytest_bdd_after_scenario(request: pytest.FixtureRequest, feature: Any, scenario: Any) -> None:
    """Fail the scenario when the terminal wrote cardholder data during it."""
    if "terminal" not in request.fixturenames:
        return
    terminal = request.getfixturevalue("terminal")
    if not isinstance(terminal, Terminal):
        return
    leaks = leaks_now(terminal)
    if not leaks:
        return
    reporting.attach_text(
        "cardholder data in the terminal's output", "\n".join(leak.describe() for leak in leaks)
    )
    error = CardDataLeak(leaks)
    failing = sys.exc_info()[1]
    if failing is not None:
        # The scenario had failed already: the leak is reported as well, not instead.
        first = mask_text(str(failing)).splitlines()[0] if str(failing) else ""
        error.args = (f"{error}; the scenario had also failed: {type(failing).__name__}: {first}",)
    raise error
