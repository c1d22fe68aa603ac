"""Steps for card reading and the card-reader self-check: insert, tap, swipe, pull the
card out, cut the reader's power; verify what the terminal read independently (masked
PAN equals the profile, AID selected, screens, codes, payments refused)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from pytest_bdd import given, parsers, then, when

from hil import reporting
from hil.cards.profile import CardProfile, ProfileLibrary
from hil.cards.spec import CARD_ERROR_SCREEN, CARD_ERROR_SCREENS, ENTRY_MODES
from hil.errors import DutError, TerminalCommandError
from hil.instruments.cards import CardSlot
from hil.instruments.faultlines import FaultLines
from hil.instruments.magstripe import Magstripe, SwipeFault
from hil.masking import contains_full_pan, mask_pan
from hil.protocol.session import Event, EventTimeout
from hil.rig import Rig
from hil.selfcheck_spec import FAULT_LINE_EFFECTS, IDLE_SCREEN, PAYMENT_REFUSALS
from hil.terminal import Terminal

#: How long a read may take before the rig gives up waiting (the limit is the step's).
READ_WAIT_S = 15.0
SCREEN_WAIT_S = 5.0


@dataclass
class Presentation:
    """One card presented in this scenario and what the terminal made of it."""

    profile: CardProfile
    entry_mode: str
    cursor: int
    started: float
    read: Event | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def result(self) -> dict[str, Any]:
        assert self.read is not None, "the terminal has not reported a card read yet"
        return self.read.data


@pytest.fixture
def card_slot(hil_rig: Rig) -> Iterator[CardSlot]:
    """The rig's card slot; whatever APDUs the scenario caused go into the report."""
    slot = cast(CardSlot, hil_rig.instrument("cards"))
    yield slot
    trace = slot.take_trace()
    if trace:
        reporting.attach_text("APDU trace", trace)


@pytest.fixture
def magstripe(hil_rig: Rig) -> Magstripe:
    return cast(Magstripe, hil_rig.instrument("magstripe"))


@pytest.fixture
def fault_lines(hil_rig: Rig) -> FaultLines:
    return cast(FaultLines, hil_rig.instrument("faultlines"))


def _profiles(hil_rig: Rig) -> ProfileLibrary:
    for section in ("cards", "magstripe"):
        instrument = hil_rig.instruments.get(section)
        if instrument is not None:
            return cast(ProfileLibrary, instrument.profiles)  # type: ignore[attr-defined]
    raise DutError("the rig has no card instrument to take profiles from")


def _present(terminal: Terminal, hil_rig: Rig, name: str, entry_mode: str) -> Presentation:
    profile = _profiles(hil_rig).get(name)
    cursor = terminal.console.events.mark()
    return Presentation(profile, entry_mode, cursor, time.monotonic())


# --- presenting cards -------------------------------------------------------------------


@given(parsers.parse('the test card "{name}" is inserted'), target_fixture="presented")
@when(parsers.parse('the test card "{name}" is inserted'), target_fixture="presented")
def insert_card(terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, name: str) -> Presentation:
    presented = _present(terminal, hil_rig, name, "chip")
    card_slot.insert(presented.profile)
    return presented


@when(parsers.parse('the test card "{name}" is tapped'), target_fixture="presented")
def tap_card(terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, name: str) -> Presentation:
    presented = _present(terminal, hil_rig, name, "contactless")
    card_slot.tap(presented.profile)
    return presented


_SWIPES: dict[str, SwipeFault] = {"": "none", " with a bad LRC": "bad_lrc", " partially": "partial"}


@when(
    parsers.re(r'the test card "(?P<name>[^"]+)" is swiped(?P<how>| with a bad LRC| partially)$'),
    target_fixture="presented",
)
def swipe_card(
    terminal: Terminal, hil_rig: Rig, magstripe: Magstripe, name: str, how: str
) -> Presentation:
    presented = _present(terminal, hil_rig, name, "magstripe")
    magstripe.swipe(presented.profile, fault=_SWIPES[how])
    return presented


@when(parsers.parse('the test card "{name}" is inserted again'))
def insert_again(
    terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, presented: Presentation, name: str
) -> None:
    """Insert once more and wait for that read too; the scenario keeps its first cursor."""
    again = _present(terminal, hil_rig, name, "chip")
    card_slot.insert(again.profile)
    _wait_read(terminal, again)


@when("the card is removed")
def remove_card(card_slot: CardSlot) -> None:
    card_slot.remove()


@when("the card is removed during the transaction")
def remove_mid_transaction(
    terminal: Terminal, card_slot: CardSlot, presented: Presentation
) -> None:
    # The terminal announces it started on the card; pull it out then, mid-flow.
    terminal.console.events.wait_for("card.presented", since=presented.cursor, timeout=READ_WAIT_S)
    card_slot.remove()


