"""Steps for sales end to end with the card or wallet code the rig presents.

The instrument is a chip card the rig inserts, a card it taps, or a wallet code it
shows on the QR screen.

The terminal prompts (screen ``payment_prompt``), the rig presents, the terminal goes
to the host. The verdict is never the terminal's alone: the host's record of the 0200
must carry the entry mode (field 22), the amount (field 4) and the instrument presented
(the card's BIN and last four digits in field 2 and in field 55 tag 5A, the ARQC data
in field 55; or the wallet code shown), and the result screen must be the documented
one, line for line. The full PAN is never handled here: the host records it masked
(first 6 / last 4) and the rig compares that with the profile's masked PAN.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import then, when

from hil import reporting
from hil.cards.profile import CardProfile
from hil.contract.payments import (
    APPROVED_LINES,
    INSTRUMENT_REFUSAL_CODES,
    NO_CARD_FIELDS,
    POS_ENTRY_MODE,
    PROMPT_SCREEN,
    REQUIRED_ICC_TAGS,
    RESULT_SCREEN,
    WALLET_CODE_FIELD,
    declined_lines,
    prompt_lines,
)
from hil.contract.selfcheck import SALE_REFUSAL_CODES
from hil.errors import DutError
from hil.host import MessageRecord
from hil.instruments.cards import CardSlot
from hil.instruments.host import AcquirerHost
from hil.instruments.qrscreen import ShownFrame
from hil.masking import mask_data, mask_pan
from hil.rig import Rig
from hil.steps.common import RigCursor, expect_sale_refused, rig_cursor
from hil.steps.phrases import StepValueError, phrase
from hil.terminal import SaleResult, Screen, ScreenChanged, Terminal, as_report

#: How long the terminal may wait for the rig's card or code (payment.sale timeout_ms).
PRESENT_MS = 10_000
#: A refusal must come before any prompt: a terminal that prompts instead waits this long.
REFUSAL_PRESENT_MS = 2_000
#: How long the rig waits for the prompt before it presents anyway.
PROMPT_WAIT_S = 10.0
PROMPT_POLL_S = 0.01
#: The amount "a ... sale is refused" tries (minor units).
PROBE_AMOUNT = 100


@dataclass
class Payment:
    """A sale of this scenario with the instrument the rig presented."""

    entry_mode: str
    amount: int
    before: RigCursor
    profile: CardProfile | None = None
    shown_payload: str | None = None
    sale: SaleResult | None = None
    wall_s: float = 0.0
    prompt: Screen | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def result(self) -> SaleResult:
        if self.sale is None:
            raise StepValueError("no sale with a presented instrument was made in this scenario")
        return self.sale


@pytest.fixture
def payment() -> Payment:
    """Replaced by the step that makes the sale."""
    return Payment("", 0, RigCursor(0, None, 0.0))


def _prompt(terminal: Terminal, since: int, pending: Future[SaleResult]) -> Screen | None:
    """The ``payment_prompt`` screen shown after ``since``; None if the sale ended first
    (a refusal) or no prompt came in time."""
    deadline = time.monotonic() + PROMPT_WAIT_S
    while True:
        for event in terminal.find_events(ScreenChanged, since=since):
            if event.screen.screen == PROMPT_SCREEN:
                return event.screen
        if pending.done() or time.monotonic() >= deadline:
            return None
        time.sleep(PROMPT_POLL_S)


def _card_sale(
    terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, mode: str, amount: int, name: str
) -> Payment:
    profile = card_slot.profiles.get(name)
    paid = Payment(mode, amount, rig_cursor(terminal, hil_rig), profile=profile)
    started = time.monotonic()
    with (
        reporting.action(f"{mode} sale", amount=amount, card=profile.masked_pan),
        ThreadPoolExecutor(1, thread_name_prefix="hil-sale") as pool,
    ):
        pending = pool.submit(terminal.sale, amount, entry_mode=mode, present_ms=PRESENT_MS)
        paid.prompt = _prompt(terminal, paid.before.events, pending)
        if not pending.done():
            # Present when the terminal asks (or, if it never asked, anyway: the sale
            # then shows what the terminal does with a card it did not prompt for).
            if mode == "chip":
                card_slot.insert(profile)
            else:
                card_slot.tap(profile)
        paid.sale = pending.result()
    paid.wall_s = time.monotonic() - started
    reporting.attach_json(f"{mode} sale", as_report(paid.sale))
    return paid


@when(
    phrase(
        "the terminal makes a {mode:CardEntryMode} sale of {amount:Amount} with the test card "
        '"{name:CardName}"'
    ),
    target_fixture="payment",
)
def card_sale(
    terminal: Terminal, hil_rig: Rig, card_slot: CardSlot, mode: str, amount: int, name: str
) -> Payment:
    """Ask for a sale with this entry mode; when the terminal prompts, insert (chip) or
    tap (contactless) the test card with this profile; wait for the sale's answer."""
    return _card_sale(terminal, hil_rig, card_slot, mode, amount, name)


