"""Sales with a presented instrument: the sim's 0200 per entry mode, its interface and
argument rules, the adapter's wire form, and the rig's comparison of the host's masked
0200 with the card it presented (which must fail on every mismatch)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.contract.payments import (
    APPROVED_LINES,
    INTERFACE_KEY,
    NO_CARD_FIELDS,
    POS_ENTRY_MODE,
    PROMPT_WORDS,
    amount_text,
    declined_lines,
    prompt_lines,
)
from hil.host.records import masked_fields
from hil.masking import contains_full_pan, mask_pan
from hil.protocol.endpoint import CommandFailed
from hil.sim import payments as sim_payments
from hil.sim.comm import instrument_sale_fields
from hil.sim.emv_kernel import OnlineData
from hil.sim.payments import (
    SaleCredential,
    interface_refusal,
    present_timeout_ms,
    sale_entry_mode,
)
from hil.steps.payments import card_mismatches
from tests.unit.test_terminal_testport import SALE_FAILED, adapter

LIB = ProfileLibrary(DEFAULT_PROFILES)
CONFIG = {"terminal_id": "T0000001", "merchant_id": "898310058120001"}
NOW = datetime(2026, 11, 30, 12, 34, 56)
AMOUNT = 1234


def card_data(pan: str, amount: int = AMOUNT) -> OnlineData:
    return OnlineData(
        pan=pan,
        expiry="3012",
        service_code="201",
        pan_sequence="001",
        icc=(
            ("9F26", bytes.fromhex("1122334455667788")),
            ("9F27", b"\x80"),
            ("9F36", b"\x00\x05"),
            ("9F02", bytes.fromhex(f"{amount:012d}")),
            ("82", b"\x18\x00"),
            ("95", bytes(5)),
            ("9F37", b"\x01\x02\x03\x04"),
            ("5A", bytes.fromhex(pan)),
        ),
    )


def host_view(credential: SaleCredential, amount: int = AMOUNT) -> dict[str, Any]:
    """The 0200's fields as the host records them (masked at the door)."""
    fields = instrument_sale_fields(CONFIG, "000042", "000001", amount, NOW, credential)
    return masked_fields(fields)


# --- the sim's 0200 ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["chip", "contactless"])
def test_a_card_sale_carries_its_entry_mode_the_card_and_the_chip_data(mode: str) -> None:
    profile = LIB.get("visa-credit")
    fields = instrument_sale_fields(
        CONFIG, "000042", "000001", AMOUNT, NOW, SaleCredential(mode, card=card_data(profile.pan))
    )
    assert fields["22"] == POS_ENTRY_MODE[mode] == sim_payments.POS_ENTRY_MODES[mode]
    assert fields["4"] == "000000001234" and fields["2"] == profile.pan
    assert fields["55"].startswith("9F2608") and fields["23"] == "001"
    assert "48" not in fields
    # what the host records of it holds no full PAN, and the rig finds nothing amiss
    recorded = host_view(SaleCredential(mode, card=card_data(profile.pan)))
    assert not contains_full_pan(repr(recorded))
    assert card_mismatches(recorded, profile, AMOUNT, mode) == []


def test_a_qr_sale_carries_the_wallet_code_and_no_card_data() -> None:
    credential = SaleCredential("qr", wallet_code="134567890123456789", wallet="wechat")
    fields = instrument_sale_fields(CONFIG, "000042", "000001", AMOUNT, NOW, credential)
    assert fields["22"] == POS_ENTRY_MODE["qr"] == "031"
    assert fields["48"] == "134567890123456789"
    assert not set(NO_CARD_FIELDS) & set(fields)


def test_the_credential_never_shows_the_pan() -> None:
    pan = LIB.get("visa-credit").pan
    credential = SaleCredential("chip", card=card_data(pan))
    assert pan not in repr(credential) and pan not in repr(credential.card)
    assert credential.masked_card == mask_pan(pan)


# --- the rig's comparison fails on every mismatch ------------------------------------------


def test_another_card_is_caught_by_its_bin_and_last_four() -> None:
    presented = LIB.get("visa-credit")
    other = LIB.get("mastercard-debit")
    recorded = host_view(SaleCredential("chip", card=card_data(other.pan)))
    problems = card_mismatches(recorded, presented, AMOUNT, "chip")
    assert any(p.startswith("field 2 is") for p in problems)
    assert any(p.startswith("field 55 tag 5A") for p in problems)
    assert not contains_full_pan(" ".join(problems))


def test_missing_chip_data_and_a_wrong_authorised_amount_are_caught() -> None:
    profile = LIB.get("visa-credit")
    recorded = host_view(SaleCredential("chip", card=card_data(profile.pan, amount=999)))
    assert any("9F02" in p for p in card_mismatches(recorded, profile, AMOUNT, "chip"))
    del recorded["55"]
    assert any("field 55" in p for p in card_mismatches(recorded, profile, AMOUNT, "chip"))
    thin = card_data(profile.pan)
    partial = SaleCredential("chip", card=OnlineData(**{**thin.__dict__, "icc": thin.icc[2:]}))
    problems = card_mismatches(host_view(partial), profile, AMOUNT, "chip")
    assert any("lacks tag(s) 9F26, 9F27" in p for p in problems)


# --- arguments and interfaces ----------------------------------------------------------------


