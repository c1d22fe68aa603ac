"""Test-port framing: bytes <-> JSON messages. Pure: no I/O, no clocks, no threads.

Wire format (see docs/test-port-protocol.md)::

    STX 0x02 | LEN u16 BE (bytes of BODY) | BODY (UTF-8 JSON object) | ETX 0x03 | CRC u16 BE

CRC is CRC-16/CCITT-FALSE over LEN||BODY. Single ACK (0x06) / NAK (0x15) bytes
travel between frames.

``FrameDecoder`` is incremental and total: any byte sequence, cut anywhere, yields
``Frame``/``Control``/``Broken``/``Skipped`` items and never raises. It has no notion
of time, so a frame whose announced length never arrives stays pending until the
caller (the link, on a stall timer) calls ``flush_partial``.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hil import strictjson

STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15

MAX_BODY = 0xFFFF
HEADER_SIZE = 3  # STX + LEN
TRAILER_SIZE = 3  # ETX + CRC
OVERHEAD = HEADER_SIZE + TRAILER_SIZE


_OUTSIDE_RUN = re.compile(rb"[^\x02\x06\x15]+")


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, MSB first, xorout 0).

    ``crc`` lets a caller continue a running CRC over data that arrives in pieces.
    binascii's CRC-CCITT is this very CRC when started at 0xFFFF, computed in C: a
    Python loop over the bytes cost more than the rest of decoding a frame.
    """
    return binascii.crc_hqx(data, crc)


