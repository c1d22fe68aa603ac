"""Key presses on the terminal's keypad: PIN entry and keys, without ever writing a PIN.

``Keypad.press(keys)`` presses keys in order: ``0``-``9``, ``enter``, ``clear``,
``cancel``. Digits are PIN material: no driver logs, reports or raises them; what is
recorded is how many keys and how many of them were digits.

Drivers:

- ``testport``: the terminal's own ``keypad.press`` command (the sim; any terminal that
  implements it). The test-port transcript withholds digit keys.
- ``serial``: a key-press actuator (solenoids over the keys) on a serial port, with the
  line command set of docs/keypad.md: ``PING`` -> ``PONG <id>``, ``KEY <name>`` -> ``OK``
  once the key was pressed and released, ``ERR <reason>`` otherwise.

``profiles`` is where the cardholder's PINs come from: a step enters "the PIN of card
X" from the card profile, never from the feature text (which reaches the report).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import serial
from pydantic import Field

from hil import reporting
from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.config import RigFolder
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, RigError
from hil.instruments.console import Console

KEYS = (*"0123456789", "enter", "clear", "cancel")


def check_keys(keys: Sequence[str]) -> None:
    unknown = sum(1 for key in keys if key not in KEYS)
    if unknown:
        raise ConfigError(f"{unknown} unknown key(s): keys are 0-9, enter, clear, cancel")


def described(keys: Sequence[str]) -> str:
    """What a report may say about ``keys``: digits as ``*``."""
    return " ".join("*" if key.isdigit() else key for key in keys)


@runtime_checkable
class Keypad(Protocol):
    name: str
    profiles: ProfileLibrary

    def press(self, keys: Sequence[str]) -> None:
        """Press ``keys`` in order; returns once the last one is released."""

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class TestPortKeypad:
    """Keys through the terminal's ``keypad.press`` command."""

    __test__ = False

    def __init__(self, console: Console, profiles: ProfileLibrary, name: str = "keypad") -> None:
        self.name = name
        self.console = console
        self.profiles = profiles

    def press(self, keys: Sequence[str]) -> None:
        from hil.terminal.testport import press_keys

        check_keys(keys)
        with reporting.action(f"{self.name}: press {described(keys)}"):
            taken = press_keys(self.console, keys)
        if taken != len(keys):
            raise RigError(
                f"{self.name}: the terminal took {taken} of {len(keys)} key presses",
                instrument=self.name,
            )

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        return "keys through the test port (keypad.press)"

    def close(self) -> None:
        return None


#: Actuator key names on the wire (docs/keypad.md).
WIRE_NAMES = {
    **{d: d for d in "0123456789"},
    "enter": "ENTER",
    "clear": "CLEAR",
    "cancel": "CANCEL",
}


class SerialKeypad:
    """A key-press actuator on a serial port, one ASCII line per command."""

    def __init__(
        self,
        port: serial.SerialBase,
        profiles: ProfileLibrary,
        *,
        timeout: float,
        name: str = "keypad",
    ) -> None:
        self.name = name
        self.port = port
        self.profiles = profiles
        self.timeout = timeout
        self._lock = threading.Lock()

    def _command(self, line: str, what: str) -> str:
        """Send one line and read the answer line; ``what`` is what errors may say (a
        digit key is never named)."""
        with self._lock:
            self.port.reset_input_buffer()
            self.port.write(line.encode("ascii") + b"\n")
            self.port.flush()
            answer: bytes = self.port.read_until(b"\n")
        if not answer.endswith(b"\n"):
            raise RigError(
                f"{self.name}: the key actuator on {self.port.port} did not answer {what} "
                f"within {self.timeout:.1f} s (powered? right port and baud?)",
                instrument=self.name,
            )
        return answer.decode("ascii", errors="replace").strip()

    def press(self, keys: Sequence[str]) -> None:
        check_keys(keys)
        with reporting.action(f"{self.name}: press {described(keys)}"):
            for key in keys:
                what = "a digit key" if key.isdigit() else f"key {key}"
                answer = self._command(f"KEY {WIRE_NAMES[key]}", what)
                if answer != "OK":
                    reason = answer.removeprefix("ERR").strip() or answer
                    raise RigError(
                        f"{self.name}: the key actuator refused {what}: {reason}",
                        instrument=self.name,
                    )

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        answer = self._command("PING", "PING")
        if not answer.startswith("PONG"):
            raise RigError(
                f"{self.name}: {self.port.port} answered {answer!r} to PING, not PONG: is it "
                "the key actuator?",
                instrument=self.name,
            )
        return f"key actuator on {self.port.port!s}: {answer}"

    def close(self) -> None:
        self.port.close()


class KeypadOptions(DriverConfig):
    profiles: RigFolder | None = Field(
        default=None, description="card profiles whose PINs the cardholder knows"
    )


class TestPortKeypadConfig(KeypadOptions):
    __test__ = False


class SerialKeypadConfig(KeypadOptions):
    port: str = Field(description="serial port or pyserial URL of the key actuator")
    baud: int = Field(default=9600, gt=0)
    timeout_s: float = Field(default=2.0, gt=0, le=30)


@register("keypad", "testport")
class TestPortKeypadDriver(Driver):
    """Keys through the terminal's test port (``keypad.press``)."""

    __test__ = False
    config_model = TestPortKeypadConfig
    needs = ("console",)

    @classmethod
    def build(cls, config: TestPortKeypadConfig, context: BuildContext) -> Built:
        console = context.instrument("console", Console)
        profiles = ProfileLibrary(config.profiles or DEFAULT_PROFILES)
        return Built(TestPortKeypad(console, profiles))


@register("keypad", "serial")
class SerialKeypadDriver(Driver):
    """A key-press actuator on a serial port (docs/keypad.md)."""

    config_model = SerialKeypadConfig

    @classmethod
    def build(cls, config: SerialKeypadConfig, context: BuildContext) -> Built:
        try:
            port = serial.serial_for_url(
                config.port, baudrate=config.baud, timeout=config.timeout_s
            )
        except (serial.SerialException, ValueError) as e:
            raise RigError(
                f"keypad: cannot open the key actuator's port {config.port}: {e}",
                instrument="keypad",
            ) from e
        profiles = ProfileLibrary(config.profiles or DEFAULT_PROFILES)
        return Built(SerialKeypad(port, profiles, timeout=config.timeout_s))
