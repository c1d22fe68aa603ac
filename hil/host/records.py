"""The host's message log: every message in and out, card data masked at the door.

A record never holds card data in clear: field 2 keeps first 6 / last 4, tracks
(35, 36, 45) and the PIN block (52) are replaced by a note of their length, and in
field 55 tag 5A is masked like field 2 and tag 57 (track 2 equivalent) is withheld.
Records are what assertions and the report attachment see; the raw bytes are
dropped as soon as they are decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hil.host.iso8583 import SENSITIVE_TAGS, Frame, Iso8583Error, parse_tlv
from hil.masking import mask_data, mask_pan


def _withheld(what: str, value: str) -> str:
    return f"<{what} withheld, {len(value)} digits>"


def mask_field_55(hex_value: str) -> list[dict[str, str]] | str:
    """Field 55 as a list of {tag, value} with 5A masked and 57 withheld."""
    try:
        items = parse_tlv(bytes.fromhex(hex_value))
    except (ValueError, Iso8583Error) as e:
        # Unparseable ICC data may still hold a PAN: show none of it.
        return f"<field 55 unparseable ({e}), {len(hex_value) // 2} bytes withheld>"
    shown: list[dict[str, str]] = []
    for tag, value in items:
        text = value.hex().upper()
        if tag == "5A":
            text = mask_pan(text.rstrip("F"))
        elif tag in SENSITIVE_TAGS:
            text = f"<tag {tag} withheld, {len(value)} bytes>"
        shown.append({"tag": tag, "value": text})
    return shown


def masked_fields(fields: dict[str, str]) -> dict[str, Any]:
    """The fields of a decoded message, safe to log, attach and assert on."""
    out: dict[str, Any] = {}
    for key in sorted(fields, key=lambda k: int(k) if k.isdigit() else -1):
        value = fields[key]
        if key == "2":
            out[key] = mask_pan(value)
        elif key in ("35", "36", "45"):
            out[key] = _withheld(f"track data (field {key})", value)
        elif key == "52":
            out[key] = "<PIN block withheld>"
        elif key == "55":
            out[key] = mask_field_55(value)
        elif key == "61" and _original_data(value) is not None:
            # 16 digits that a PAN scanner could take for a card number: kept as its
            # parts, each too short to be one, so the original STAN stays readable.
            out[key] = _original_data(value)
        else:
            out[key] = mask_data(value)
    return out


def _original_data(value: object) -> dict[str, str] | None:
    """Field 61 of a reversal, batch n6 + original STAN n6 + date n4, as its parts."""
    text = str(value)
    if len(text) != 16 or not text.isdigit():
        return None
    return {"batch": text[:6], "stan": text[6:12], "date": text[12:]}


def original_stan(fields: Mapping[str, Any]) -> str:
    """The STAN of the sale a reversal undoes (docs/host.md, "Reversals"): the original
    STAN of field 61 when the reversal carries a well-formed one, else its field 11.

    A terminal may give a reversal its own new STAN in field 11; field 61 then says
    which sale it reverses. Works on raw fields and on recorded (masked) ones."""
    original = fields.get("61")
    if isinstance(original, Mapping):
        return str(original.get("stan", ""))
    if original is not None:
        text = str(original)
        if len(text) >= 12 and text[:12].isdigit():
            return text[6:12]
    return str(fields.get("11") or "")


@dataclass(frozen=True)
class MessageRecord:
    """One message the host received (``in``) or sent (``out``)."""

    seq: int
    at_ms: float  # since the host started
    connection: int
    direction: str  # "in" | "out"
    mti: str
    transaction: str  # sign_on, echo, parameter_download, key_download, sale, reversal, ...
    terminal_id: str
    fields: dict[str, Any]
    response_code: str = ""
    note: str = ""
    flags: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_fields(frame: Frame) -> dict[str, Any]:
    return masked_fields(frame.fields)
