"""The simulated terminal's keypad and its PIN entry.

Keys arrive by ``keypad.press`` on the test port (the sim's stand-in for a finger or a
key-press robot). ``pin.enter`` shows the ``pin_entry`` screen (one ``*`` per digit
typed), collects digits until ``enter``, and answers with the number of digits only.
The digits live in this object's memory for the duration of the entry and are never
shown, logged, emitted or answered; the log gets ``I_PIN_ENTERED`` with the count.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from hil.protocol.endpoint import CommandFailed
from hil.sim.display import Display

DIGIT_KEYS = tuple("0123456789")
KEYS = (*DIGIT_KEYS, "enter", "clear", "cancel")
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12
PIN_TIMEOUT_DEFAULT_MS = 30_000
PIN_TIMEOUT_MAX_MS = 120_000
PIN_PROMPT = ("请输入密码", "Enter PIN")

LogEntry = Callable[[str, str, str], object]


class Keypad:
    def __init__(self, display: Display, *, log: LogEntry, show_idle: Callable[[], None]) -> None:
        self._display = display
        self._log = log
        self._show_idle = show_idle
        self._keys: deque[str] = deque()
        self._cond = threading.Condition()
        self._entering = False

    def commands(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"keypad.press": self.cmd_press, "pin.enter": self.cmd_pin_enter}

    def cmd_press(self, args: dict[str, Any]) -> dict[str, Any]:
        keys = args.get("keys")
        if set(args) - {"keys"} or not isinstance(keys, list) or not keys:
            raise CommandFailed("E_BAD_ARGS", "keypad.press takes keys: a non-empty list")
        unknown = [k for k in keys if k not in KEYS]
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS", f"unknown key(s) {len(unknown)}; keys are 0-9, enter, clear, cancel"
            )
        with self._cond:
            if self._entering:
                self._keys.extend(keys)
                self._cond.notify_all()
        return {"pressed": len(keys)}

    def cmd_pin_enter(self, args: dict[str, Any]) -> dict[str, Any]:
        timeout_ms = args.get("timeout_ms", PIN_TIMEOUT_DEFAULT_MS)
        if (
            set(args) - {"timeout_ms"}
            or not isinstance(timeout_ms, int)
            or isinstance(timeout_ms, bool)
            or not 1 <= timeout_ms <= PIN_TIMEOUT_MAX_MS
        ):
            raise CommandFailed("E_BAD_ARGS", f"timeout_ms: an integer 1 to {PIN_TIMEOUT_MAX_MS}")
        with self._cond:
            if self._entering:
                raise CommandFailed("E_BUSY", "a PIN entry is already under way")
            self._entering = True
            self._keys.clear()
        digits: list[str] = []
        try:
            return self._collect(digits, timeout_ms / 1000)
        finally:
            digits[:] = ["0"] * len(digits)  # overwrite before letting go
            with self._cond:
                self._entering = False
                self._keys.clear()
            self._show_idle()

    def _collect(self, digits: list[str], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        self._display.show("pin_entry", [*PIN_PROMPT, ""])
        while True:
            with self._cond:
                while not self._keys:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._log(
                            "warn",
                            "E_PIN_TIMEOUT",
                            f"PIN entry timed out ({len(digits)} digits typed)",
                        )
                        raise CommandFailed("E_PIN_TIMEOUT", "no PIN entered in time")
                    self._cond.wait(left)
                key = self._keys.popleft()
            if key == "cancel":
                self._log("warn", "E_PIN_CANCELLED", "PIN entry cancelled by the cardholder")
                raise CommandFailed("E_PIN_CANCELLED", "the cardholder cancelled the PIN entry")
            if key == "clear":
                digits.clear()
            elif key == "enter":
                if PIN_MIN_DIGITS <= len(digits) <= PIN_MAX_DIGITS:
                    self._log("info", "I_PIN_ENTERED", f"PIN entered ({len(digits)} digits)")
                    return {"entered": True, "digits": len(digits)}
                # too short or too long: the terminal asks again, as a real one would
                digits.clear()
            elif len(digits) < PIN_MAX_DIGITS:
                digits.append(key)
            self._display.show("pin_entry", [*PIN_PROMPT, "*" * len(digits)])
