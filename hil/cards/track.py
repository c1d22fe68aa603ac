"""Magnetic stripe tracks: ISO/IEC 7813 track 1 (format B) and track 2, with LRC.

Track text here is what the head decodes, sentinels included, followed by the LRC
character: track 1 ``%B<PAN>^<NAME>^<YYMM><SVC><DD>?<LRC>`` in the 6-bit alphabet
(ASCII 0x20-0x5F, code = char - 0x20), track 2 ``;<PAN>=<YYMM><SVC><DD>?<LRC>`` in
the 4-bit alphabet (``0-9 : ; < = > ?``, code = char - 0x30). The LRC is the XOR of
the codes of every character from the start sentinel through the end sentinel
(ISO/IEC 7811-2 and -4); on the stripe each character also carries an odd parity
bit, which a head checks per character and which this text form leaves implicit.

Track data is cardholder data: callers must never log or attach it.
"""

from __future__ import annotations

from dataclasses import dataclass

TRACK1_MAX = 79
TRACK2_MAX = 40
TRACK1_START, TRACK1_END, TRACK1_SEP = "%", "?", "^"
TRACK2_START, TRACK2_END, TRACK2_SEP = ";", "?", "="
NAME_CHARS = frozenset(" ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/.-'")


class TrackError(ValueError):
    """A track that does not decode. ``kind``: ``lrc``, ``partial`` or ``format``."""

    def __init__(self, track: int, kind: str, reason: str) -> None:
        super().__init__(f"track {track}: {reason}")
        self.track = track
        self.kind = kind


def _code1(char: str) -> int:
    code = ord(char) - 0x20
    if not 0 <= code < 64:
        raise ValueError(f"character {char!r} is not in the track 1 alphabet")
    return code


def _code2(char: str) -> int:
    code = ord(char) - 0x30
    if not 0 <= code < 16:
        raise ValueError(f"character {char!r} is not in the track 2 alphabet")
    return code


def lrc1(text: str) -> str:
    """The LRC character of track 1 text (start sentinel through end sentinel)."""
    value = 0
    for char in text:
        value ^= _code1(char)
    return chr(value + 0x20)


def lrc2(text: str) -> str:
    value = 0
    for char in text:
        value ^= _code2(char)
    return chr(value + 0x30)


def parity_bit(code: int, bits: int) -> int:
    """The odd-parity bit a head writes after a ``bits``-bit character code."""
    ones = bin(code & ((1 << bits) - 1)).count("1")
    return 0 if ones % 2 else 1


def build_track1(
    pan: str, name: str, expiry: str, service_code: str, discretionary: str = ""
) -> str:
    body = f"{TRACK1_START}B{pan}{TRACK1_SEP}{name}{TRACK1_SEP}{expiry}{service_code}"
    text = f"{body}{discretionary}{TRACK1_END}"
    if len(text) + 1 > TRACK1_MAX:
        raise ValueError(f"track 1 would be {len(text) + 1} characters, more than {TRACK1_MAX}")
    return text + lrc1(text)


def build_track2(pan: str, expiry: str, service_code: str, discretionary: str = "") -> str:
    text = f"{TRACK2_START}{pan}{TRACK2_SEP}{expiry}{service_code}{discretionary}{TRACK2_END}"
    if len(text) + 1 > TRACK2_MAX:
        raise ValueError(f"track 2 would be {len(text) + 1} characters, more than {TRACK2_MAX}")
    return text + lrc2(text)


def corrupt_lrc(track: str) -> str:
    """The same track with a wrong LRC character (a bad read of the last character)."""
    last = track[-1]
    if track.startswith(TRACK2_START):
        return track[:-1] + chr(((ord(last) - 0x30) ^ 0x1) + 0x30)
    return track[:-1] + chr(((ord(last) - 0x20) ^ 0x1) + 0x20)


def partial(track: str, keep: float = 0.6) -> str:
    """A swipe that stopped early: the leading part only, no end sentinel, no LRC."""
    cut = max(2, int(len(track) * keep))
    return track[: min(cut, track.index("?"))]


@dataclass(frozen=True)
class TrackData:
    """What a head decoded. Holds cardholder data: never log it."""

    pan: str
    expiry: str
    service_code: str
    name: str = ""
    discretionary: str = ""


def _split_checked(raw: str, track: int, start: str, lrc_of: object) -> str:
    if not raw or not raw.startswith(start):
        raise TrackError(track, "format", "no start sentinel")
    end = raw.find("?")
    if end < 0:
        raise TrackError(track, "partial", "no end sentinel (partial swipe)")
    if end + 2 != len(raw):
        raise TrackError(track, "partial", "LRC missing after the end sentinel")
    text, lrc = raw[: end + 1], raw[end + 1]
    try:
        expected = lrc1(text) if track == 1 else lrc2(text)
    except ValueError as e:
        raise TrackError(track, "format", str(e)) from None
    if lrc != expected:
        raise TrackError(track, "lrc", "LRC mismatch")
    return text[1:-1]


def _check_pan(pan: str, track: int) -> None:
    if not pan.isdigit() or not 12 <= len(pan) <= 19:
        raise TrackError(track, "format", "primary account number field is malformed")


def decode_track1(raw: str) -> TrackData:
    body = _split_checked(raw, 1, TRACK1_START, lrc1)
    if not body.startswith("B"):
        raise TrackError(1, "format", "format code is not B")
    parts = body[1:].split(TRACK1_SEP)
    if len(parts) != 3:
        raise TrackError(1, "format", "expected 2 field separators")
    pan, name, rest = parts
    _check_pan(pan, 1)
    if len(rest) < 7 or not rest[:7].isdigit():
        raise TrackError(1, "format", "expiry or service code malformed")
    return TrackData(pan, rest[:4], rest[4:7], name.strip(), rest[7:])


def decode_track2(raw: str) -> TrackData:
    body = _split_checked(raw, 2, TRACK2_START, lrc2)
    pan, sep, rest = body.partition(TRACK2_SEP)
    if not sep:
        raise TrackError(2, "format", "no field separator")
    _check_pan(pan, 2)
    if len(rest) < 7 or not rest[:7].isdigit():
        raise TrackError(2, "format", "expiry or service code malformed")
    return TrackData(pan, rest[:4], rest[4:7], "", rest[7:])
