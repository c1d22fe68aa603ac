"""Steps for card reading: insert, tap or swipe a test card and judge what was read.

What the terminal read is verified independently: the masked PAN equals the card
profile, the expected application was selected, failures carry their documented code
and screen. The card-reader self-check runs with the shared self-check steps; the
reader's power with the fault-line steps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pytest
from pytest_bdd import given, then, when

from hil import reporting
from hil.cards.profile import CardProfile, ProfileLibrary, expiring
from hil.contract.cards import CARD_ERROR_SCREEN, CARD_ERROR_SCREENS
from hil.contract.selfcheck import IDLE_SCREEN
from hil.errors import DutError, RigError
from hil.instruments.cards import CardSlot
from hil.instruments.magstripe import Magstripe, SwipeFault
from hil.masking import contains_full_pan, mask_pan
from hil.rig import Rig
from hil.steps.common import RigCursor, instrument_of, rig_cursor
from hil.steps.phrases import Duration, phrase
from hil.terminal import (
    CardPresented,
    CardRead,
    CardReadFinished,
    Terminal,
    TerminalEventTimeout,
    as_report,
)
from hil.terminal.screensource import ScreenSource, shows

#: How long a read may take before the rig gives up waiting (the limit is the step's).
READ_WAIT_S = 15.0
SCREEN_WAIT_S = 5.0
#: How long "a card inserted now is not read" watches for a read that must not come.
NO_READ_WATCH_S = 1.0
#: The card "a card inserted now is not read" inserts.
PROBE_CARD = "visa-credit"
#: Measurement name of a presentation's time to read, by entry mode.
READ_MEASUREMENTS = {"chip": "insert_to_read", "contactless": "tap_to_read"}


@dataclass
class Presentation:
    """One card presented in this scenario; the terminal's read of it, once waited for."""

    profile: CardProfile
    entry_mode: str
    before: RigCursor
    _finished: CardReadFinished | None = field(default=None, repr=False)

    def finished(self, terminal: Terminal) -> CardReadFinished:
        """The terminal's first read after the presentation (waited for once, then kept)."""
        if self._finished is None:
            try:
                self._finished = terminal.wait_card_read(
                    since=self.before.events, timeout=READ_WAIT_S
                )
            except TerminalEventTimeout as e:
                raise DutError(
                    f"the terminal reported no card read for '{self.profile.name}' "
                    f"({self.entry_mode}) within {READ_WAIT_S:.0f} s: {e}"
                ) from e
            reporting.attach_json(f"card.read {self.profile.name}", as_report(self._finished.read))
        return self._finished

    def read(self, terminal: Terminal) -> CardRead:
        return self.finished(terminal).read


@pytest.fixture
def card_slot(hil_rig: Rig) -> Iterator[CardSlot]:
    """The rig's card slot; whatever APDUs the scenario caused go into the report."""
    slot = cast(CardSlot, instrument_of(hil_rig, "cards", CardSlot))
    yield slot
    trace = slot.take_trace()
    if trace:
        reporting.attach_text("APDU trace", trace)


@pytest.fixture
def magstripe(hil_rig: Rig) -> Magstripe:
    return cast(Magstripe, instrument_of(hil_rig, "magstripe", Magstripe))


def _profiles(hil_rig: Rig) -> ProfileLibrary:
    for section in ("cards", "magstripe"):
        if section in hil_rig.capabilities:
            instrument = hil_rig.instrument(section)
            if isinstance(instrument, CardSlot | Magstripe):
                return instrument.profiles
    raise RigError("the rig has no card instrument to take profiles from", instrument="cards")


def _present(terminal: Terminal, hil_rig: Rig, name: str, entry_mode: str) -> Presentation:
    profile = _profiles(hil_rig).get(name)
    return Presentation(profile, entry_mode, rig_cursor(terminal, hil_rig))


# --- presenting cards -------------------------------------------------------------------


@given(phrase('the test card "{name:CardName}" is inserted'), target_fixture="presented")
@when(phrase('the test card "{name:CardName}" is inserted'), target_fixture="presented")
def insert_card(terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, name: str) -> Presentation:
    """Insert the test card with this profile into the chip reader."""
    presented = _present(terminal, hil_rig, name, "chip")
    card_slot.insert(presented.profile)
    return presented