@when(
    phrase("the terminal makes a QR sale of {amount:Amount} with the code shown"),
    target_fixture="payment",
)
def qr_sale(terminal: Terminal, hil_rig: Rig, qr_shown: ShownFrame, amount: int) -> Payment:
    """Ask for a QR sale: the terminal prompts and scans the code the QR screen shows."""
    paid = Payment("qr", amount, rig_cursor(terminal, hil_rig), shown_payload=qr_shown.payload)
    started = time.monotonic()
    with reporting.action("QR sale", amount=amount):
        paid.sale = terminal.sale(amount, entry_mode="qr", present_ms=PRESENT_MS)
    paid.wall_s = time.monotonic() - started
    prompts = [
        e.screen
        for e in terminal.find_events(ScreenChanged, since=paid.before.events)
        if e.screen.screen == PROMPT_SCREEN
    ]
    paid.prompt = prompts[0] if prompts else None
    reporting.attach_json("QR sale", as_report(paid.sale))
    return paid


# --- what the terminal showed ---------------------------------------------------------


@then(phrase("the terminal prompted for that instrument with the amount"))
def prompted(payment: Payment) -> None:
    """Before the sale went anywhere the terminal showed the documented prompt of that
    entry mode, with the amount, line for line."""
    expected = prompt_lines(payment.entry_mode, payment.amount)
    shown = payment.prompt
    with reporting.action("compare the prompt", expected=list(expected)):
        assert shown is not None, f"the terminal never showed the {PROMPT_SCREEN} screen"
        assert shown.lines == expected, (
            f"{PROMPT_SCREEN} showed {list(shown.lines)}, documented {list(expected)}"
        )


def _result_screen(terminal: Terminal, payment: Payment) -> Screen:
    shown = [
        e.screen
        for e in terminal.find_events(ScreenChanged, since=payment.before.events)
        if e.screen.screen == RESULT_SCREEN
    ]
    if not shown:
        raise DutError(f"the terminal never showed the {RESULT_SCREEN} screen for the sale")
    reporting.attach_json("result screen", as_report(shown[-1]))
    return shown[-1]


@then(phrase("the sale is approved and the approval screen shows"))
def approved_with_screen(terminal: Terminal, payment: Payment) -> None:
    """The host approved the sale (00) and the terminal showed the documented approval
    screen, exactly."""
    sale = payment.result()
    assert sale.outcome == "approved" and sale.response_code == "00", f"{sale.describe()}"
    screen = _result_screen(terminal, payment)
    assert screen.lines == APPROVED_LINES, (
        f"approval screen {list(screen.lines)}, documented {list(APPROVED_LINES)}"
    )


@then(
    phrase(
        'the sale is declined with response code "{code:ResponseCode}" and the decline '
        "screen shows it"
    )
)
def declined_with_screen(terminal: Terminal, payment: Payment, code: str) -> None:
    """The sale's outcome is declined with the host's response code, and the terminal
    showed the documented decline screen with that code, exactly."""
    sale = payment.result()
    assert sale.outcome == "declined" and sale.response_code == code, (
        f"{sale.describe()}; expected declined with {code}"
    )
    screen = _result_screen(terminal, payment)
    expected = declined_lines(code)
    assert screen.lines == expected, (
        f"decline screen {list(screen.lines)}, documented {list(expected)}"
    )


# --- what the host received -------------------------------------------------------------


def _sales_since(host: AcquirerHost, payment: Payment, tid: str) -> list[MessageRecord]:
    return [
        r
        for r in host.records()[payment.before.host_messages or 0 :]
        if r.transaction == "sale" and r.direction == "in" and r.terminal_id == tid
    ]


def icc_tags(fields: dict[str, Any]) -> dict[str, str] | None:
    """Field 55 of a (masked) host record as tag -> value, None when absent or unreadable."""
    icc = fields.get("55")
    if not isinstance(icc, list):
        return None
    return {str(item["tag"]): str(item["value"]) for item in icc}


