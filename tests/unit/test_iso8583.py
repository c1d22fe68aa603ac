"""The ISO 8583 dialect (hil.host.iso8583): round trips, a captured-style 0200, errors."""

from __future__ import annotations

import struct

import pytest

from hil.host.iso8583 import (
    Iso8583Error,
    build_tlv,
    decode,
    decode_body,
    encode,
    parse_tlv,
    response_header,
)
from hil.host.records import masked_fields
from hil.host.simulator import classify, response_mti
from hil.masking import contains_full_pan

# A chip sale as the simulated terminal sends it (TID T0000001, trace 000123,
# 12.34 CNY, test card 6212345678901232, 2024-11-18 14:30:05), byte for byte.
CAPTURED_0200 = bytes.fromhex(
    "00F160000000006022000000000200703C068020C08210166212345678901232"
    "0000000000000012340001231430051118291200510001003462123456789012"
    "32D2912220000000000054303030303030313839383331303035383132303030"
    "3131353601339F26088A1C2E3F4B5D6E7F9F2701809F101007010103A0000001"
    "0A010000000000009F37041A2B3C4D9F3602002A950500000000009A03241118"
    "9C01009F02060000000012345F2A02015682027C009F1A0201569F3303E0F9C8"
    "8408A0000003330101015A08621234567890123257116212345678901232D291"
    "222000000000005F3401010011022000001000"
)
PAN = "6212345678901232"


def test_captured_0200_decodes_field_by_field() -> None:
    frame = decode(CAPTURED_0200)
    assert frame.header == "6000000000602200000000"
    assert frame.mti == "0200"
    assert frame.fields["2"] == PAN
    assert frame.fields["3"] == "000000"
    assert frame.fields["4"] == "000000001234"
    assert frame.fields["11"] == "000123"
    assert (frame.fields["12"], frame.fields["13"]) == ("143005", "1118")
    assert frame.fields["22"] == "051"  # odd-length BCD, left-padded on the wire
    assert frame.fields["35"] == "6212345678901232D29122200000000000"
    assert (frame.fields["41"], frame.fields["42"]) == ("T0000001", "898310058120001")
    assert frame.fields["60"] == "22000001000"
    tags = dict(parse_tlv(bytes.fromhex(frame.fields["55"])))
    assert tags["9F02"] == bytes.fromhex("000000001234")
    assert tags["5A"].hex() == PAN
    assert tags["84"].hex().upper() == "A000000333010101"
    assert classify(frame) == "sale"


def test_captured_0200_round_trips_byte_for_byte() -> None:
    frame = decode(CAPTURED_0200)
    assert encode(frame.mti, frame.fields, header=frame.header) == CAPTURED_0200


def test_every_message_kind_round_trips() -> None:
    messages = {
        "0800": {"11": "000001", "41": "T0000001", "42": "898310058120001",
                 "60": "00000001001", "63": "SIM8A0000001"},
        "0810": {"11": "000001", "39": "97", "41": "T0000001", "60": "00000001001",
                 "62": "0000000512AB"},
        "0400": {"3": "000000", "4": "000000000500", "11": "000007", "39": "98",
                 "41": "T0000001", "61": "0000010000071118"},
        "0500": {"11": "000009", "41": "T0000001", "48": "000000001734002"},
        "0210": {"11": "000007", "37": "000000000001", "38": "A00007", "39": "00"},
    }  # fmt: skip
    for mti, fields in messages.items():
        data = encode(mti, fields)
        assert struct.unpack(">H", data[:2])[0] == len(data) - 2
        frame = decode(data)
        assert (frame.mti, frame.fields) == (mti, fields)


def test_secondary_bitmap_is_added_when_needed() -> None:
    frame = decode(encode("0800", {"11": "000001", "64": "0011223344556677"}))
    assert frame.fields == {"11": "000001", "64": "0011223344556677"}


@pytest.mark.parametrize(
    ("mti", "fields", "words"),
    [
        ("0200", {"41": "T01"}, "field 41 (Card acceptor terminal id)"),
        ("0200", {"4": "12AB"}, "field 4"),
        ("02000", {}, "field t"),
    ],
)
def test_encode_errors_name_the_field(mti: str, fields: dict[str, str], words: str) -> None:
    with pytest.raises(Iso8583Error, match="cannot encode ISO 8583 message") as info:
        encode(mti, fields)
    assert words in str(info.value)


def test_decode_rejects_garbage_with_one_line() -> None:
    with pytest.raises(Iso8583Error, match="length prefix says"):
        decode(CAPTURED_0200[:-3])
    with pytest.raises(Iso8583Error, match="shorter than header"):
        decode_body(b"\x60\x00")
    with pytest.raises(Iso8583Error, match="field"):
        decode_body(b"\x60" + b"\xee" * 40)
    truncated = CAPTURED_0200[2:-10]
    with pytest.raises(Iso8583Error) as info:
        decode_body(truncated)
    assert "\n" not in str(info.value)


def test_response_header_swaps_tpdu_addresses() -> None:
    assert response_header("6012340000" + "602200000000") == "6000001234602200000000"
    assert [response_mti(m) for m in ("0800", "0200", "0400", "0500")] == [
        "0810", "0210", "0410", "0510",
    ]  # fmt: skip


def test_tlv_round_trip_and_long_lengths() -> None:
    items = [("9F26", b"\x01" * 8), ("5A", bytes.fromhex(PAN)), ("DF01", b"\xaa" * 200)]
    data = build_tlv(items)
    assert parse_tlv(data) == [(t, v) for t, v in items]
    with pytest.raises(Iso8583Error, match="9F26 says 8 bytes"):
        parse_tlv(bytes.fromhex("9F260801"))


def test_records_never_hold_card_data_in_clear() -> None:
    frame = decode(CAPTURED_0200)
    shown = masked_fields(frame.fields)
    text = repr(shown)
    assert not contains_full_pan(text)
    assert shown["2"] == "621234******1232"
    assert "D2912" not in text  # track 2 withheld, not merely masked
    tags = {item["tag"]: item["value"] for item in shown["55"]}
    assert tags["5A"] == "621234******1232"
    assert tags["57"].startswith("<tag 57 withheld")
    assert tags["9F02"] == "000000001234"
    with_pin = masked_fields({"52": "0123456789ABCDEF", "45": "B6212345678901232^TEST"})
    assert with_pin == {
        "45": "<track data (field 45) withheld, 22 digits>",
        "52": "<PIN block withheld>",
    }
    assert "withheld" in str(masked_fields({"55": "5A08621234"}))  # unparseable: all withheld