def dump_body(message: Mapping[str, Any]) -> bytes:
    """The canonical BODY for ``message``: compact JSON, UTF-8, non-ASCII kept as is.

    NaN and infinities are refused because they are not JSON and a strict peer
    would NAK them forever.
    """
    if not isinstance(message, Mapping):
        raise TypeError(f"a test-port message is a JSON object, not {type(message).__name__}")
    text = json.dumps(dict(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def encode_body(body: bytes) -> bytes:
    """Wrap an already-encoded BODY in STX/LEN/ETX/CRC."""
    if not body:
        raise ValueError("frame body is empty (LEN 0 is reserved as broken)")
    if len(body) > MAX_BODY:
        raise ValueError(f"frame body is {len(body)} bytes; at most {MAX_BODY} fit in LEN")
    length = len(body).to_bytes(2, "big")
    crc = crc16_ccitt_false(length + body)
    return bytes((STX,)) + length + body + bytes((ETX,)) + crc.to_bytes(2, "big")


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """Encode one message as a complete frame. Raises ValueError/TypeError if it cannot be."""
    return encode_body(dump_body(message))


@dataclass(frozen=True)
class Frame:
    """A well-formed frame; the receiver ACKs it."""

    message: dict[str, Any]
    raw: bytes

    @property
    def body(self) -> bytes:
        return self.raw[HEADER_SIZE:-TRAILER_SIZE]


@dataclass(frozen=True)
class Control:
    """An ACK or NAK byte seen between frames."""

    byte: int
    raw: bytes

    @property
    def is_ack(self) -> bool:
        return self.byte == ACK


@dataclass(frozen=True)
class Broken:
    """Something that started with STX but is not a valid frame; the receiver NAKs it.

    ``raw`` is what the decoder judged (the candidate frame, as far as it went).
    Unless the frame was ``well_delimited`` (ETX and CRC right, so a sender wrote
    it, but the BODY is not a strict JSON object), the bytes after its STX are
    scanned again, so they may also appear in later items.
    """

    reason: str
    raw: bytes
    well_delimited: bool = False


@dataclass(frozen=True)
class Skipped:
    """Bytes outside any frame that are neither STX, ACK nor NAK."""

    raw: bytes


Decoded = Frame | Control | Broken | Skipped


def parse_body(body: bytes) -> dict[str, Any] | str:
    """The message in ``body``, or a one-line reason why it is not a valid message.

    A BODY must be a strict JSON object (hil.strictjson): a key named twice, NaN or
    Infinity would let the two ends act on different values.
    """
    try:
        return strictjson.loads_object(body)
    except strictjson.StrictJsonError as e:
        return str(e)


class FrameDecoder:
    """Incremental decoder for one direction of a test port.

    Feed it whatever the port returned; it returns the items completed by that data,
    in wire order.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Decoded]:
        """Add ``data`` and return every item it completes. Never raises."""
        self._buf += data
        out: list[Decoded] = []
        while self._buf:
            if self._buf[0] != STX:
                self._take_outside(out)
                continue
            if not self._take_frame(out):
                break  # the frame at the head needs more bytes
        return out

    def pending(self) -> bool:
        """True while a frame has started but not all its announced bytes are here."""
        return bool(self._buf) and self._buf[0] == STX

    def flush_partial(self) -> Broken | None:
        """Give up on the frame in progress (its sender stalled).

        Returns it as Broken and rescans from the byte after its STX: call
        ``feed(b"")`` afterwards to get whatever those bytes hold.
        """
        if not self.pending():
            return None
        raw = bytes(self._buf)
        if len(raw) < HEADER_SIZE:
            reason = f"incomplete frame: {len(raw)} byte(s), LEN not received"
        else:
            expected = int.from_bytes(raw[1:3], "big") + OVERHEAD
            reason = f"incomplete frame: got {len(raw)} of {expected} bytes"
        del self._buf[:1]
        return Broken(reason, raw)

    def reset(self) -> None:
        """Forget everything buffered (e.g. after the port was reopened)."""
        self._buf.clear()

    def _take_outside(self, out: list[Decoded]) -> None:
        byte = self._buf[0]
        if byte in (ACK, NAK):
            out.append(Control(byte, bytes((byte,))))
            del self._buf[:1]
            return
        run = _OUTSIDE_RUN.match(self._buf)
        end = run.end() if run else 1
        out.append(Skipped(bytes(self._buf[:end])))
        del self._buf[:end]

    def _take_frame(self, out: list[Decoded]) -> bool:
        """Decode the frame at the head of the buffer; False if it is incomplete."""
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return False
        length = int.from_bytes(buf[1:3], "big")
        if length == 0:
            self._broken(out, "LEN 0", HEADER_SIZE, rescan=True)
            return True
        total = length + OVERHEAD
        if len(buf) < total:
            return False
        etx_at = HEADER_SIZE + length
        if buf[etx_at] != ETX:
            self._broken(
                out, f"missing ETX: byte 0x{buf[etx_at]:02X} after LEN {length}", total, rescan=True
            )
            return True
        got = int.from_bytes(buf[etx_at + 1 : total], "big")
        expected = crc16_ccitt_false(bytes(buf[1:etx_at]))
        if got != expected:
            self._broken(
                out, f"bad CRC: got 0x{got:04X}, expected 0x{expected:04X}", total, rescan=True
            )
            return True
        parsed = parse_body(bytes(buf[HEADER_SIZE:etx_at]))
        if isinstance(parsed, str):
            # ETX and CRC both matched, so the frame boundaries are real: rescanning its
            # body would only misread body bytes as ACK/NAK or STX.
            self._broken(out, parsed, total, rescan=False, well_delimited=True)
            return True
        out.append(Frame(parsed, bytes(buf[:total])))
        del buf[:total]
        return True

    def _broken(
        self,
        out: list[Decoded],
        reason: str,
        size: int,
        *,
        rescan: bool,
        well_delimited: bool = False,
    ) -> None:
        out.append(Broken(reason, bytes(self._buf[:size]), well_delimited))
        del self._buf[: 1 if rescan else size]


def describe(message: Mapping[str, Any]) -> str:
    """A short, content-free name for a message, for errors and logs.

    Never includes args/result/data, which may carry card data.
    """
    kind = message.get("type")
    if kind == "req":
        return f"req {message.get('cmd')!r} id {message.get('id')}"
    if kind == "res":
        return f"res id {message.get('id')}"
    if kind == "evt":
        return f"evt {message.get('name')!r} seq {message.get('seq')}"
    return f"message of type {kind!r}"
