"""The virtual EMV card as a state machine: APDU in, R-APDU out, no I/O."""

from __future__ import annotations

import pytest

from hil.cards import tlv
from hil.cards.emv import CDOL1, CDOL2, MUTE_ATR, PPSE, PSE, EmvCard, pin_block
from hil.cards.profile import DEFAULT_PROFILES, CardProfile, ProfileLibrary

LIB = ProfileLibrary(DEFAULT_PROFILES)


def card(name: str = "visa-credit", **changes: object) -> EmvCard:
    profile = LIB.get(name)
    if changes:
        profile = profile.model_copy(update=changes)
    c = EmvCard(profile)
    c.power_on()
    return c


def sw(response: bytes) -> int:
    return (response[-2] << 8) | response[-1]


def select(c: EmvCard, name: bytes) -> bytes:
    return c.process(bytes([0, 0xA4, 4, 0, len(name)]) + name + b"\x00")


def gpo(c: EmvCard, profile: CardProfile, extra: int = 0) -> bytes:
    app = profile.preferred_application()
    size = sum(n for _, n in tlv.parse_dol(bytes.fromhex(app.pdol))) + extra
    data = tlv.encode(0x83, bytes(size))
    return c.process(bytes([0x80, 0xA8, 0, 0, len(data)]) + data + b"\x00")


def gen_ac(c: EmvCard, p1: int, second: bool = False) -> bytes:
    size = sum(n for _, n in tlv.parse_dol(CDOL2 if second else CDOL1))
    return c.process(bytes([0x80, 0xAE, p1, 0, size]) + bytes(size) + b"\x00")


def ready(name: str = "visa-credit", **changes: object) -> EmvCard:
    c = card(name, **changes)
    app = c.profile.preferred_application()
    assert sw(select(c, app.aid_bytes)) == 0x9000
    assert sw(gpo(c, c.profile)) == 0x9000
    return c


def test_select_pse_and_read_directory() -> None:
    c = card()
    fci = select(c, PSE)
    assert sw(fci) == 0x9000 and tlv.find(fci[:-2], 0x88) == b"\x01"
    record = c.process(bytes.fromhex("00B2010C00"))
    assert sw(record) == 0x9000
    assert tlv.find(record[:-2], 0x4F) == bytes.fromhex("A0000000031010")
    assert tlv.find(record[:-2], 0x50) == b"VISA CREDIT"
    assert sw(c.process(bytes.fromhex("00B2020C00"))) == 0x6A83


def test_select_ppse_lists_every_application_with_priority() -> None:
    c = card("unionpay-debit")
    fci = select(c, PPSE)
    entries = [t for t in tlv.walk(fci[:-2]) if t.tag == 0x61]
    assert [tlv.find(e.value, 0x4F) for e in entries] == [
        bytes.fromhex("A000000333010101"),
        bytes.fromhex("A000000333010102"),
    ]
    assert [tlv.find(e.value, 0x87) for e in entries] == [b"\x01", b"\x02"]


def test_select_aid_returns_fci_with_pdol() -> None:
    c = card()
    fci = select(c, bytes.fromhex("A0000000031010"))
    assert sw(fci) == 0x9000
    assert tlv.find(fci[:-2], 0x9F38) == bytes.fromhex("9F66049F02069F1A025F2A029A039C019F3704")
    assert sw(select(c, bytes.fromhex("A0000000041010"))) == 0x6A82


def test_no_payment_app_answers_6a82_everywhere() -> None:
    c = card("no-payment-app")
    for name in (PSE, PPSE, bytes.fromhex("A0000000031010")):
        assert sw(select(c, name)) == 0x6A82


def test_gpo_checks_sequence_and_pdol_length() -> None:
    c = card()
    assert sw(gpo(c, c.profile)) == 0x6985  # nothing selected yet
    select(c, bytes.fromhex("A0000000031010"))
    assert sw(gpo(c, c.profile, extra=1)) == 0x6700
    response = gpo(c, c.profile)
    assert sw(response) == 0x9000
    afl = tlv.find(response[:-2], 0x94)
    assert afl is not None and len(afl) % 4 == 0
    assert sw(gpo(c, c.profile)) == 0x6985  # once per transaction


def test_read_records_per_afl_hold_the_card_data() -> None:
    c = card()
    select(c, bytes.fromhex("A0000000031010"))
    afl = tlv.find(gpo(c, c.profile)[:-2], 0x94)
    assert afl is not None
    data: dict[int, bytes] = {}
    for i in range(0, len(afl), 4):
        for number in range(afl[i + 1], afl[i + 2] + 1):
            record = c.process(bytes([0, 0xB2, number, afl[i] | 4, 0]))
            assert sw(record) == 0x9000
            data.update(tlv.flatten(record[:-2]))
    assert data[0x5A].hex() == c.profile.pan
    assert data[0x5F24].hex()[:4] == c.profile.expiry
    assert data[0x57].hex().upper().startswith(c.profile.pan + "D3012201")
    assert data[0x9F08] == bytes.fromhex("0096")  # the profile's extra record
    assert sw(c.process(bytes.fromhex("00B2091400"))) == 0x6A83
    assert sw(c.process(bytes.fromhex("00B2010800"))) == 0x6A86  # P2 without the SFI bit


