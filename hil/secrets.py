"""Secrets the rig sends or presents (admin passwords, biometric templates) never reach
a report, a log or an exception: only that one was sent, and its length.

The test-port commands that carry one name it in a field of ``SECRET_FIELDS``
(docs/test-port-protocol.md, "Security"). ``redact`` replaces such values in a JSON
value; ``redact_json_bytes`` stars them in raw frame bytes (the transcript's hex
column), where senders write compact JSON (``"password":"..."``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SECRET_FIELDS = frozenset({"password", "old_password", "new_password", "template"})

_SECRET_VALUE = re.compile(
    rb'"(?:' + b"|".join(re.escape(f.encode()) for f in sorted(SECRET_FIELDS)) + rb')"\s*:\s*"'
    rb'((?:[^"\\]|\\.)*)"'
)


class Secret(str):
    """A password the rig made up: a ``str`` everywhere it is used (JSON, comparisons),
    but its ``repr`` hides it, so a traceback that shows a frame's arguments or locals
    (pytest's long tracebacks, ``-l``, reports made from them) shows only its length."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<secret, {len(self)} chars>"


def shown_secret(value: object) -> str:
    """What a report shows instead of a secret value."""
    return f"<secret, {len(value)} chars>" if isinstance(value, str) else "<secret>"


def redact(value: Any) -> Any:
    """``value`` with every field of ``SECRET_FIELDS`` (at any depth) replaced."""
    if isinstance(value, Mapping):
        return {
            key: shown_secret(item) if key in SECRET_FIELDS else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def redact_json_bytes(stream: bytearray) -> None:
    """Star, in place, the bytes of every secret field's string value."""
    for match in _SECRET_VALUE.finditer(bytes(stream)):
        for position in range(match.start(1), match.end(1)):
            stream[position] = ord("*")
