"""Framing of a JSON-lines channel: one JSON object per line, shared by both ends.

A line longer than ``MAX_LINE`` bytes is dropped rather than buffered without bound;
a line that is not JSON, or JSON that is not an object, is skipped, so garbage on
the channel never stops it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from hil import strictjson
from hil.strictjson import StrictJsonError

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024


def encode_line(message: dict[str, Any]) -> bytes:
    """``message`` as one line: compact UTF-8 JSON and a newline."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class LineDecoder:
    """Incremental decoder: ``feed`` the bytes as they arrive, get whole messages back.

    ``name`` (the channel) only labels the warnings about lines that were dropped.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """The messages completed by ``chunk``, in order."""
        self._buffer += chunk
        if len(self._buffer) > MAX_LINE and b"\n" not in self._buffer:
            log.warning("%s: line longer than %d bytes dropped", self.name, MAX_LINE)
            self._buffer = b""
        messages: list[dict[str, Any]] = []
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                messages.append(strictjson.loads_object(line))
            except StrictJsonError as e:
                log.warning("%s: line ignored: %s", self.name, e)
        return messages