def _present_expiring(
    terminal: Terminal, hil_rig: Rig, name: str, month: int, entry_mode: str
) -> Presentation:
    """A presentation of this card made at run time with its expiry ``month`` months
    from today's (0: this month)."""
    profile = expiring(_profiles(hil_rig).get(name), month)
    reporting.attach_json("card generated", {"profile": profile.name, "expiry": profile.expiry})
    return Presentation(profile, entry_mode, rig_cursor(terminal, hil_rig))


@when(
    phrase('the test card "{name:CardName}" expiring {month:ExpiryMonth} is inserted'),
    target_fixture="presented",
)
def insert_card_expiring(
    terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, name: str, month: int
) -> Presentation:
    """Insert this test card with its expiry moved to a month relative to today's (a
    card is valid through the end of its expiry month)."""
    presented = _present_expiring(terminal, hil_rig, name, month, "chip")
    card_slot.insert(presented.profile)
    return presented


@when(
    phrase('the test card "{name:CardName}" expiring {month:ExpiryMonth} is swiped'),
    target_fixture="presented",
)
def swipe_card_expiring(
    terminal: Terminal, hil_rig: Rig, magstripe: Magstripe, name: str, month: int
) -> Presentation:
    """Swipe this test card with its expiry moved to a month relative to today's."""
    presented = _present_expiring(terminal, hil_rig, name, month, "magstripe")
    magstripe.swipe(presented.profile, fault="none")
    return presented


@when(phrase('the test card "{name:CardName}" is tapped'), target_fixture="presented")
def tap_card(terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, name: str) -> Presentation:
    """Hold the test card with this profile to the contactless antenna."""
    presented = _present(terminal, hil_rig, name, "contactless")
    card_slot.tap(presented.profile)
    return presented


@when(
    phrase('the test card "{name:CardName}" is swiped{manner:SwipeManner}'),
    target_fixture="presented",
)
def swipe_card(
    terminal: Terminal, hil_rig: Rig, magstripe: Magstripe, name: str, manner: SwipeFault
) -> Presentation:
    """Swipe the test card through the mag head: cleanly, with a bad LRC, or partially."""
    presented = _present(terminal, hil_rig, name, "magstripe")
    magstripe.swipe(presented.profile, fault=manner)
    return presented


@when(phrase('the test card "{name:CardName}" is inserted again'))
def insert_again(
    terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, presented: Presentation, name: str
) -> None:
    """Insert once more and wait for that read too; the scenario keeps its first cursor."""
    again = _present(terminal, hil_rig, name, "chip")
    card_slot.insert(again.profile)
    again.finished(terminal)


@when(phrase("the card is removed"))
def remove_card(card_slot: CardSlot) -> None:
    """Pull the inserted card out of the chip reader."""
    card_slot.remove()


@when(phrase("the card is removed during the transaction"))
def remove_mid_transaction(
    terminal: Terminal, card_slot: CardSlot, presented: Presentation
) -> None:
    """Pull the card out as soon as the terminal says it started on it."""
    terminal.wait_event(CardPresented, since=presented.before.events, timeout=READ_WAIT_S)
    card_slot.remove()


# --- what the terminal read --------------------------------------------------------------


@then(phrase("the terminal reads the card within {limit:Duration}"))
def read_within(terminal: Terminal, presented: Presentation, limit: Duration) -> None:
    """The card was read successfully, this soon after it was presented."""
    finished = presented.finished(terminal)
    elapsed = finished.received_at - presented.before.taken_at
    name = READ_MEASUREMENTS.get(presented.entry_mode, "swipe_to_read")
    measurement = reporting.measure(name, elapsed, "s", high=limit.seconds)
    read = finished.read
    assert read.ok, f"card read failed: {read.code}: {read.message}"
    assert measurement.passed, measurement.describe()


@then(phrase('the read reports entry mode "{mode:EntryMode}"'))
def entry_mode_is(terminal: Terminal, presented: Presentation, mode: str) -> None:
    """The terminal says it read the card this way (chip, contactless, magstripe)."""
    read = presented.read(terminal)
    assert read.entry_mode == mode, f"entry mode {read.entry_mode!r}, not {mode!r}"


