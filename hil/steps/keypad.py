"""PIN entry on the terminal's keypad, through the rig's keypad instrument.

The PIN comes from the card profile (synthetic test data), never from the feature text:
a step's text reaches the report, a PIN never does. The terminal is asked for a PIN on
its port; once its ``pin_entry`` screen shows, the rig's keypad presses the keys (the
test port's ``keypad.press`` on the sim, an actuator or a person on a bench). What is
checked and reported is the number of digits, never which.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import cast

import pytest
from pytest_bdd import then, when

from hil import reporting
from hil.errors import DutError, TerminalCommandError
from hil.instruments.keypad import Keypad
from hil.rig import Rig
from hil.steps.common import instrument_of, log_position
from hil.steps.phrases import Duration, phrase
from hil.terminal import PinEntry, ScreenChanged, Terminal

PIN_SCREEN = "pin_entry"
PIN_TIMEOUT_MS = 10_000
PROMPT_WAIT_S = 5.0


@dataclass
class PinAttempt:
    """How a PIN entry ended: taken (with its digit count) or refused with a code."""

    expected_digits: int
    log_from: int = 0  # the log's next seq when the entry began: what the entry wrote
    entry: PinEntry | None = None
    refusal: TerminalCommandError | None = None


@pytest.fixture
def keypad(hil_rig: Rig) -> Keypad:
    """The rig's keypad (test port, actuator or a person)."""
    return cast(Keypad, instrument_of(hil_rig, "keypad", Keypad))


def _pin_entry(
    terminal: Terminal, keys: list[str], timeout_ms: int, keypad: Keypad | None
) -> PinAttempt:
    attempt = PinAttempt(
        expected_digits=sum(1 for k in keys if k.isdigit()), log_from=log_position(terminal)
    )
    cursor = terminal.mark()
    failure: list[BaseException] = []

    def ask() -> None:
        try:
            attempt.entry = terminal.pin_entry(timeout_ms)
        except TerminalCommandError as e:
            attempt.refusal = e
        except BaseException as e:  # handed to the step below
            failure.append(e)

    asking = threading.Thread(target=ask, name="pin-entry", daemon=True)
    asking.start()
    if keypad is not None:
        terminal.wait_event(
            ScreenChanged,
            since=cursor,
            timeout=PROMPT_WAIT_S,
            where=lambda event: event.screen.screen == PIN_SCREEN,
        )
        keypad.press(keys)
    asking.join(timeout_ms / 1000 + 10)
    if asking.is_alive():
        raise DutError(f"the PIN entry did not end within {timeout_ms} ms of its own timeout")
    if failure:
        raise failure[0]
    reporting.attach_json(
        "PIN entry",
        {
            "digits typed": attempt.expected_digits,
            "digits taken": attempt.entry.digits if attempt.entry else None,
            "refused": attempt.refusal.code if attempt.refusal else None,
        },
    )
    return attempt


@when(
    phrase('the cardholder enters the PIN of card "{name:CardName}" at the prompt'),
    target_fixture="pin_attempt",
)
def enter_card_pin(terminal: Terminal, keypad: Keypad, name: str) -> PinAttempt:
    """The terminal asks for a PIN; the keypad types the card profile's PIN and enter."""
    pin = keypad.profiles.get(name).pin
    return _pin_entry(terminal, [*pin, "enter"], PIN_TIMEOUT_MS, keypad)


@when(
    phrase('the cardholder types the PIN of card "{name:CardName}" then cancels'),
    target_fixture="pin_attempt",
)
def cancel_pin(terminal: Terminal, keypad: Keypad, name: str) -> PinAttempt:
    """The terminal asks for a PIN; the keypad types the card's PIN, then cancel."""
    pin = keypad.profiles.get(name).pin
    return _pin_entry(terminal, [*pin, "cancel"], PIN_TIMEOUT_MS, keypad)


@when(
    phrase("the terminal asks for a PIN and nobody types within {limit:Duration}"),
    target_fixture="pin_attempt",
)
def nobody_types(terminal: Terminal, limit: Duration) -> PinAttempt:
    """The terminal asks for a PIN with this timeout and no key is pressed."""
    return _pin_entry(terminal, [], limit.whole_ms(), None)


@then(phrase("the terminal took a PIN as long as the card's"))
def pin_taken(pin_attempt: PinAttempt) -> None:
    """The terminal answered with as many digits as were typed (it never says which)."""
    assert pin_attempt.refusal is None, f"PIN entry refused: {pin_attempt.refusal}"
    assert pin_attempt.entry is not None and pin_attempt.entry.entered
    assert pin_attempt.entry.digits == pin_attempt.expected_digits, (
        f"the terminal took {pin_attempt.entry.digits} digits; "
        f"{pin_attempt.expected_digits} were typed"
    )


@then(phrase('the PIN entry ends with code "{code:Code}"'))
def pin_refused(pin_attempt: PinAttempt, code: str) -> None:
    """The terminal took no PIN and ended the entry with this code."""
    assert pin_attempt.refusal is not None, f"the PIN was taken: {pin_attempt.entry}"
    assert pin_attempt.refusal.code == code, (
        f"PIN entry ended {pin_attempt.refusal.code}, not {code}"
    )


@then(
    phrase('the terminal\'s log holds the PIN length of card "{name:CardName}", never its digits')
)
def log_without_pin(terminal: Terminal, keypad: Keypad, name: str, pin_attempt: PinAttempt) -> None:
    """The log says a PIN of that many digits was entered; no entry written since the
    entry began holds the digits (as a number of their own: a 4-digit PIN is also part
    of many a timestamp or amount written by earlier scenarios)."""
    pin = keypad.profiles.get(name).pin
    entries = terminal.log(since=pin_attempt.log_from, limit=1000)
    alone = re.compile(rf"(?<!\d){re.escape(pin)}(?!\d)")
    assert not any(alone.search(entry.message) for entry in entries), (
        "the PIN is in the terminal's log"
    )
    assert any(
        entry.code == "I_PIN_ENTERED" and f"({len(pin)} digits)" in entry.message
        for entry in entries
    ), "no I_PIN_ENTERED entry with the PIN's length"