def card_mismatches(
    fields: dict[str, Any], profile: CardProfile, amount: int, entry_mode: str
) -> list[str]:
    """What in a card sale's (masked) 0200 fields disagrees with the card the rig
    presented and the amount asked: the BIN and last four digits in field 2 and in
    field 55 tag 5A, field 55 with the ARQC's tags and the amount in 9F02."""
    masked = mask_pan(profile.pan)
    problems: list[str] = []
    if fields.get("2") != masked:
        problems.append(
            f"field 2 is {fields.get('2')!r}: BIN/last 4 of the card presented are {masked!r}"
        )
    tags = icc_tags(fields)
    if tags is None:
        problems.append(f"field 55 (ICC data) missing or unreadable in a {entry_mode} sale")
        return problems
    if tags.get("5A") != masked:
        problems.append(
            f"field 55 tag 5A is {tags.get('5A')!r}: BIN/last 4 of the card presented are "
            f"{masked!r}"
        )
    missing = [t for t in REQUIRED_ICC_TAGS if t not in tags]
    if missing:
        problems.append(f"field 55 lacks tag(s) {', '.join(missing)}")
    if "9F02" in tags and tags["9F02"] != f"{amount:012d}":
        problems.append(f"field 55 9F02 (amount authorised) {tags['9F02']}, asked {amount:012d}")
    return problems


@then(
    phrase(
        "the host received that one sale, with that entry mode, the amount and the "
        "instrument presented"
    )
)
def host_sale_matches(acquirer_host: AcquirerHost, payment: Payment, hil_rig: Rig) -> None:
    """The host received exactly one 0200 since the sale was asked for, the sale's STAN:
    field 22 is the documented POS entry mode, field 4 the amount asked, and the
    instrument is the one the rig presented (card: BIN/last 4 in fields 2 and 55, field
    55 with the ARQC data; QR: the wallet code shown in field 48 and no card data)."""
    sale = payment.result()
    tid = hil_rig.expected_identity().terminal_id
    received = _sales_since(acquirer_host, payment, tid)
    stans = [r.fields.get("11") for r in received]
    with reporting.action("count sales at the host", stan=sale.stan, received=stans):
        assert stans == [sale.stan], (
            f"the host received {len(received)} sale(s) {stans} for the terminal's sale "
            f"{sale.stan}: exactly one was sent"
        )
    fields = received[0].fields
    reporting.attach_json("0200 as the host received it (masked)", fields)
    problems: list[str] = []
    if fields.get("22") != POS_ENTRY_MODE[payment.entry_mode]:
        problems.append(
            f"field 22 (POS entry mode) {fields.get('22')!r}, documented "
            f"{POS_ENTRY_MODE[payment.entry_mode]!r} for {payment.entry_mode}"
        )
    if fields.get("4") != f"{payment.amount:012d}":
        problems.append(f"field 4 (amount) {fields.get('4')!r}, asked {payment.amount:012d}")
    if payment.profile is not None:
        problems += card_mismatches(fields, payment.profile, payment.amount, payment.entry_mode)
        if sale.card != payment.profile.masked_pan:
            problems.append(
                f"the terminal reports card {sale.card!r}, the rig presented "
                f"{payment.profile.masked_pan!r}"
            )
    elif payment.shown_payload is not None:
        shown = mask_data(payment.shown_payload)
        if fields.get(WALLET_CODE_FIELD) != shown:
            problems.append(
                f"field {WALLET_CODE_FIELD} {fields.get(WALLET_CODE_FIELD)!r}, the code shown "
                f"was {shown!r}"
            )
        present = [f for f in NO_CARD_FIELDS if f in fields]
        if present:
            problems.append(f"a QR sale carries card field(s) {', '.join(present)}")
    if sale.entry_mode != payment.entry_mode:
        problems.append(f"the terminal reports entry mode {sale.entry_mode!r}")
    with reporting.action("compare the 0200 with what the rig presented", problems=problems):
        assert not problems, "; ".join(problems)


# --- refusals ----------------------------------------------------------------------------


@then(
    phrase(
        'a {mode:SaleEntryMode} sale is refused with code "{code:Code}" and nothing reaches '
        "the host"
    )
)
def entry_mode_sale_refused(terminal: Terminal, hil_rig: Rig, mode: str, code: str) -> None:
    """A sale with this entry mode attempted now is refused with this documented code
    before anything is sent (counted at the host)."""
    if code not in SALE_REFUSAL_CODES | INSTRUMENT_REFUSAL_CODES:
        raise StepValueError(f"{code} is not a documented refusal of payment.sale")
    expect_sale_refused(
        terminal, hil_rig, PROBE_AMOUNT, code, entry_mode=mode, present_ms=REFUSAL_PRESENT_MS
    )
