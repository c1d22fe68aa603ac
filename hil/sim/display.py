"""The terminal's screen: a named screen plus its text lines.

Every change bumps ``changed_seq`` and is reported to the listener (the terminal turns
it into a ``display.changed`` event), so a test can wait for a screen instead of polling.
Showing what is already shown is not a change.

The reader LED follows the card flow (docs/test-port-protocol.md, "Reader LED"): blue
while the terminal asks for or reads a card, green on a good read, red on a card
error, off on every other screen. It is part of what ``display.read`` reports and of
the face the sim draws for the rig's camera (``hil.sim.render``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: The reader LED's colour on each screen that lights it.
READER_LED: dict[str, str] = {
    "card_prompt": "blue",
    "card_reading": "blue",
    "card_read": "green",
    "card_error": "red",
}


@dataclass(frozen=True)
class Screen:
    screen: str
    lines: tuple[str, ...]
    changed_seq: int

    @property
    def leds(self) -> dict[str, str]:
        return {"reader": READER_LED.get(self.screen, "off")}


DisplayListener = Callable[[Screen], None]


class Display:
    """Thread-safe; the listener is called outside the lock, in change order."""

    def __init__(self, listener: DisplayListener | None = None) -> None:
        self._lock = threading.Lock()
        self._notify_lock = threading.Lock()
        self._current = Screen("off", (), 0)
        self._listener = listener

    def show(self, screen: str, lines: Sequence[str]) -> bool:
        """Show a screen; True when it differs from what was shown."""
        with self._notify_lock:
            with self._lock:
                new_lines = tuple(lines)
                if self._current.screen == screen and self._current.lines == new_lines:
                    return False
                self._current = Screen(screen, new_lines, self._current.changed_seq + 1)
                shown = self._current
            if self._listener is not None:
                self._listener(shown)
            return True

    def read(self) -> Screen:
        with self._lock:
            return self._current