def test_each_entry_mode_is_refused_by_its_own_interface_switch() -> None:
    for mode, key in INTERFACE_KEY.items():
        assert interface_refusal(mode, {key: True}) is None
        refusal = interface_refusal(mode, {key: False})
        assert refusal is not None and refusal[0] == "E_PAY_INTERFACE_DISABLED"
        assert key in refusal[1]
        others = {k: False for k in INTERFACE_KEY.values() if k != key}
        assert interface_refusal(mode, {key: True, **others}) is None
    # no entry mode: the built-in test card is a chip card
    assert interface_refusal(None, {"interfaces.card": False}) is not None


def test_sale_arguments_are_checked() -> None:
    assert sale_entry_mode({}) is None
    assert sale_entry_mode({"entry_mode": "qr"}) == "qr"
    with pytest.raises(CommandFailed, match="entry_mode must be one of"):
        sale_entry_mode({"entry_mode": "swipe"})
    assert present_timeout_ms({}) == 30_000
    for bad in (0, 120_001, True, "5"):
        with pytest.raises(CommandFailed):
            present_timeout_ms({"timeout_ms": bad})


def test_screens_follow_the_documented_text() -> None:
    assert amount_text(1) == "0.01" and amount_text(999_999_999_999) == "9999999999.99"
    for mode, words in PROMPT_WORDS.items():
        assert sim_payments.prompt_lines(mode, 1234) == list(prompt_lines(mode, 1234))
        assert prompt_lines(mode, 1234) == (*words, "12.34")
    assert APPROVED_LINES == ("交易成功", "Approved")
    assert declined_lines("51") == ("交易失败", "Declined 51")


# --- the adapter --------------------------------------------------------------------------------


def test_the_adapter_sends_the_entry_mode_and_reads_it_back() -> None:
    answer = {**SALE_FAILED, "entry_mode": "qr", "wallet": "alipay", "card": None}
    port, console = adapter(payment__sale=answer)
    sale = port.sale(500, entry_mode="qr", present_ms=2000, timeout=30.0)
    assert console.requests == [
        ("payment.sale", {"amount": 500, "entry_mode": "qr", "timeout_ms": 2000}, 30.0)
    ]
    assert (sale.entry_mode, sale.wallet, sale.card) == ("qr", "alipay", None)


# --- the reader hands a sale its card (no PC/SC: reads are reported as the kernel would) ----


def sale_reader() -> tuple[Any, list[str]]:
    from hil.sim.cardreader import CardReader
    from hil.sim.channels import parse_channels
    from hil.sim.display import Display

    screens: list[str] = []
    reader = CardReader(
        channels=parse_channels("pcsc=Chip 0,pcsc_cl=Contactless 1"),
        display=Display(lambda screen: screens.append(screen.screen)),
        emit=lambda name, data: None,
        log_entry=lambda level, code, message: None,
        show_idle=lambda: None,
        is_idle=lambda: True,
        reader_powered=lambda: True,
        tampered=lambda: False,
        time_scale=0.01,
    )
    return reader, screens


def read_result(entry: str, ok: bool = True, code: str = "OK") -> dict[str, Any]:
    return {"entry_mode": entry, "reader": entry, "ok": ok, "code": code, "message": code}


def test_a_sale_takes_the_next_read_of_its_own_reader_only() -> None:
    import threading

    reader, _ = sale_reader()
    pan = LIB.get("visa-credit").pan

    def present() -> None:
        # a swipe-like read of another reader first: not the sale's card
        reader._finish(read_result("contactless"), wait_removal=False, online=card_data(pan))
        reader._finish(read_result("chip"), wait_removal=True, online=card_data(pan))

    result, online = reader.read_for_sale(
        "chip", AMOUNT, 5000, lambda: threading.Thread(target=present).start()
    )
    assert result["entry_mode"] == "chip" and online.pan == pan


def test_a_sale_without_a_card_times_out_and_a_bad_read_refuses_it() -> None:
    reader, _ = sale_reader()
    started = datetime.now()
    with pytest.raises(CommandFailed) as timeout:
        reader.read_for_sale("chip", AMOUNT, 100, lambda: None)
    assert timeout.value.code == "E_TIMEOUT"
    assert (datetime.now() - started).total_seconds() >= 0.1
    with pytest.raises(CommandFailed) as expired:
        reader.read_for_sale(
            "contactless",
            AMOUNT,
            5000,
            lambda: reader._finish(
                read_result("contactless", ok=False, code="E_CARD_EXPIRED"), wait_removal=False
            ),
        )
    assert expired.value.code == "E_CARD_EXPIRED"


def test_a_sale_on_a_reader_the_terminal_lacks_is_refused() -> None:
    from hil.sim.cardreader import CardReader
    from hil.sim.channels import parse_channels
    from hil.sim.display import Display

    reader = CardReader(
        channels=parse_channels("pcsc=Chip 0"),
        display=Display(),
        emit=lambda name, data: None,
        log_entry=lambda level, code, message: None,
        show_idle=lambda: None,
        is_idle=lambda: True,
        reader_powered=lambda: True,
        tampered=lambda: False,
        time_scale=0.01,
    )
    with pytest.raises(CommandFailed) as absent:
        reader.read_for_sale("contactless", AMOUNT, 100, lambda: None)
    assert absent.value.code == "E_READER_FAULT"
