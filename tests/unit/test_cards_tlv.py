"""BER-TLV: tags, lengths, nesting, DOLs, and clear errors on garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.cards import tlv


def test_single_and_multi_byte_tags() -> None:
    assert tlv.encode(0x5A, b"\x47\x61") == bytes.fromhex("5A024761")
    assert tlv.encode(0x9F36, b"\x00\x02") == bytes.fromhex("9F36020002")
    assert tlv.encode(0xBF0C, b"") == bytes.fromhex("BF0C00")
    items = tlv.decode(bytes.fromhex("9F360200025A024761"))
    assert [(i.tag, i.value) for i in items] == [(0x9F36, b"\x00\x02"), (0x5A, b"\x47\x61")]


@pytest.mark.parametrize(
    ("length", "encoded"),
    [(0, "00"), (127, "7F"), (128, "8180"), (255, "81FF"), (256, "820100"), (65535, "82FFFF")],
)
def test_length_forms(length: int, encoded: str) -> None:
    assert tlv.encode_length(length) == bytes.fromhex(encoded)
    data = tlv.encode(0x70, bytes(length))
    assert tlv.decode(data)[0].value == bytes(length)


def test_nested_find_and_flatten() -> None:
    fci = tlv.encode(
        0x6F,
        tlv.encode(0x84, b"2PAY.SYS.DDF01")
        + tlv.encode(0xA5, tlv.encode(0xBF0C, tlv.encode(0x61, tlv.encode(0x4F, b"\xa0\x00")))),
    )
    assert tlv.find(fci, 0x4F) == b"\xa0\x00"
    assert tlv.find(fci, 0x5A) is None
    assert tlv.is_constructed(0xBF0C) and tlv.is_constructed(0x6F)
    assert not tlv.is_constructed(0x9F36)
    assert tlv.flatten(fci) == {0x84: b"2PAY.SYS.DDF01", 0x4F: b"\xa0\x00"}


def test_padding_between_objects_is_skipped() -> None:
    assert [i.tag for i in tlv.decode(bytes.fromhex("00 5A0101 FF 9F360100"))] == [0x5A, 0x9F36]


@pytest.mark.parametrize(
    ("hex_data", "words"),
    [
        ("5A05 0102", "announces 5 bytes"),
        ("9F", "truncated"),
        ("5A", "length expected"),
        ("5A84 00000001", "unsupported length form"),
        ("5A82 01", "length bytes truncated"),
    ],
)
def test_garbage_raises_tlv_error_naming_the_offset(hex_data: str, words: str) -> None:
    with pytest.raises(tlv.TlvError, match=words):
        tlv.decode(bytes.fromhex(hex_data.replace(" ", "")))


def test_dol_build_and_split() -> None:
    dol = tlv.parse_dol(bytes.fromhex("9F02069F1A025F2A029A039C019F3704"))
    assert dol == [(0x9F02, 6), (0x9F1A, 2), (0x5F2A, 2), (0x9A, 3), (0x9C, 1), (0x9F37, 4)]
    values = {
        0x9F02: bytes.fromhex("000000001234"),
        0x9F1A: b"\x01\x56",
        0x9F37: b"\x01\x02\x03\x04",
    }
    data = tlv.build_dol(dol, values)
    assert len(data) == 18
    split = tlv.split_dol_data(dol, data)
    assert split[0x9F02] == bytes.fromhex("000000001234")
    assert split[0x5F2A] == b"\x00\x00"  # missing values are zeros
    with pytest.raises(tlv.TlvError, match="DOL asks for 18"):
        tlv.split_dol_data(dol, data[:-1])


def test_dol_cuts_and_pads() -> None:
    # numeric (n) data keeps its rightmost digits, others their leftmost bytes
    assert tlv.build_dol([(0x9F02, 2)], {0x9F02: bytes.fromhex("000000001234")}) == b"\x12\x34"
    assert tlv.build_dol([(0x9F66, 2)], {0x9F66: bytes.fromhex("36000000")}) == b"\x36\x00"
    assert tlv.build_dol([(0x9F37, 4)], {0x9F37: b"\x01"}) == b"\x00\x00\x00\x01"


@given(
    st.lists(
        st.tuples(st.sampled_from([0x5A, 0x57, 0x9F36, 0x5F24, 0x9F1F]), st.binary(max_size=300)),
        max_size=6,
    )
)
def test_round_trip(items: list[tuple[int, bytes]]) -> None:
    data = tlv.encode_many(items)
    assert [(i.tag, i.value) for i in tlv.decode(data)] == items


@given(st.binary(max_size=64))
def test_decode_never_crashes_otherwise(data: bytes) -> None:
    with contextlib.suppress(tlv.TlvError):
        tlv.decode(data)