# --- what the terminal read --------------------------------------------------------------


def _wait_read(terminal: Terminal, presented: Presentation) -> dict[str, Any]:
    if presented.read is None:
        try:
            presented.read = terminal.console.events.wait_for(
                "card.read", since=presented.cursor, timeout=READ_WAIT_S
            )
        except EventTimeout as e:
            raise DutError(
                f"the terminal reported no card read for '{presented.profile.name}' "
                f"({presented.entry_mode}) within {READ_WAIT_S:.0f} s: {e}"
            ) from e
        reporting.attach_json(f"card.read {presented.profile.name}", presented.read.data)
    return presented.result()


@then(parsers.parse("the terminal reads the card within {limit:g} seconds"))
def read_within(terminal: Terminal, presented: Presentation, limit: float) -> None:
    result = _wait_read(terminal, presented)
    assert presented.read is not None
    elapsed = presented.read.received_at - presented.started
    name = {"chip": "insert_to_read", "contactless": "tap_to_read"}.get(
        presented.entry_mode, "swipe_to_read"
    )
    measurement = reporting.measure(name, elapsed, "s", high=limit)
    assert result.get("ok") is True, (
        f"card read failed: {result.get('code')}: {result.get('message')}"
    )
    assert measurement.passed, measurement.describe()


@then(parsers.parse('the read reports entry mode "{mode}"'))
def entry_mode_is(terminal: Terminal, presented: Presentation, mode: str) -> None:
    assert mode in ENTRY_MODES, f"step names unknown entry mode {mode!r}"
    result = _wait_read(terminal, presented)
    assert result.get("entry_mode") == mode, (
        f"entry mode {result.get('entry_mode')!r}, not {mode!r}"
    )


@then("the masked PAN read equals the card profile")
def pan_matches(terminal: Terminal, presented: Presentation) -> None:
    result = _wait_read(terminal, presented)
    reported = str(result.get("pan"))
    expected = mask_pan(presented.profile.pan)
    with reporting.action("compare masked PAN", reported=reported, expected=expected):
        assert not contains_full_pan(reported), "the terminal reported a full PAN on its test port"
        assert reported == expected, f"PAN read {reported}, card profile {expected}"
        expiry = result.get("expiry")
        assert expiry in (None, presented.profile.expiry), (
            f"expiry read {expiry}, card profile {presented.profile.expiry}"
        )


@then("the terminal selected the card's preferred application")
def aid_matches(terminal: Terminal, presented: Presentation) -> None:
    result = _wait_read(terminal, presented)
    app = presented.profile.preferred_application()
    with reporting.action("compare application", aid=result.get("aid"), expected=app.aid):
        assert result.get("aid") == app.aid, f"AID selected {result.get('aid')}, expected {app.aid}"
        assert result.get("label") == app.label, (
            f"label {result.get('label')!r}, expected {app.label!r}"
        )


@then(parsers.parse('the read fails with code "{code}"'))
def read_fails(terminal: Terminal, presented: Presentation, code: str) -> None:
    result = _wait_read(terminal, presented)
    with reporting.action("check read failure", expected=code, reported=result.get("code")):
        assert result.get("ok") is False, f"the read succeeded, expected {code}"
        assert result.get("code") == code, (
            f"read failed with {result.get('code')}: {result.get('message')}; expected {code}"
        )
        assert result.get("message"), "the failure carries no message"


@then("the terminal shows the documented message for that code")
def error_screen(terminal: Terminal, presented: Presentation) -> None:
    result = _wait_read(terminal, presented)
    code = str(result.get("code"))
    words = CARD_ERROR_SCREENS[code]

    def shows(data: dict[str, Any]) -> bool:
        lines = " ".join(str(line) for line in data.get("lines", []))
        return data.get("screen") == CARD_ERROR_SCREEN and all(w in lines for w in (*words, code))

    try:
        terminal.console.events.wait_for(
            "display.changed", since=presented.cursor, timeout=SCREEN_WAIT_S, where=shows
        )
    except EventTimeout as e:
        raise DutError(f"the screen never showed {words} with {code}: {e}") from e


@then("the terminal is back to idle")
def back_to_idle(terminal: Terminal, presented: Presentation) -> None:
    def idle(data: dict[str, Any]) -> bool:
        return data.get("screen") == IDLE_SCREEN

    if terminal.display().get("screen") != IDLE_SCREEN:
        try:
            terminal.console.events.wait_for(
                "display.changed", since=presented.cursor, timeout=SCREEN_WAIT_S, where=idle
            )
        except EventTimeout as e:
            raise DutError(f"the terminal did not return to its idle screen: {e}") from e
    info = terminal.info()
    assert info.get("state") == "idle", f"terminal state {info.get('state')!r}, not idle"


