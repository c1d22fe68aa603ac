"""The sim terminal's EMV kernel and PC/SC transmit, against the virtual card, no pcscd.

``PcscCard`` talks to a stand-in for pyscard's ``scard`` module that hands every APDU
to ``hil.cards.emv.EmvCard``, so the T=0 rules (61xx, 6Cxx) and the read flow run as
they do on the sim rig, without a reader.
"""

from __future__ import annotations

from typing import Any

import pytest

from hil.cards.emv import EmvCard
from hil.cards.profile import DEFAULT_PROFILES, CardProfile, ProfileLibrary
from hil.sim import pcsc
from hil.sim.emv_kernel import ENTRY_CHIP, ENTRY_CONTACTLESS, EmvKernel, ReadFailure
from hil.sim.pcsc import CardIoError, PcscCard

LIB = ProfileLibrary(DEFAULT_PROFILES)
SUCCESS = 0


class CardBehindScard:
    """The few ``smartcard.scard`` calls ``PcscCard.transmit`` makes, served by a card."""

    SCARD_S_SUCCESS = SUCCESS

    def __init__(self, card: EmvCard | None) -> None:
        self.card = card

    def SCardTransmit(self, handle: Any, protocol: Any, apdu: list[int]) -> tuple[int, list[int]]:
        if self.card is None:
            return 0x80100069, []  # SCARD_W_REMOVED_CARD
        return SUCCESS, list(self.card.process(bytes(apdu)))

    def SCardGetErrorMessage(self, result: int) -> str:
        return f"error {result:#x}"


def connected(monkeypatch: pytest.MonkeyPatch, profile: CardProfile | None) -> PcscCard:
    card = None
    if profile is not None:
        card = EmvCard(profile)
        card.power_on()
    monkeypatch.setattr(pcsc, "_scard", lambda: CardBehindScard(card))
    return PcscCard(context=None, reader="Virtual Reader 0")


def test_chip_read_reports_the_masked_pan_and_the_application(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = LIB.get("visa-credit")
    result = EmvKernel(connected(monkeypatch, profile), ENTRY_CHIP).run()
    assert result["pan"] == profile.masked_pan
    assert result["aid"] == profile.preferred_application().aid
    assert result["entry_mode"] == ENTRY_CHIP
    assert result["outcome"] in ("online", "approved")
    assert profile.pan not in repr(result)


def test_t0_card_is_read_through_get_response(monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = LIB.get("mastercard-debit")
    assert t0.transport == "t0"
    t1 = t0.model_copy(update={"transport": "t1"})
    reads = []
    for profile in (t0, t1):
        card = connected(monkeypatch, profile)
        reads.append((EmvKernel(card, ENTRY_CONTACTLESS).run(), card.exchanges))
    (over_t0, t0_exchanges), (over_t1, t1_exchanges) = reads
    assert over_t0["pan"] == over_t1["pan"] == t0.masked_pan
    assert over_t0["aid"] == over_t1["aid"] == "A0000000041010"
    # Every command answered with data took a GET RESPONSE (or an Le resend) on T=0.
    assert t0_exchanges == 2 * t1_exchanges


@pytest.mark.parametrize(
    ("profile", "code"),
    [("no-payment-app", "E_CARD_NO_APP"), ("expired", "E_CARD_EXPIRED")],
)
def test_read_failures_carry_their_code(
    monkeypatch: pytest.MonkeyPatch, profile: str, code: str
) -> None:
    with pytest.raises(ReadFailure) as failure:
        EmvKernel(connected(monkeypatch, LIB.get(profile)), ENTRY_CHIP).run()
    assert failure.value.code == code
    assert failure.value.known["entry_mode"] == ENTRY_CHIP


def test_a_card_that_stops_answering_is_an_io_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CardIoError):
        EmvKernel(connected(monkeypatch, None), ENTRY_CHIP).run()