@pytest.mark.parametrize(
    ("decision", "requested", "returned"),
    [
        ("online", 0x80, 0x80),
        ("online", 0x40, 0x80),
        ("online", 0x00, 0x00),
        ("approve", 0x40, 0x40),
        ("approve", 0x80, 0x80),  # a TC only answers a TC request
        ("decline", 0x80, 0x00),
        ("decline", 0x40, 0x00),
    ],
)
def test_generate_ac_returns_what_the_rules_allow(
    decision: str, requested: int, returned: int
) -> None:
    c = ready(generate_ac=decision)
    response = gen_ac(c, requested)
    assert sw(response) == 0x9000
    assert tlv.find(response[:-2], 0x9F27) == bytes([returned])
    assert len(tlv.find(response[:-2], 0x9F26) or b"") == 8


def test_atc_increments_per_transaction_and_second_ac() -> None:
    c = ready()
    first = gen_ac(c, 0x80)
    atc1 = int.from_bytes(tlv.find(first[:-2], 0x9F36) or b"", "big")
    second = gen_ac(c, 0x40, second=True)
    assert tlv.find(second[:-2], 0x9F27) == b"\x40"
    assert int.from_bytes(tlv.find(second[:-2], 0x9F36) or b"", "big") == atc1
    assert sw(gen_ac(c, 0x40, second=True)) == 0x6985  # the transaction is over
    c2 = EmvCard(c.profile, c.state)
    c2.power_on()
    select(c2, bytes.fromhex("A0000000031010"))
    gpo(c2, c2.profile)
    again = gen_ac(c2, 0x80)
    assert int.from_bytes(tlv.find(again[:-2], 0x9F36) or b"", "big") == atc1 + 1


def test_generate_ac_checks_length_and_sequence() -> None:
    c = card()
    assert sw(gen_ac(c, 0x80)) == 0x6985
    c = ready()
    assert sw(c.process(bytes([0x80, 0xAE, 0x80, 0, 3, 1, 2, 3, 0]))) == 0x6700
    assert sw(gen_ac(c, 0xC0)) == 0x6A86


def test_verify_offline_pin_and_try_counter() -> None:
    c = ready()
    assert sw(c.process(bytes.fromhex("00200080 08") + pin_block("9999"))) == 0x63C2
    assert sw(c.process(bytes.fromhex("00200080 08") + pin_block("1234"))) == 0x9000
    assert c.state.pin_try_counter == 3
    for left in (2, 1):
        assert sw(c.process(bytes.fromhex("0020008008") + pin_block("0000"))) == 0x63C0 | left
    assert sw(c.process(bytes.fromhex("0020008008") + pin_block("0000"))) == 0x6983
    assert sw(c.process(bytes.fromhex("0020008008") + pin_block("1234"))) == 0x6983
    assert sw(c.process(bytes.fromhex("0020008008") + bytes(8))) == 0x6A80
    assert sw(c.process(bytes.fromhex("0020008808") + pin_block("1234"))) == 0x6A86


def test_get_data_pin_try_counter_and_atc() -> None:
    c = ready("pin-blocked")
    assert c.process(bytes.fromhex("80CA9F1700")) == bytes.fromhex("9F1701009000")
    assert sw(c.process(bytes.fromhex("80CA9F3600"))) == 0x9000
    assert sw(c.process(bytes.fromhex("80CA9F4F00"))) == 0x6A88


def test_t0_card_uses_get_response_and_6cxx() -> None:
    c = card("mastercard-debit")
    answer = select(c, PSE)
    assert answer[0] == 0x61
    length = answer[1]
    assert sw(c.process(bytes([0, 0xC0, 0, 0, length - 1]))) == 0x6C00 | length
    fci = c.process(bytes([0, 0xC0, 0, 0, length]))
    assert sw(fci) == 0x9000 and len(fci) == length + 2
    wrong = c.process(bytes.fromhex("00B2010C00"))
    assert wrong[0] == 0x6C
    record = c.process(bytes([0, 0xB2, 1, 0x0C, wrong[1]]))
    assert sw(record) == 0x9000
    assert sw(c.process(bytes.fromhex("00C0000010"))) == 0x6985  # nothing pending


@pytest.mark.parametrize(
    ("apdu", "expected"),
    [
        ("00", 0x6700),
        ("00A40400", 0x6A82),  # SELECT without a name finds no application
        ("00A4040005A0000000", 0x6700),  # Lc 5, 3 bytes of data
        ("A0A4040000", 0x6E00),
        ("00FF000000", 0x6D00),
        ("00A4000002A00000", 0x6A86),
    ],
)
def test_error_status_words(apdu: str, expected: int) -> None:
    assert sw(card().process(bytes.fromhex(apdu))) == expected


def test_mute_card_has_no_valid_atr() -> None:
    assert card("mute").atr == MUTE_ATR and len(MUTE_ATR) > 33
    assert len(card().atr) <= 33