@then("the ATC went up by one for each read")
def atc_increments(terminal: Terminal, presented: Presentation) -> None:
    reads = terminal.console.events.find("card.read", since=presented.cursor)
    atcs = [int(e.data["atc"]) for e in reads if e.data.get("atc") is not None]
    assert len(atcs) >= 2, f"need two reads with an ATC, got {atcs}"
    assert all(b == a + 1 for a, b in itertools.pairwise(atcs)), f"ATCs {atcs}"


@then("the APDU trace is attached without cardholder data")
def attach_trace(card_slot: CardSlot, presented: Presentation) -> None:
    trace = card_slot.take_trace()
    assert not contains_full_pan(trace), "the APDU trace holds a full PAN"
    assert presented.profile.pan not in trace
    reporting.attach_text("APDU trace", trace)
    assert "<PIN block" in trace or "VERIFY" not in trace


# --- reader power and other fault lines ------------------------------------------------------


@given(parsers.parse('the rig asserts fault line "{line}"'))
@when(parsers.parse('the rig asserts fault line "{line}"'))
def assert_line(fault_lines: FaultLines, line: str) -> None:
    fault_lines.set(line)


@when(parsers.parse('the rig releases fault line "{line}"'))
def release_line(fault_lines: FaultLines, line: str) -> None:
    fault_lines.clear(line)


@when("the rig cuts the card reader's power")
def cut_reader_power(fault_lines: FaultLines) -> None:
    fault_lines.set("reader_power")


@when("the rig restores the card reader's power")
def restore_reader_power(fault_lines: FaultLines) -> None:
    fault_lines.clear("reader_power")


@when(parsers.parse('the terminal runs its self-check of "{item}"'), target_fixture="item_result")
def run_one_item(terminal: Terminal, item: str) -> dict[str, Any]:
    summary = terminal.selfcheck([item])
    results = {r["item"]: r for r in summary.get("results", [])}
    assert item in results, f"selfcheck.run did not report {item}: {summary}"
    reporting.attach_json(f"self-check {item}", results[item])
    return dict(results[item])


@then(parsers.parse('it reports the fault of line "{line}" with its code and screen message'))
def item_reports_fault(terminal: Terminal, item_result: dict[str, Any], line: str) -> None:
    item, code, text = FAULT_LINE_EFFECTS[line]
    with reporting.action("check fault report", item=item, expected=code):
        assert item_result.get("item") == item, f"ran {item_result.get('item')}, expected {item}"
        assert item_result.get("status") == "fail", (
            f"{item}: {item_result.get('status')} {item_result.get('code')} "
            f"{item_result.get('message')}; the rig holds '{line}', so it must fail with {code}"
        )
        assert item_result.get("code") == code, (
            f"{item} failed with {item_result.get('code')}, not {code}"
        )
    lines = " ".join(str(x) for x in terminal.display().get("lines", []))
    assert f"{code} {text}" in lines, f"idle screen lacks '{code} {text}': {lines}"
    logged = {str(e.get("code")) for e in terminal.log(limit=1000)}
    assert code in logged, f"the system log does not hold {code}"


@then(parsers.parse('the self-check of "{item}" passes'))
def item_passes(item_result: dict[str, Any], item: str) -> None:
    assert item_result.get("item") == item
    assert item_result.get("status") == "pass", (
        f"{item}: {item_result.get('status')} {item_result.get('code')} "
        f"{item_result.get('message')}"
    )


@then(parsers.parse('a sale is refused because of fault line "{line}"'))
def sale_refused(terminal: Terminal, line: str) -> None:
    code = PAYMENT_REFUSALS[line]
    with reporting.action("try a sale", expected_refusal=code):
        try:
            result = terminal.console.request("payment.sale", {"amount": 100})
        except TerminalCommandError as e:
            assert e.code == code, (
                f"sale refused with {e.code}: {e.terminal_message}; expected {code}"
            )
            return
    raise DutError(f"the terminal accepted a sale while '{line}' is asserted: {result}")


@then("a card inserted now is not read")
def unpowered_reader_reads_nothing(terminal: Terminal, hil_rig: Rig, card_slot: CardSlot) -> None:
    presented = _present(terminal, hil_rig, "visa-credit", "chip")
    card_slot.insert(presented.profile)
    try:
        with pytest.raises(EventTimeout):
            terminal.console.events.wait_for("card.read", since=presented.cursor, timeout=1.0)
    finally:
        card_slot.remove()
