"""Test-port framing: bytes <-> JSON messages. Pure: no I/O, no clocks, no threads.

Wire format (see docs/test-port-protocol.md)::

    STX 0x02 | LEN u16 BE (bytes of BODY) | BODY (UTF-8 JSON object) | ETX 0x03 | CRC u16 BE

CRC is CRC-16/CCITT-FALSE over LEN||BODY. Single ACK (0x06) / NAK (0x15) bytes
travel between frames.

``FrameDecoder`` is incremental and total: any byte sequence, cut anywhere, yields
``Frame``/``Control``/``Broken``/``NotAFrame``/``Skipped`` items and never raises. It
tells a frame that arrived damaged (``Broken``: the receiver NAKs it) from an STX that
never started a frame (``NotAFrame``: noise, dropped without NAK, so it costs the
peer's own frame nothing). It has no notion of time, so a candidate whose announced
length never arrives stays pending until the caller (the link, on a stall timer) calls
``flush_partial``.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from hil import strictjson

STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15

MAX_BODY = 0xFFFF
MIN_BODY = 2  # "{}": a LEN below this cannot announce a JSON object
HEADER_SIZE = 3  # STX + LEN
TRAILER_SIZE = 3  # ETX + CRC
OVERHEAD = HEADER_SIZE + TRAILER_SIZE


_OUTSIDE_RUN = re.compile(rb"[^\x02\x06\x15]+")

# One encoder for every BODY: json.dumps with options builds a new JSONEncoder per call,
# and JSONEncoder.encode builds a new C encoder per call. Where CPython has its C
# encoder, it is made once, with the options json.dumps would give it (compact
# separators, non-ASCII kept, NaN refused) but without the circular-reference check:
# that check keeps a dict shared by every caller, so one thread's message could be
# taken for a cycle in another's; a real cycle recurses until RecursionError instead,
# turned into the ValueError json.dumps raises. tests/unit/test_framing.py checks that
# both give the same bytes.
_BODY_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _c_body_encoder() -> Callable[[Any, int], Any] | None:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        encoder: Callable[[Any, int], Any] = make(
            None,  # markers: no circular-reference check (see above)
            _BODY_ENCODER.default,
            json.encoder.encode_basestring,  # ensure_ascii=False
            None,  # indent
            ":",
            ",",
            False,  # sort_keys
            False,  # skipkeys
            False,  # allow_nan
        )
    except TypeError:  # another CPython's private signature: the public path then
        return None
    return encoder


_C_BODY_ENCODER = _c_body_encoder()
_STX_BYTE = bytes((STX,))
_ETX_BYTE = bytes((ETX,))
_CONTROL_BYTES = {ACK: bytes((ACK,)), NAK: bytes((NAK,))}


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
    if type(message) is not dict:  # a dict (nearly always) is taken as it is
        if not isinstance(message, Mapping):
            raise TypeError(f"a test-port message is a JSON object, not {type(message).__name__}")
        message = dict(message)
    if _C_BODY_ENCODER is None:
        return _BODY_ENCODER.encode(message).encode("utf-8")
    try:
        return "".join(_C_BODY_ENCODER(message, 0)).encode("utf-8")
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep)") from None


def encode_body(body: bytes) -> bytes:
    """Wrap an already-encoded BODY in STX/LEN/ETX/CRC."""
    if not body:
        raise ValueError("frame body is empty (LEN 0 is reserved as broken)")
    if len(body) > MAX_BODY:
        raise ValueError(f"frame body is {len(body)} bytes; at most {MAX_BODY} fit in LEN")
    length = len(body).to_bytes(2, "big")
    crc = binascii.crc_hqx(body, binascii.crc_hqx(length, 0xFFFF))
    return b"".join((_STX_BYTE, length, body, _ETX_BYTE, crc.to_bytes(2, "big")))


def encode_frame(message: Mapping[str, Any]) -> bytes:
    """Encode one message as a complete frame. Raises ValueError/TypeError if it cannot be."""
    body = dump_body(message)
    if not MIN_BODY <= len(body) <= MAX_BODY:
        return encode_body(body)  # which says what is wrong with it
    length = len(body).to_bytes(2, "big")
    crc = binascii.crc_hqx(body, binascii.crc_hqx(length, 0xFFFF))
    return b"".join((_STX_BYTE, length, body, _ETX_BYTE, crc.to_bytes(2, "big")))


class Frame(NamedTuple):
    """A well-formed frame; the receiver ACKs it.

    Frame and Control are named tuples (immutable like the frozen dataclasses the
    other items are, made in a third of the time): one of each per request and
    answer on both ends."""

    message: dict[str, Any]
    raw: bytes

    @property
    def body(self) -> bytes:
        return self.raw[HEADER_SIZE:-TRAILER_SIZE]


class Control(NamedTuple):
    """An ACK or NAK byte seen between frames."""

    byte: int
    raw: bytes

    @property
    def is_ack(self) -> bool:
        return self.byte == ACK


@dataclass(frozen=True)
class Broken:
    """A frame that arrived damaged or says what the protocol does not allow; NAKed.

    Its ETX sat where LEN put it, so a sender really wrote a frame here: either the
    CRC does not match (``well_delimited`` False: the bytes after its STX are scanned
    again, so they may also appear in later items) or ETX and CRC are right and the
    BODY is not a strict JSON object (``well_delimited`` True: the whole frame is
    skipped; it is the sender's fault, not the line's).
    """

    reason: str
    raw: bytes
    well_delimited: bool = False


@dataclass(frozen=True)
class NotAFrame:
    """An STX that did not start a frame: noise. Dropped without NAK.

    LEN could not announce a JSON object, a byte that no BODY can hold (STX, ETX)
    came inside the announced BODY, the byte after the BODY was not ETX, or the
    line went quiet before the announced bytes arrived (``flush_partial``). ``raw``
    is the candidate as far as it was judged; scanning resumes at the byte after
    its STX, so those bytes may also appear in later items.
    """

    reason: str
    raw: bytes


@dataclass(frozen=True)
class Skipped:
    """Bytes outside any frame that are neither STX, ACK nor NAK."""

    raw: bytes


Decoded = Frame | Control | Broken | NotAFrame | Skipped


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
        # How far the BODY of the candidate at the head has been searched for STX/ETX,
        # so a big frame arriving in pieces is searched once, not once per piece.
        self._searched = 0

    def feed(self, data: bytes) -> list[Decoded]:
        """Add ``data`` and return every item it completes. Never raises."""
        out: list[Decoded] = []
        if not self._buf and type(data) is bytes:
            # Nearly every chunk is whole frames and ACK/NAK bytes: those are taken
            # straight from ``data``; the buffer takes over at the first byte that
            # is anything else (it then decides what that is, as without this path).
            taken = self._take_whole(data, out)
            if taken == len(data):
                return out
            data = data[taken:]
        self._buf += data
        while self._buf:
            if self._buf[0] != STX:
                self._take_outside(out)
                continue
            if not self._take_frame(out):
                break  # the frame at the head needs more bytes
        return out

    @staticmethod
    def _take_whole(data: bytes, out: list[Decoded]) -> int:
        """Append the ACK/NAK bytes and intact frames at the start of ``data`` to
        ``out``; how many bytes they took. It stops at the first byte that is neither,
        or at a candidate that is not an intact frame of a strict JSON object: what
        ``_take_frame`` would make of those items is left to it, with the rest."""
        end_of_data = len(data)
        at = 0
        while at < end_of_data:
            byte = data[at]
            if byte in (ACK, NAK):
                out.append(Control(byte, _CONTROL_BYTES[byte]))
                at += 1
                continue
            if byte != STX or end_of_data - at < OVERHEAD:
                break
            etx_at = at + HEADER_SIZE + ((data[at + 1] << 8) | data[at + 2])
            end = etx_at + TRAILER_SIZE
            if (
                end > end_of_data
                or etx_at - at - HEADER_SIZE < MIN_BODY
                or data[etx_at] != ETX
                or data.find(_STX_BYTE, at + HEADER_SIZE, etx_at) >= 0
                or data.find(_ETX_BYTE, at + HEADER_SIZE, etx_at) >= 0
                or binascii.crc_hqx(data[at + 1 : etx_at], 0xFFFF)
                != ((data[etx_at + 1] << 8) | data[etx_at + 2])
            ):
                break
            try:
                parsed = strictjson.loads_object(data[at + HEADER_SIZE : etx_at])
            except strictjson.StrictJsonError:
                break  # refused: _take_frame says why
            out.append(Frame(parsed, data[at:end]))
            at = end
        return at

    def pending(self) -> bool:
        """True while a frame has started but not all its announced bytes are here."""
        return bool(self._buf) and self._buf[0] == STX

    def flush_partial(self) -> list[Decoded]:
        """The line went quiet: give up on every candidate still waiting for bytes.

        The silence that stalls the candidate at the head stalls any candidate found
        behind it too, so each is dropped in turn as ``NotAFrame`` (no NAK) and the
        bytes after its STX rescanned; returns those items and whatever the rescans
        find (ACK/NAK bytes and frames that a false STX had swallowed). Empty when
        nothing was pending.
        """
        out: list[Decoded] = []
        while self.pending():
            raw = bytes(self._buf)
            if len(raw) < HEADER_SIZE:
                reason = f"incomplete frame: {len(raw)} byte(s), LEN not received"
            else:
                expected = int.from_bytes(raw[1:3], "big") + OVERHEAD
                reason = f"incomplete frame: got {len(raw)} of {expected} bytes"
            self._not_a_frame(out, reason, len(raw))
            out += self.feed(b"")
        return out

    def reset(self) -> None:
        """Forget everything buffered (e.g. after the port was reopened)."""
        self._buf.clear()
        self._searched = 0

    def _take_outside(self, out: list[Decoded]) -> None:
        byte = self._buf[0]
        if byte in (ACK, NAK):
            out.append(Control(byte, bytes((byte,))))
            self._drop_head(1)
            return
        run = _OUTSIDE_RUN.match(self._buf)
        end = run.end() if run else 1
        out.append(Skipped(bytes(self._buf[:end])))
        self._drop_head(end)

    def _take_frame(self, out: list[Decoded]) -> bool:
        """Judge the candidate at the head of the buffer; False if it needs more bytes.

        It is dropped as noise as soon as it proves not to be a frame, without waiting
        for the length it announced: that is what lets the next real frame through at
        once after a stray STX.
        """
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return False
        length = int.from_bytes(buf[1:3], "big")
        if length < MIN_BODY:
            self._not_a_frame(out, f"LEN {length} cannot announce a JSON object", HEADER_SIZE)
            return True
        etx_at = HEADER_SIZE + length
        # JSON escapes control characters, so STX and ETX never occur in a BODY: one
        # there is the next frame's start or end, and this STX was not a frame's.
        body_end = min(len(buf), etx_at)
        start = max(self._searched, HEADER_SIZE)
        if start < body_end:
            stx_at = buf.find(STX, start, body_end)
            etx_before = buf.find(ETX, start, body_end if stx_at < 0 else stx_at)
            stray = etx_before if etx_before >= 0 else stx_at
            if stray >= 0:
                name = "STX" if buf[stray] == STX else "ETX"
                reason = f"{name} at byte {stray}, inside the {length}-byte BODY LEN announced"
                self._not_a_frame(out, reason, stray + 1)
                return True
            self._searched = body_end
        if len(buf) <= etx_at:
            return False
        if buf[etx_at] != ETX:
            reason = f"missing ETX: byte 0x{buf[etx_at]:02X} after LEN {length}"
            self._not_a_frame(out, reason, etx_at + 1)
            return True
        total = etx_at + TRAILER_SIZE
        if len(buf) < total:
            return False
        got = int.from_bytes(buf[etx_at + 1 : total], "big")
        expected = crc16_ccitt_false(bytes(buf[1:etx_at]))
        if got != expected:
            reason = f"bad CRC: got 0x{got:04X}, expected 0x{expected:04X}"
            if self._frame_starts_in_len():
                # A stray STX right before a frame takes that frame's STX into its LEN,
                # and for a few BODY sizes (513 after one stray STX) ends on its ETX.
                self._not_a_frame(out, f"{reason}, and a frame starts inside LEN", total)
                return True
            # ETX where LEN said: a real frame hit by line noise. NAK for a quick resend.
            out.append(Broken(reason, bytes(buf[:total])))
            self._drop_head(1)
            return True
        parsed = parse_body(bytes(buf[HEADER_SIZE:etx_at]))
        if isinstance(parsed, str):
            # ETX and CRC both matched, so the frame boundaries are real: rescanning its
            # body would only misread body bytes as ACK/NAK or STX.
            out.append(Broken(parsed, bytes(buf[:total]), well_delimited=True))
            self._drop_head(total)
            return True
        out.append(Frame(parsed, bytes(buf[:total])))
        self._drop_head(total)
        return True

    def _frame_starts_in_len(self) -> bool:
        """Whether a well-formed frame starts at an STX among the head candidate's LEN
        bytes (rare path: only asked about a candidate whose CRC is wrong)."""
        for at in (1, 2):
            if self._buf[at] == STX:
                first = FrameDecoder().feed(bytes(self._buf[at:]))[:1]
                if first and isinstance(first[0], Frame):
                    return True
        return False

    def _not_a_frame(self, out: list[Decoded], reason: str, judged: int) -> None:
        """Drop the candidate's STX (no NAK) and rescan from the byte after it."""
        out.append(NotAFrame(reason, bytes(self._buf[:judged])))
        self._drop_head(1)

    def _drop_head(self, size: int) -> None:
        del self._buf[:size]
        self._searched = 0


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
