"""One exception root for everything pos-hil raises on purpose.

The split decides how a failure is reported: a ``DutError`` is the terminal's fault
(Allure "failed"), a ``RigError`` is the lab's (Allure "broken", exit code 3, never
blamed on the firmware), a ``ConfigError`` is the user's input (exit code 2).
"""

from __future__ import annotations


class HilError(Exception):
    """Root of every error pos-hil raises on purpose."""


class ConfigError(HilError):
    """A rig file, fixture file or command-line value is invalid. Exit code 2."""


class RigError(HilError):
    """An instrument or the rig itself failed (port gone, process would not start).

    ``instrument`` names the instrument; ``last_io`` holds the last bytes or action
    seen on it, so the report can say where the rig broke.
    """

    def __init__(self, message: str, *, instrument: str = "", last_io: str = "") -> None:
        super().__init__(message)
        self.instrument = instrument
        self.last_io = last_io


class DutError(HilError, AssertionError):
    """The device under test misbehaved: wrong answer, broken frames, no answer.

    Also an AssertionError on purpose: reporting tools (Allure, pytest) count an
    assertion as a *failed* check of the product and anything else as *broken*;
    a terminal that misbehaves has failed its certification step.
    """


class ProtocolError(DutError):
    """The test-port link broke: frames never acknowledged, garbage instead of frames."""


class CommandTimeout(DutError):
    """The terminal did not answer a command within its timeout."""

    def __init__(self, message: str, *, command: str = "") -> None:
        super().__init__(message)
        self.command = command


class TerminalCommandError(DutError):
    """The terminal answered a command with ``ok: false``; ``code`` is its ``E_...`` code."""

    def __init__(self, command: str, code: str, message: str) -> None:
        super().__init__(f"terminal refused '{command}': {code}: {message}")
        self.command = command
        self.code = code
        self.terminal_message = message
