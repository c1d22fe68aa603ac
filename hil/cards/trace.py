"""APDU trace with PCI masking, for the report.

Every exchange between terminal and card is recorded as it happens, already
masked: values of tags 5A (PAN), 57 (track 2 equivalent), 56 (track 1 equivalent),
9F1F and 9F20 (track discretionary data), 9F6B (contactless track 2) and 5F20
(cardholder name) are replaced by stars wherever they appear; READ RECORD response
bodies are withheld entirely (records are where cardholder data lives); VERIFY
command data (the PIN block) is never written, not even masked.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from hil.cards import tlv
from hil.masking import mask_text

SENSITIVE_TAGS = frozenset({0x5A, 0x57, 0x56, 0x9F1F, 0x9F20, 0x9F6B, 0x5F20})

_INS_NAMES = {
    0xA4: "SELECT",
    0xB2: "READ RECORD",
    0xA8: "GET PROCESSING OPTIONS",
    0xAE: "GENERATE AC",
    0x20: "VERIFY",
    0xCA: "GET DATA",
    0xC0: "GET RESPONSE",
}


def command_name(apdu: bytes) -> str:
    if len(apdu) < 2:
        return "?"
    return _INS_NAMES.get(apdu[1], f"INS {apdu[1]:02X}")


def _mask_tlv(data: bytes) -> str:
    """Hex of ``data`` with sensitive TLV values starred; opaque data unchanged."""
    try:
        items = tlv.decode(data)
    except tlv.TlvError:
        return data.hex().upper()
    out = []
    for item in items:
        head = (tlv.tag_bytes(item.tag) + tlv.encode_length(len(item.value))).hex().upper()
        if item.tag in SENSITIVE_TAGS:
            out.append(head + "**" * len(item.value))
        elif item.constructed:
            out.append(head + _mask_tlv(item.value))
        else:
            out.append(head + item.value.hex().upper())
    return "".join(out)


def mask_command(apdu: bytes) -> str:
    header = apdu[:4].hex().upper()
    body = apdu[4:]
    if len(apdu) >= 2 and apdu[1] == 0x20:
        return f"{header} <PIN block withheld>" if body else header
    if len(body) > 1:
        lc = body[0]
        data = body[1 : 1 + lc]
        rest = body[1 + lc :]
        shown = data.hex().upper() if apdu[1] == 0xA4 else _mask_tlv(data)
        return f"{header} {lc:02X} {shown}" + (f" {rest.hex().upper()}" if rest else "")
    return f"{header} {body.hex().upper()}".rstrip()


def mask_response(apdu: bytes, response: bytes) -> str:
    body, sw = response[:-2], response[-2:]
    shown_sw = sw.hex().upper()
    if not body:
        return shown_sw
    if len(apdu) >= 2 and apdu[1] == 0xB2 and not _is_directory(body):
        return f"<{len(body)} bytes of record data withheld> {shown_sw}"
    return f"{_mask_tlv(body)} {shown_sw}"


def _is_directory(body: bytes) -> bool:
    """A PSE directory record lists applications only (tag 61 entries): safe to show."""
    try:
        items = tlv.decode(body)
        return (
            len(items) == 1
            and items[0].tag == 0x70
            and all(child.tag == 0x61 for child in items[0].children())
        )
    except tlv.TlvError:
        return False


@dataclass(frozen=True)
class TraceLine:
    at_ms: float
    direction: str  # ">" command to the card, "<" its response, "*" a note
    text: str

    def render(self) -> str:
        return f"{self.at_ms:9.1f} ms  {self.direction}  {self.text}"


class ApduTrace:
    """Thread-safe list of masked trace lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[TraceLine] = []
        self._started = time.monotonic()

    def _at(self) -> float:
        return (time.monotonic() - self._started) * 1000

    def note(self, text: str) -> None:
        with self._lock:
            self._lines.append(TraceLine(self._at(), "*", mask_text(text)))

    def exchange(self, apdu: bytes, response: bytes, elapsed_ms: float) -> None:
        name = command_name(apdu)
        command = mask_command(apdu)
        answer = mask_response(apdu, response)
        with self._lock:
            at = self._at()
            self._lines.append(TraceLine(at, ">", mask_text(f"{name}: {command}")))
            self._lines.append(TraceLine(at, "<", mask_text(f"{answer} ({elapsed_ms:.2f} ms)")))

    def lines(self) -> list[TraceLine]:
        with self._lock:
            return list(self._lines)

    def take(self) -> str:
        """The trace so far as text, and start a new one."""
        with self._lock:
            lines, self._lines = self._lines, []
            self._started = time.monotonic()
        return "\n".join(line.render() for line in lines)
