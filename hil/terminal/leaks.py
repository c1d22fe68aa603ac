"""Cardholder data the terminal wrote where it must never write it, found in its raw output.

PCI DSS lets a terminal show a card number as its first six and last four digits at
most, and never write track data or a PIN block. The rig masks everything *it* writes
(``hil.masking``), which would hide a terminal that breaks the rule: so the terminal's
output is scanned here *before* anything masks it, and what is found is reported as a
terminal defect (``CardDataLeak``, a ``DutError``) naming where it was and which field,
with the number itself masked.

What counts as a leak:

- a **full PAN**: a run of 13-19 digits (single spaces or dashes between groups
  allowed) that passes the Luhn check, in any text; or an integer of that size under a
  field whose name says it holds a card number (``pan``, ``card``, ``account``, ``track``),
  since integers elsewhere are times and counters (a 13-digit epoch-millisecond time
  passes Luhn one time in ten);
- **track data**: track 2 (``;``PAN``=``YYMM + service code, or the chip's track-2
  equivalent with ``D`` as separator) or track 1 (``B``PAN``^``NAME``^``YYMM...), with the
  PAN in clear or starred: the discretionary data after it is secret either way;
- a **PIN block**: any non-empty value under a field named like one (``pin_block``,
  ``pinblock``, ``epb``, ``encrypted_pin``, ``pin_data``, ``pin``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hil.errors import DutError
from hil.masking import luhn_valid, mask_pan

_PAN_RUN = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
# Track 2 (or its chip equivalent, tag 57): PAN, separator, YYMM, service code. The PAN
# may be starred (a masked PAN followed by discretionary data is still track data).
_TRACK2 = re.compile(r"(?<![0-9*])[0-9][0-9*]{11,18}[=D][0-9]{7}")
_TRACK1 = re.compile(r"B[0-9][0-9*]{11,18}\^[^^]{1,26}\^[0-9]{7}")
_CARD_NUMBER_FIELDS = ("pan", "card", "account", "track")
_PIN_BLOCK_FIELDS = frozenset({"pinblock", "epb", "encryptedpin", "pindata", "pin"})


@dataclass(frozen=True)
class Leak:
    """One piece of cardholder data in the terminal's output; ``shown`` is safe to print."""

    #: what the terminal wrote: "full PAN", "track 2 data", "track 1 data" or "PIN block"
    kind: str
    #: where: "event 'card.read' (seq 12)", "answer to 'log.read'", ...
    source: str
    #: the field inside it, e.g. "data.pan" or "entries[3].message" ("" for raw text)
    field: str
    #: the finding, masked: "476173******0010", or a length for what is never shown
    shown: str

    def describe(self) -> str:
        where = f"{self.source} field {self.field}" if self.field else self.source
        return f"{self.kind} {self.shown} in {where}"


class CardDataLeak(DutError):
    """The terminal wrote cardholder data where PCI DSS forbids it."""

    def __init__(self, leaks: list[Leak]) -> None:
        shown = "; ".join(leak.describe() for leak in leaks[:5])
        more = f" (+{len(leaks) - 5} more)" if len(leaks) > 5 else ""
        super().__init__(f"the terminal leaked cardholder data: {shown}{more}")
        self.leaks = leaks


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def leaks_in_text(text: str, source: str, field: str = "") -> list[Leak]:
    """Full PANs and track data in one piece of text."""
    found: list[Leak] = []
    track_spans: list[tuple[int, int]] = []
    for pattern, kind in ((_TRACK2, "track 2 data"), (_TRACK1, "track 1 data")):
        for match in pattern.finditer(text):
            track_spans.append(match.span())
            leading = re.match(r"B?([0-9*]+)", match.group(0))
            pan = leading.group(1) if leading else ""
            found.append(Leak(kind, source, field, f"(PAN {_mask_any(pan)})"))
    for match in _PAN_RUN.finditer(text):
        if any(start <= match.start() < end for start, end in track_spans):
            continue  # already reported as the track it belongs to
        digits = match.group(0).replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            found.append(Leak("full PAN", source, field, mask_pan(digits)))
    return found


def _mask_any(pan: str) -> str:
    """A PAN as the rig may show it: masked if clear, as it came if starred already."""
    return pan if "*" in pan else mask_pan(pan)


def _walk(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, the key it sits under, value) for every scalar inside ``value``."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            name = str(key)
            inner_path = f"{path}.{name}" if path else name
            if isinstance(inner, Mapping | list | tuple):
                yield from _walk(inner, inner_path)
            else:
                yield inner_path, name, inner
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            inner_path = f"{path}[{index}]"
            if isinstance(inner, Mapping | list | tuple):
                yield from _walk(inner, inner_path)
            else:
                yield inner_path, path.rpartition(".")[2], inner


def leaks_in_data(value: Any, source: str, path: str = "") -> list[Leak]:
    """Every leak in a decoded JSON value (an event's data, an answer's result)."""
    found: list[Leak] = []
    if isinstance(value, Mapping):
        for key in value:
            found.extend(leaks_in_text(str(key), source, f"{path} (a key)".strip()))
    for where, key, scalar in _walk(value, path):
        name = _normalised(key)
        if name in _PIN_BLOCK_FIELDS or "pinblock" in name:
            if scalar not in (None, "", False):
                length = len(str(scalar))
                found.append(Leak("PIN block", source, where, f"({length} characters withheld)"))
            continue
        if isinstance(scalar, str):
            found.extend(leaks_in_text(scalar, source, where))
        elif isinstance(scalar, int) and not isinstance(scalar, bool):
            digits = str(abs(scalar))
            named_card = any(word in name for word in _CARD_NUMBER_FIELDS)
            if named_card and 13 <= len(digits) <= 19 and luhn_valid(digits):
                found.append(Leak("full PAN", source, where, mask_pan(digits)))
    return found
