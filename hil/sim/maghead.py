"""The terminal's magnetic stripe head, fed by the rig's ``maghead`` channel.

The rig sends one line per swipe, ``{"type":"swipe","id":N,"track1":"%B...?x",
"track2":";...?x"}`` (a track the head did not pick up is absent or null); the terminal
decodes it (LRC, format, service code) and answers ``{"type":"ack","id":N}``. The
verdict goes to the test port as event ``card.read``. Track data is never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hil.jsonlines.terminal_end import TerminalEndClient

SwipeHandler = Callable[[str | None, str | None], None]


class MagHead:
    def __init__(self, value: str, on_swipe: SwipeHandler) -> None:
        self._on_swipe = on_swipe
        self._link = TerminalEndClient("maghead", value, self._on_message)

    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def reason(self) -> str:
        return self._link.reason

    def start(self) -> None:
        self._link.start()

    def _on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("type") != "swipe":
            return None
        tracks = [message.get(name) for name in ("track1", "track2")]
        track1, track2 = (t if isinstance(t, str) and t else None for t in tracks)
        self._on_swipe(track1, track2)
        return {"type": "ack", "id": message.get("id")}

    def close(self) -> None:
        self._link.close()
