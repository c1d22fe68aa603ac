"""``log.mark``: write a batch of marker entries, so a test can fill the log store fast.

Filling the 2048-entry store through real operations (each a test-port round trip and
a segment write) takes seconds; one ``log.mark`` writes up to 1000 entries with one
write per segment they touch. The entries are ordinary ``info`` entries with code
``I_LOG_MARK`` and message ``mark {note} {i}/{count}``, and go through the same
rotation and retention as any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hil.protocol.endpoint import CommandFailed
from hil.sim.state import LogStore

MAX_MARKS = 1000
NOTE_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,24}")


class LogCommands:
    def __init__(self, logs: LogStore) -> None:
        self._logs = logs

    def commands(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"log.mark": self.mark}

    def mark(self, args: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(args) - {"count", "note"})
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS", f"unknown argument(s) {', '.join(unknown)}; expected: count, note"
            )
        count, note = args.get("count"), args.get("note")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_MARKS:
            raise CommandFailed("E_BAD_ARGS", f"count must be an integer from 1 to {MAX_MARKS}")
        if not isinstance(note, str) or not NOTE_PATTERN.fullmatch(note):
            raise CommandFailed("E_BAD_ARGS", "note must be 1-24 of A-Z a-z 0-9 _ . -")
        entries = self._logs.append_many(
            "info", "I_LOG_MARK", [f"mark {note} {i}/{count}" for i in range(1, count + 1)]
        )
        return {"first_seq": entries[0].seq, "last_seq": entries[-1].seq}
