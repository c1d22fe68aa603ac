"""The ISO 8583 dialect spoken between the terminal and the acquirer host.

One place defines the wire format; the host simulator and the simulated terminal
both use it, and docs/host.md documents it field by field so a lab host or a real
terminal can be checked against it. It follows the layout China UnionPay-style POS
terminals use over TCP:

    LEN     2 bytes, unsigned big-endian: byte length of everything after it
    TPDU    5 bytes: 0x60, destination address (2), source address (2)
    HEADER  6 bytes: application type 0x60, version 0x22, terminal status,
            processing requirement, 2 reserved bytes
    MTI     2 bytes BCD (e.g. 0x02 0x00)
    BITMAP  8 bytes binary (a secondary 8 bytes when any field 65-128 is present)
    FIELDS  numeric fields BCD (left-padded with 0 when odd), text fields ASCII,
            LLVAR/LLLVAR lengths BCD (1 or 2 bytes), binary fields raw

pyiso8583 does the field encoding from ``SPEC``; this module adds the length prefix,
the TPDU/header and the error wording (one line naming the field at fault).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iso8583
from iso8583.decoder import DecodeError
from iso8583.encoder import EncodeError

from hil.errors import HilError

LENGTH_PREFIX = 2
MAX_MESSAGE = 0xFFFF

#: TPDU (60 + dest 0000 + src 0000) and the CUP-style header (60 22 00 00 00 00).
DEFAULT_TPDU = "6000000000"
DEFAULT_HEADER = "602200000000"
HEADER_HEX_LEN = 22  # TPDU 5 bytes + header 6 bytes, as hex


class Iso8583Error(HilError):
    """A message could not be encoded or decoded; the text names the field."""


def _bcd(max_len: int, *, len_type: int = 0, desc: str = "", pad: str = "left") -> dict[str, Any]:
    field: dict[str, Any] = {
        "data_enc": "b",
        "len_enc": "bcd",
        "len_type": len_type,
        "max_len": max_len,
        "len_count": "nibbles",
        "desc": desc,
    }
    field["left_pad" if pad == "left" else "right_pad"] = "0"
    return field


def _ascii(max_len: int, *, len_type: int = 0, desc: str = "") -> dict[str, Any]:
    return {
        "data_enc": "ascii",
        "len_enc": "bcd",
        "len_type": len_type,
        "max_len": max_len,
        "desc": desc,
    }


def _binary(max_len: int, *, len_type: int = 0, desc: str = "") -> dict[str, Any]:
    return {
        "data_enc": "b",
        "len_enc": "bcd",
        "len_type": len_type,
        "max_len": max_len,
        "desc": desc,
    }


LL = 1  # BCD LLVAR: one length byte
LLL = 2  # BCD LLLVAR: two length bytes

#: The field table (pyiso8583 spec). Lengths of BCD fields count digits.
SPEC: dict[str, dict[str, Any]] = {
    "h": _binary(11, desc="TPDU (5) + header (6)"),
    "t": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 2, "desc": "MTI, BCD"},
    "p": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8, "desc": "Bitmap"},
    "1": {"data_enc": "b", "len_enc": "ascii", "len_type": 0, "max_len": 8, "desc": "Bitmap 2"},
    "2": _bcd(19, len_type=LL, desc="Primary account number", pad="right"),
    "3": _bcd(6, desc="Processing code"),
    "4": _bcd(12, desc="Amount, transaction (minor units)"),
    "11": _bcd(6, desc="System trace audit number"),
    "12": _bcd(6, desc="Time, local transaction hhmmss"),
    "13": _bcd(4, desc="Date, local transaction MMDD"),
    "14": _bcd(4, desc="Date, expiration YYMM"),
    "15": _bcd(4, desc="Date, settlement MMDD"),
    "22": _bcd(3, desc="POS entry mode"),
    "23": _bcd(3, desc="Card sequence number"),
    "25": _bcd(2, desc="POS condition code"),
    "26": _bcd(2, desc="POS PIN capture code"),
    "32": _bcd(11, len_type=LL, desc="Acquiring institution id"),
    "35": _bcd(37, len_type=LL, desc="Track 2 data", pad="right"),
    "36": _bcd(104, len_type=LLL, desc="Track 3 data", pad="right"),
    "37": _ascii(12, desc="Retrieval reference number"),
    "38": _ascii(6, desc="Authorisation code"),
    "39": _ascii(2, desc="Response code"),
    "41": _ascii(8, desc="Card acceptor terminal id"),
    "42": _ascii(15, desc="Card acceptor id (merchant)"),
    "44": _ascii(25, len_type=LL, desc="Additional response data"),
    "45": _ascii(76, len_type=LL, desc="Track 1 data"),
    "48": _ascii(322, len_type=LLL, desc="Additional data (settlement totals)"),
    "49": _ascii(3, desc="Currency code, transaction"),
    "52": _binary(8, desc="PIN block"),
    "53": _bcd(16, desc="Security related control information"),
    "55": _binary(255, len_type=LLL, desc="ICC system related data (TLV)"),
    "60": _bcd(17, len_type=LLL, desc="Reserved: msg type code n2, batch n6, network code n3"),
    "61": _bcd(29, len_type=LLL, desc="Original message: batch n6, trace n6, date n4"),
    "62": _binary(512, len_type=LLL, desc="Reserved private: download data, keys, serial"),
    "63": _ascii(163, len_type=LLL, desc="Reserved private: operator / serial number"),
    "64": _binary(8, desc="Message authentication code"),
}

#: Fields that carry card data: never shown in clear in a record, log or report.
SENSITIVE_FIELDS = ("2", "35", "36", "45", "52")
#: Field 55 tags that carry card data (PAN, track 2 equivalent).
SENSITIVE_TAGS = ("5A", "57")


@dataclass(frozen=True)
class Frame:
    """A decoded message: TPDU+header hex, MTI and the fields (pyiso8583 dict form)."""

    header: str
    mti: str
    fields: dict[str, str]

    def get(self, field: str, default: str = "") -> str:
        return self.fields.get(field, default)


def _error_line(e: EncodeError | DecodeError, what: str) -> str:
    field = e.field
    name = SPEC.get(field, {}).get("desc", "")
    named = f"field {field} ({name})" if name else f"field {field}"
    return f"cannot {what} ISO 8583 message: {named}: {e.msg}"


def encode(
    mti: str, fields: Mapping[str, str], *, header: str = DEFAULT_TPDU + DEFAULT_HEADER
) -> bytes:
    """One message with its 2-byte length prefix. Raises Iso8583Error."""
    doc: dict[str, str] = {"h": header, "t": mti, **{k: v for k, v in fields.items()}}
    try:
        body, _ = iso8583.encode(doc, SPEC)
    except EncodeError as e:
        raise Iso8583Error(_error_line(e, "encode")) from None
    if len(body) > MAX_MESSAGE:
        raise Iso8583Error(f"ISO 8583 message of {len(body)} bytes exceeds the 2-byte length")
    return struct.pack(">H", len(body)) + bytes(body)


def decode_body(body: bytes) -> Frame:
    """Decode one message *without* its length prefix. Raises Iso8583Error."""
    if len(body) < HEADER_HEX_LEN // 2 + 2 + 8:
        raise Iso8583Error(f"ISO 8583 message of {len(body)} bytes is shorter than header+MTI")
    try:
        doc, _ = iso8583.decode(bytearray(body), SPEC)
    except DecodeError as e:
        raise Iso8583Error(_error_line(e, "decode")) from None
    fields = {k: v for k, v in doc.items() if k not in ("h", "t", "p", "1")}
    return Frame(header=doc["h"], mti=doc["t"], fields=fields)


def decode(frame: bytes) -> Frame:
    """Decode one message *with* its 2-byte length prefix. Raises Iso8583Error."""
    if len(frame) < LENGTH_PREFIX:
        raise Iso8583Error("ISO 8583 frame shorter than its 2-byte length prefix")
    (length,) = struct.unpack(">H", frame[:LENGTH_PREFIX])
    body = frame[LENGTH_PREFIX:]
    if length != len(body):
        raise Iso8583Error(f"ISO 8583 length prefix says {length} bytes, {len(body)} follow")
    return decode_body(body)


def response_header(request_header: str) -> str:
    """The answer's TPDU swaps destination and source addresses, header kept."""
    tpdu, rest = request_header[:10], request_header[10:]
    return tpdu[:2] + tpdu[6:10] + tpdu[2:6] + rest


