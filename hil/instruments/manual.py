"""Manual benches: a person is the card robot, the keypad actuator and the power switch.

Driver ``manual`` for ``[cards]``, ``[keypad]`` and ``[power]`` prompts the operator
for each action ("insert card visa-credit into the chip reader, then press Enter") and
waits for Enter, at most ``timeout_s``: no answer is a rig fault (exit 3) naming the
instrument and the action, never a hang. The same features run; the rig still checks
independently what the terminal did (a card read must equal the profile prompted for).

Prompts go to the terminal ``hil run`` was started from (its stderr) and answers come
from its stdin, kept aside before pytest captures them (``keep_operator_terminal``).
A PIN is never prompted by its digits: the operator types the PIN printed on the test
card's sheet (docs/keypad.md).
"""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Sequence

from pydantic import Field

from hil import reporting
from hil.cards.profile import DEFAULT_PROFILES, CardProfile, ProfileLibrary
from hil.config import RigFolder
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError
from hil.instruments.keypad import check_keys

#: "in" and "out": the operator terminal's stdin and stderr, duplicated before pytest
#: captures them.
_OPERATOR_FDS: dict[str, int] = {}
_PROMPT_LOCK = threading.Lock()


def keep_operator_terminal() -> None:
    """Keep the operator's stdin and stderr for prompts; ``hil run`` calls this before
    pytest starts (pytest points descriptors 0-2 elsewhere while it captures)."""
    if not _OPERATOR_FDS:
        _OPERATOR_FDS.update({"in": os.dup(0), "out": os.dup(2)})


class Operator:
    """Asks a person at the bench to do something and waits for Enter."""

    def __init__(self, instrument: str, timeout: float) -> None:
        self.instrument = instrument
        self.timeout = timeout

    def ask(self, action: str) -> None:
        fd_in, fd_out = _OPERATOR_FDS.get("in", 0), _OPERATOR_FDS.get("out", 2)
        prompt = f"hil: operator: {action}; then press Enter here (within {self.timeout:.0f} s)\n"
        with _PROMPT_LOCK, reporting.action(f"{self.instrument}: operator asked", action=action):
            os.write(fd_out, prompt.encode())
            ready, _, _ = select.select([fd_in], [], [], self.timeout)
            if not ready:
                raise RigError(
                    f"{self.instrument}: no answer from the operator within "
                    f"{self.timeout:.0f} s to '{action}' (manual driver: someone must be at "
                    "the bench, or raise timeout_s)",
                    instrument=self.instrument,
                )
            line = b""
            while not line.endswith(b"\n"):
                chunk = os.read(fd_in, 1)
                if not chunk:
                    raise RigError(
                        f"{self.instrument}: the operator's input closed while waiting for "
                        f"'{action}'",
                        instrument=self.instrument,
                    )
                line += chunk


class ManualCards:
    def __init__(self, operator: Operator, profiles: ProfileLibrary, name: str = "cards") -> None:
        self.name = name
        self.operator = operator
        self.profiles = profiles
        self._inserted: str | None = None

    def insert(self, profile: CardProfile) -> None:
        self.operator.ask(f"insert card {profile.name} into the chip reader")
        self._inserted = profile.name

    def remove(self) -> None:
        self.operator.ask("remove the card from the chip reader")
        self._inserted = None

    def tap(self, profile: CardProfile) -> None:
        self.operator.ask(f"tap card {profile.name} on the contactless reader and take it away")

    def take_trace(self) -> str:
        return "(manual bench: no APDU trace; the card is in a person's hand)"

    def put_back(self) -> None:
        if self._inserted is not None:
            self.remove()

    def preflight(self) -> str:
        self.operator.ask("have the test cards at hand (card slot manual)")
        return "operator confirmed the test cards are at hand"

    def close(self) -> None:
        return None


class ManualKeypad:
    def __init__(self, operator: Operator, profiles: ProfileLibrary, name: str = "keypad") -> None:
        self.name = name
        self.operator = operator
        self.profiles = profiles

    def press(self, keys: Sequence[str]) -> None:
        check_keys(keys)
        digits = sum(1 for key in keys if key.isdigit())
        others = [key.upper() for key in keys if not key.isdigit()]
        if digits:
            # never the digits: the operator reads the PIN off the test card's sheet
            what = (
                f"on the terminal's keypad type the {digits}-digit PIN from the test card's sheet"
            )
            self.operator.ask(what + (f", then its {' '.join(others)} key" if others else ""))
        else:
            self.operator.ask(f"on the terminal's keypad press {' '.join(others)}")

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        self.operator.ask("stand by the terminal's keypad (keypad manual)")
        return "operator confirmed at the keypad"

    def close(self) -> None:
        return None


class ManualPower:
    def __init__(self, operator: Operator, name: str = "power") -> None:
        self.name = name
        self.operator = operator
        self._on = False

    def on(self) -> None:
        self.operator.ask("switch the terminal on")
        self._on = True

    def off(self) -> None:
        self.operator.ask("switch the terminal off with its power key and wait until it is dark")
        self._on = False

    def cut(self) -> None:
        self.operator.ask("pull the terminal's power plug (and battery) now")
        self._on = False

    @property
    def is_on(self) -> bool:
        return self._on

    def put_back(self) -> None:
        if not self._on:
            self.on()

    def preflight(self) -> str:
        self.operator.ask("confirm the terminal is plugged in (power manual)")
        return "operator confirmed the supply"

    def close(self) -> None:
        return None  # a person switches it off when they are done


class ManualConfig(DriverConfig):
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="how long to wait")


class ManualProfilesConfig(ManualConfig):
    profiles: RigFolder | None = Field(default=None, description="card profile folder")


@register("cards", "manual")
class ManualCardsDriver(Driver):
    """A person inserts, taps and removes the cards the scenario names."""

    config_model = ManualProfilesConfig

    @classmethod
    def build(cls, config: ManualProfilesConfig, context: BuildContext) -> Built:
        profiles = ProfileLibrary(config.profiles or DEFAULT_PROFILES)
        return Built(ManualCards(Operator("cards", config.timeout_s), profiles))


@register("keypad", "manual")
class ManualKeypadDriver(Driver):
    """A person presses the keys (a PIN from the test card's sheet)."""

    config_model = ManualProfilesConfig

    @classmethod
    def build(cls, config: ManualProfilesConfig, context: BuildContext) -> Built:
        profiles = ProfileLibrary(config.profiles or DEFAULT_PROFILES)
        return Built(ManualKeypad(Operator("keypad", config.timeout_s), profiles))


@register("power", "manual")
class ManualPowerDriver(Driver):
    """A person switches the terminal on and off."""

    config_model = ManualConfig

    @classmethod
    def build(cls, config: ManualConfig, context: BuildContext) -> Built:
        return Built(ManualPower(Operator("power", config.timeout_s)))
