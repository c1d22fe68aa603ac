"""APDU trace masking: sensitive tags starred, records withheld, PIN blocks never written."""

from __future__ import annotations

from hil.cards import tlv
from hil.cards.emv import pin_block
from hil.cards.trace import ApduTrace, mask_command, mask_response
from hil.masking import contains_full_pan

PAN = "4761739001010010"


def test_sensitive_tags_are_starred_wherever_they_appear() -> None:
    body = tlv.encode(
        0x77,
        tlv.encode(0x5A, bytes.fromhex(PAN))
        + tlv.encode(0x57, bytes.fromhex(PAN + "D3012201000000"))
        + tlv.encode(0x9F1F, b"123456")
        + tlv.encode(0x9F6B, b"\x47\x61")
        + tlv.encode(0x9F36, b"\x00\x07"),
    )
    shown = mask_response(bytes.fromhex("80A8000000"), body + b"\x90\x00")
    assert PAN not in shown and "4761" not in shown
    assert "5A08" + "**" * 8 in shown
    assert "9F36020007" in shown  # harmless data stays readable
    assert shown.endswith("9000")


def test_read_record_bodies_are_withheld_but_directory_records_shown() -> None:
    record = tlv.encode(0x70, tlv.encode(0x5F24, b"\x30\x12\x31")) + b"\x90\x00"
    assert (
        mask_response(bytes.fromhex("00B2011400"), record)
        == "<8 bytes of record data withheld> 9000"
    )
    directory = tlv.encode(0x70, tlv.encode(0x61, tlv.encode(0x4F, b"\xa0\x00\x00\x00\x03")))
    assert "A000000003" in mask_response(bytes.fromhex("00B2010C00"), directory + b"\x90\x00")


def test_verify_data_is_never_written() -> None:
    apdu = bytes.fromhex("0020008008") + pin_block("1234")
    shown = mask_command(apdu)
    assert shown == "00200080 <PIN block withheld>"
    trace = ApduTrace()
    trace.exchange(apdu, b"\x90\x00", 0.1)
    text = trace.take()
    assert "241234" not in text.replace(" ", "") and "VERIFY" in text


def test_trace_text_never_holds_a_full_pan() -> None:
    trace = ApduTrace()
    trace.note(f"card {PAN} inserted")
    trace.exchange(
        bytes.fromhex("00A4040007A0000000031010"),
        tlv.encode(0x5A, bytes.fromhex(PAN)) + b"\x90\x00",
        0.2,
    )
    text = trace.take()
    assert not contains_full_pan(text)
    assert trace.take() == ""  # take() starts a new trace
