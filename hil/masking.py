"""PCI masking: a full PAN never leaves this process in clear.

Every text that can reach a log, an attachment, a report or an exception message
goes through ``mask_text``. A PAN is recognised as a run of 13-19 digits (spaces or
dashes allowed between groups) that passes the Luhn check; it is replaced by its
first six and last four digits with the middle starred, which PCI DSS permits to show.
Digit runs that fail Luhn (timestamps, amounts, STANs) are left alone so reports stay
readable.
"""

from __future__ import annotations

import re
from typing import Any

# 13-19 digits, optionally grouped by single spaces or dashes, not glued to other digits.
_PAN_CANDIDATE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")


def luhn_valid(digits: str) -> bool:
    """True if ``digits`` (only 0-9) passes the Luhn mod-10 check."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def mask_pan(pan: str) -> str:
    """Mask one PAN to first 6 / last 4, e.g. ``411111******1111``.

    Too-short input is starred entirely rather than risk showing most of it.
    """
    digits = "".join(c for c in pan if c.isdigit())
    if len(digits) < 13:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def _replace(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = candidate.replace(" ", "").replace("-", "")
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return mask_pan(digits)
    return candidate


def mask_text(text: str) -> str:
    """Return ``text`` with every Luhn-valid 13-19 digit run masked to first 6 / last 4."""
    return _PAN_CANDIDATE.sub(_replace, text)


def contains_full_pan(text: str) -> bool:
    """True if ``text`` holds a Luhn-valid 13-19 digit run in clear."""
    return mask_text(text) != text


def full_pans(text: str) -> list[str]:
    """Every Luhn-valid 13-19 digit run in ``text`` (as written, separators kept): what a
    scan of a report for card numbers in clear looks for."""
    found = []
    for match in _PAN_CANDIDATE.finditer(text):
        if _replace(match) != match.group(0):
            found.append(match.group(0))
    return found


def mask_data(value: Any, *, numbers: bool = True) -> Any:
    """Mask PANs inside structured data (JSON-like), keeping it valid structured data.

    Masking serialised JSON text instead could star digits of a float and break the
    document. Integers of PAN length that pass Luhn are masked too (as strings): a PAN
    sent as a JSON number is still a PAN. ``numbers=False`` leaves integers alone, for
    documents whose schema holds only counters and epoch-millisecond timestamps in them
    (an Allure result: a 13-digit timestamp passes Luhn one time in ten). Floats cannot
    hold a PAN and are left alone; ``None`` stays ``None`` (JSON null).
    """
    if isinstance(value, str):
        return mask_text(value)
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        digits = str(abs(value))
        if numbers and 13 <= len(digits) <= 19 and luhn_valid(digits):
            return mask_pan(digits)
        return value
    if isinstance(value, dict):
        return {mask_text(str(k)): mask_data(v, numbers=numbers) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_data(v, numbers=numbers) for v in value]
    return mask_text(str(value))
