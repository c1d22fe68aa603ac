"""BER-TLV as EMV uses it (EMV Book 3, Annex B): tags, lengths, DOLs.

Pure functions over bytes, shared by the virtual card (rig side) and the simulated
terminal. Malformed input raises ``TlvError`` (a ValueError) naming the offset, never
an IndexError from deep inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class TlvError(ValueError):
    """Bytes that are not valid BER-TLV."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def children(self) -> list[Tlv]:
        return decode(self.value) if self.constructed else []


def is_constructed(tag: int) -> bool:
    """Bit 6 of a tag's first byte says 'constructed' (holds more TLVs)."""
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def tag_bytes(tag: int) -> bytes:
    if tag < 0:
        raise TlvError(f"negative tag {tag}")
    length = max(1, (tag.bit_length() + 7) // 8)
    return tag.to_bytes(length, "big")


def encode_length(length: int) -> bytes:
    if length < 0:
        raise TlvError(f"negative length {length}")
    if length < 0x80:
        return bytes([length])
    if length <= 0xFF:
        return bytes([0x81, length])
    if length <= 0xFFFF:
        return bytes([0x82]) + length.to_bytes(2, "big")
    raise TlvError(f"length {length} too long for EMV")


def encode(tag: int, value: bytes) -> bytes:
    return tag_bytes(tag) + encode_length(len(value)) + value


def encode_many(items: Iterable[tuple[int, bytes]]) -> bytes:
    return b"".join(encode(tag, value) for tag, value in items)


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError(f"tag expected at offset {offset}, data ends")
    first = data[offset]
    tag = first
    offset += 1
    if first & 0x1F == 0x1F:  # more tag bytes follow while bit 8 is set
        while True:
            if offset >= len(data):
                raise TlvError(f"tag {tag:X} truncated at offset {offset}")
            byte = data[offset]
            tag = (tag << 8) | byte
            offset += 1
            if not byte & 0x80:
                break
            if tag > 0xFFFFFFFF:
                raise TlvError(f"tag longer than 4 bytes at offset {offset}")
    return tag, offset


def _read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError(f"length expected at offset {offset}, data ends")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    count = first & 0x7F
    if count == 0 or count > 3:
        raise TlvError(f"unsupported length form 0x{first:02X} at offset {offset - 1}")
    if offset + count > len(data):
        raise TlvError(f"length bytes truncated at offset {offset}")
    return int.from_bytes(data[offset : offset + count], "big"), offset + count


def iter_decode(data: bytes) -> Iterator[Tlv]:
    offset = 0
    while offset < len(data):
        # EMV allows 00 and FF padding between TLV objects.
        if data[offset] in (0x00, 0xFF):
            offset += 1
            continue
        tag, offset = _read_tag(data, offset)
        length, offset = _read_length(data, offset)
        end = offset + length
        if end > len(data):
            raise TlvError(
                f"tag {tag:X} announces {length} bytes at offset {offset}, "
                f"only {len(data) - offset} left"
            )
        yield Tlv(tag, bytes(data[offset:end]))
        offset = end


def decode(data: bytes) -> list[Tlv]:
    return list(iter_decode(data))


def walk(data: bytes) -> Iterator[Tlv]:
    """Every TLV, depth first, constructed ones before their children."""
    for item in iter_decode(data):
        yield item
        if item.constructed:
            yield from walk(item.value)


def find(data: bytes, tag: int) -> bytes | None:
    """Value of the first ``tag`` anywhere inside ``data``, or None."""
    for item in walk(data):
        if item.tag == tag:
            return item.value
    return None


def flatten(data: bytes) -> dict[int, bytes]:
    """Primitive tags anywhere inside ``data``; the first occurrence wins."""
    out: dict[int, bytes] = {}
    for item in walk(data):
        if not item.constructed:
            out.setdefault(item.tag, item.value)
    return out


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """A data object list: (tag, length) pairs with no values (PDOL, CDOL1...)."""
    out: list[tuple[int, int]] = []
    offset = 0
    while offset < len(dol):
        tag, offset = _read_tag(dol, offset)
        length, offset = _read_length(dol, offset)
        out.append((tag, length))
    return out


def build_dol(dol: list[tuple[int, int]], values: dict[int, bytes]) -> bytes:
    """Concatenate values for a DOL: missing ones as zeros, long ones cut, short padded.

    Numeric data (format n) is right-aligned with leading zeros in EMV, others
    left-aligned; for the terminal data the sim supplies, left-padding is right for
    amounts and dates (n) and harmless for the rest, so values are left-padded.
    """
    out = bytearray()
    for tag, length in dol:
        value = values.get(tag, b"")
        if len(value) >= length:
            out += value[len(value) - length :] if _is_numeric(tag) else value[:length]
        else:
            out += bytes(length - len(value)) + value
    return bytes(out)


_NUMERIC_TAGS = frozenset({0x9F02, 0x9F03, 0x5F2A, 0x9F1A, 0x9A, 0x9C, 0x9F21})


def _is_numeric(tag: int) -> bool:
    return tag in _NUMERIC_TAGS


def split_dol_data(dol: list[tuple[int, int]], data: bytes) -> dict[int, bytes]:
    """The inverse of build_dol; TlvError when ``data`` does not have the DOL's length."""
    total = sum(length for _, length in dol)
    if len(data) != total:
        raise TlvError(f"DOL data is {len(data)} bytes, the DOL asks for {total}")
    out: dict[int, bytes] = {}
    offset = 0
    for tag, length in dol:
        out[tag] = data[offset : offset + length]
        offset += length
    return out