@then(phrase("the masked PAN read equals the card profile"))
def pan_matches(terminal: Terminal, presented: Presentation) -> None:
    """The masked PAN (and expiry, when read) equal the profile of the card presented."""
    read = presented.read(terminal)
    reported = str(read.pan)
    expected = mask_pan(presented.profile.pan)
    with reporting.action("compare masked PAN", reported=reported, expected=expected):
        assert not contains_full_pan(reported), "the terminal reported a full PAN on its test port"
        assert reported == expected, f"PAN read {reported}, card profile {expected}"
        assert read.expiry in (None, presented.profile.expiry), (
            f"expiry read {read.expiry}, card profile {presented.profile.expiry}"
        )


@then(phrase("the terminal selected the card's preferred application"))
def aid_matches(terminal: Terminal, presented: Presentation) -> None:
    """The AID and label selected are the profile's highest-priority application."""
    read = presented.read(terminal)
    app = presented.profile.preferred_application()
    with reporting.action("compare application", aid=read.aid, expected=app.aid):
        assert read.aid == app.aid, f"AID selected {read.aid}, expected {app.aid}"
        assert read.label == app.label, f"label {read.label!r}, expected {app.label!r}"


@then(phrase('the read fails with code "{code:Code}"'))
def read_fails(terminal: Terminal, presented: Presentation, code: str) -> None:
    """The read failed with this card code and a message."""
    read = presented.read(terminal)
    with reporting.action("check read failure", expected=code, reported=read.code):
        assert not read.ok, f"the read succeeded, expected {code}"
        assert read.code == code, f"read failed with {read.code}: {read.message}; expected {code}"
        assert read.message, "the failure carries no message"


@then(phrase("the terminal shows the documented message for that code"))
def error_screen(terminal: Terminal, screen_source: ScreenSource, presented: Presentation) -> None:
    """The card error screen showed the code and its documented words (read by the test
    port's events since the card was presented, or by the rig's camera)."""
    code = presented.read(terminal).code
    words = CARD_ERROR_SCREENS[code]
    screen_source.wait_for(
        lambda screen: (
            screen.screen == CARD_ERROR_SCREEN and shows(screen_source, screen, *words, code)
        ),
        since=presented.before.events,
        timeout=SCREEN_WAIT_S,
        what=f"{words} with {code}",
    )


@then(phrase("the terminal is back to idle"))
def back_to_idle(terminal: Terminal, screen_source: ScreenSource, presented: Presentation) -> None:
    """The idle screen is back and the terminal reports the idle state."""
    if screen_source.current().screen != IDLE_SCREEN:
        screen_source.wait_for(
            lambda screen: screen.screen == IDLE_SCREEN,
            since=presented.before.events,
            timeout=SCREEN_WAIT_S,
            what="its idle screen",
        )
    info = terminal.info()
    assert info.state == "idle", f"terminal state {info.state!r}, not idle"


@then(phrase("the ATC went up by one for each read"))
def atc_increments(terminal: Terminal, presented: Presentation) -> None:
    """Every read since the first presentation saw the card's counter one higher."""
    reads = terminal.find_events(CardReadFinished, since=presented.before.events)
    atcs = [e.read.atc for e in reads if e.read.atc is not None]
    assert len(atcs) >= 2, f"need two reads with an ATC, got {atcs}"
    assert all(b == a + 1 for a, b in itertools.pairwise(atcs)), f"ATCs {atcs}"


@then(phrase("the APDU trace is attached without cardholder data"))
def attach_trace(card_slot: CardSlot, presented: Presentation) -> None:
    """The masked APDU trace holds no full PAN and no PIN block in clear."""
    trace = card_slot.take_trace()
    assert not contains_full_pan(trace), "the APDU trace holds a full PAN"
    assert presented.profile.pan not in trace
    reporting.attach_text("APDU trace", trace)
    assert "<PIN block" in trace or "VERIFY" not in trace


@then(phrase("a card inserted now is not read"))
def unpowered_reader_reads_nothing(terminal: Terminal, hil_rig: Rig, card_slot: CardSlot) -> None:
    """A card inserted now gets no read at all (e.g. while the reader has no power)."""
    presented = _present(terminal, hil_rig, PROBE_CARD, "chip")
    card_slot.insert(presented.profile)
    try:
        with pytest.raises(TerminalEventTimeout):
            terminal.wait_card_read(since=presented.before.events, timeout=NO_READ_WATCH_S)
    finally:
        card_slot.remove()
