"""ISO/IEC 7813 tracks: building, LRC, decoding, bad LRC and partial swipes."""

from __future__ import annotations

import pytest

from hil.cards.track import (
    TrackError,
    build_track1,
    build_track2,
    corrupt_lrc,
    decode_track1,
    decode_track2,
    lrc1,
    lrc2,
    parity_bit,
    partial,
)

PAN = "4761739001010069"


def test_track2_layout_and_lrc() -> None:
    track = build_track2(PAN, "3012", "101", "0000000")
    assert track[:-1] == f";{PAN}=30121010000000?"
    # LRC = XOR of the 4-bit codes (char - 0x30) of ';' .. '?' inclusive
    value = 0
    for char in track[:-1]:
        value ^= ord(char) - 0x30
    assert track[-1] == chr(0x30 + value) == lrc2(track[:-1])


def test_track1_layout_and_lrc() -> None:
    track = build_track1(PAN, "TEST/STRIPE ONLY", "3012", "101", "0000000")
    assert track[:-1] == f"%B{PAN}^TEST/STRIPE ONLY^30121010000000?"
    value = 0
    for char in track[:-1]:
        value ^= ord(char) - 0x20
    assert track[-1] == chr(0x20 + value) == lrc1(track[:-1])


def test_known_lrc_vector() -> None:
    # ';1234=?' -> B^1^2^3^4^D^F = 0x0 ... computed by hand: 0xB^0x1=0xA, ^0x2=0x8,
    # ^0x3=0xB, ^0x4=0xF, ^0xD=0x2, ^0xF=0xD
    assert lrc2(";1234=?") == chr(0x30 + 0xD)


def test_parity_bits_are_odd() -> None:
    assert parity_bit(0b0000, 4) == 1
    assert parity_bit(0b0001, 4) == 0
    assert parity_bit(0b111111, 6) == 1


def test_decode_round_trip() -> None:
    t1 = decode_track1(build_track1(PAN, "TEST/STRIPE ONLY", "3012", "101", "0000000"))
    t2 = decode_track2(build_track2(PAN, "3012", "101", "0000000"))
    assert (t1.pan, t1.expiry, t1.service_code, t1.name) == (PAN, "3012", "101", "TEST/STRIPE ONLY")
    assert (t2.pan, t2.expiry, t2.service_code) == (PAN, "3012", "101")


def test_bad_lrc_is_detected() -> None:
    for build, decode in (
        (lambda: build_track2(PAN, "3012", "101"), decode_track2),
        (lambda: build_track1(PAN, "A/B", "3012", "101"), decode_track1),
    ):
        bad = corrupt_lrc(build())
        with pytest.raises(TrackError) as info:
            decode(bad)
        assert info.value.kind == "lrc"
        assert PAN not in str(info.value)  # errors never carry track data


def test_partial_swipe_is_detected() -> None:
    cut = partial(build_track2(PAN, "3012", "101"))
    assert "?" not in cut
    with pytest.raises(TrackError) as info:
        decode_track2(cut)
    assert info.value.kind == "partial"


@pytest.mark.parametrize("raw", ["", "garbage", ";?0", "%A123^X^3012101?x", ";12=?x", "%B12^A^?x"])
def test_garbage_never_crashes(raw: str) -> None:
    decoder = decode_track1 if raw.startswith("%") else decode_track2
    with pytest.raises(TrackError):
        decoder(raw)


def test_lengths_are_bounded() -> None:
    with pytest.raises(ValueError, match="more than 40"):
        build_track2(PAN, "3012", "101", "0" * 30)
