"""Where screen steps read the terminal's face, and the reader LED steps.

``screen_source`` is the rig's camera when the rig has one (``[camera]``), else the
terminal's test port (``hil.terminal.screensource``): every step that checks the
screen or the reader LED reads through it, so the same feature runs on both.
"""

from __future__ import annotations

import pytest
from pytest_bdd import then

from hil import reporting
from hil.rig import Rig
from hil.steps.phrases import phrase
from hil.terminal import Terminal
from hil.terminal.screensource import ScreenSource, screen_source_for


@pytest.fixture
def screen_source(hil_rig: Rig, terminal: Terminal) -> ScreenSource:
    """The camera on the terminal's face when the rig has one, else its test port."""
    return screen_source_for(dict(hil_rig.instruments), terminal)


@then(phrase("the reader LED is {colour:LedColour}"))
def reader_led_is(screen_source: ScreenSource, colour: str) -> None:
    """The card reader's LED is off, or lit in this colour (docs "Reader LED"), as the
    test port reports it or the rig's camera sees it."""
    shown = screen_source.reader_led()
    reporting.attach_json("reader LED", {"shown": shown, "read by": screen_source.kind})
    assert shown == colour, (
        f"the reader LED is {shown}, not {colour} (read by the {screen_source.kind})"
    )