# --- TLV (field 55) ------------------------------------------------------------------


def parse_tlv(data: bytes) -> list[tuple[str, bytes]]:
    """BER-TLV items of field 55, flat (EMV field 55 holds primitive tags only).

    Raises Iso8583Error naming the offset on a truncated item.
    """
    items: list[tuple[str, bytes]] = []
    i = 0
    while i < len(data):
        if data[i] in (0x00, 0xFF):  # padding between items is allowed by EMV
            i += 1
            continue
        start = i
        tag = bytes([data[i]])
        i += 1
        if tag[0] & 0x1F == 0x1F:
            while i < len(data) and data[i] & 0x80:
                tag += bytes([data[i]])
                i += 1
            if i >= len(data):
                raise Iso8583Error(f"field 55: tag truncated at offset {start}")
            tag += bytes([data[i]])
            i += 1
        if i >= len(data):
            raise Iso8583Error(f"field 55: tag {tag.hex().upper()} has no length")
        length = data[i]
        i += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 2 or i + count > len(data):
                raise Iso8583Error(f"field 55: tag {tag.hex().upper()}: bad length form")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        if i + length > len(data):
            raise Iso8583Error(
                f"field 55: tag {tag.hex().upper()} says {length} bytes, {len(data) - i} left"
            )
        items.append((tag.hex().upper(), data[i : i + length]))
        i += length
    return items


def build_tlv(items: list[tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for tag, value in items:
        out += bytes.fromhex(tag)
        if len(value) < 0x80:
            out.append(len(value))
        elif len(value) <= 0xFF:
            out += bytes([0x81, len(value)])
        else:
            out += bytes([0x82]) + len(value).to_bytes(2, "big")
        out += value
    return bytes(out)
