"""The rig's instruments by hand: the ``:`` commands of ``hil console --rig``.

A person exploring a terminal wants to do what a scenario does: put a card in,
swipe, open the tamper switch, show a QR code, cut the network. Each command here
calls the instrument's typed API (the Protocols of hil/instruments/), never the
terminal: what the terminal makes of it arrives as its events.

=============================================  ==========================================
command                                        what it does
=============================================  ==========================================
``:card insert PROFILE``                       the profile's chip card into the chip reader
``:card tap PROFILE``                          the profile's card held on the antenna
``:card remove``                               the card out of the reader
``:swipe PROFILE [none|bad_lrc|partial]``      a swipe through the mag-head
``:fault set LINE`` / ``:fault clear LINE``    assert / release a fault line
``:fault``                                     every fault line's level
``:qr show PAYLOAD [AXIS=N ...]``              the payload on the QR screen, degraded
``:qr blank``                                  the QR screen blank
``:net blackhole|refuse|heal``                 cut the network (silently / refusing) or heal
``:net latency MS``                            delay every packet by MS
=============================================  ==========================================
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from hil.contract.selfcheck import FAULT_LINES
from hil.errors import ConfigError, RigError
from hil.instruments.cards import CardSlot
from hil.instruments.faultlines import FaultLines
from hil.instruments.magstripe import SWIPE_FAULTS, Magstripe
from hil.instruments.network import NetworkFaults
from hil.instruments.qrscreen import QrScreen
from hil.qr.degrade import AXES, Degradation

if TYPE_CHECKING:
    from hil.cards.profile import ProfileLibrary
    from hil.rig import Rig

#: Short names a person types for the degradation axes (``blur=3``); the long names
#: (``blur_sigma=3``) are accepted too.
AXIS_SHORT_NAMES = {
    "blur": "blur_sigma",
    "noise": "noise_sigma",
    "tilt": "tilt_deg",
    "rotation": "rotation_deg",
    "rotate": "rotation_deg",
    "occlusion": "occlusion_pct",
}

#: Each ``:`` command and its sub-commands (for completion and ``:help``).
RIG_COMMANDS: dict[str, tuple[str, ...]] = {
    ":card": ("insert", "tap", "remove"),
    ":swipe": (),
    ":fault": ("set", "clear"),
    ":qr": ("show", "blank"),
    ":net": ("blackhole", "refuse", "heal", "latency"),
}

USAGE = {
    ":card": ":card insert PROFILE | :card tap PROFILE | :card remove",
    ":swipe": ":swipe PROFILE [none|bad_lrc|partial]",
    ":fault": ":fault set LINE | :fault clear LINE | :fault",
    ":qr": ":qr show PAYLOAD [blur=N contrast=N luminance=N tilt=N rotation=N glare=N "
    "occlusion=N noise=N seed=N] | :qr blank",
    ":net": ":net blackhole | :net refuse | :net heal | :net latency MS",
}


class HandError(ConfigError):
    """A ``:`` command typed wrongly (unknown command, profile, line, axis)."""


def degradation_from_words(words: list[str]) -> Degradation:
    """``["blur=3", "contrast=0.5"]`` -> a Degradation; HandError names the bad word."""
    parts = []
    for word in words:
        name, sep, value = word.partition("=")
        if not sep:
            raise HandError(f":qr show: {word!r} is not AXIS=NUMBER (axes: {_axis_names()})")
        parts.append(f"{AXIS_SHORT_NAMES.get(name, name)}={value}")
    try:
        return Degradation.parse(", ".join(parts))
    except ValueError as e:
        raise HandError(f":qr show: {e}") from None


def _axis_names() -> str:
    return ", ".join([*AXIS_SHORT_NAMES, *AXES, "seed"])


class RigHands:
    """The ``:`` commands over one rig's built instruments."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig

    def _instrument(self, section: str, protocol: type) -> object:
        instrument = self.rig.instruments.get(section)
        if instrument is None:
            raise RigError(
                f"rig '{self.rig.name}' has no [{section}] instrument", instrument=section
            )
        if not isinstance(instrument, protocol):
            raise RigError(
                f"the [{section}] instrument does not offer {protocol.__name__}",
                instrument=section,
            )
        return instrument

    def profile_names(self) -> list[str]:
        library = self._library()
        return library.names() if library is not None else []

    def _library(self) -> ProfileLibrary | None:
        for section, protocol in (("cards", CardSlot), ("magstripe", Magstripe)):
            instrument = self.rig.instruments.get(section)
            if isinstance(instrument, protocol):
                return instrument.profiles
        return None

    def completions(self, words: list[str]) -> list[str]:
        """Candidates for the word after ``words`` (the ``:`` command typed so far)."""
        if not words:
            return list(RIG_COMMANDS)
        head = words[0]
        if len(words) == 1:
            if head == ":swipe":
                return self.profile_names()
            return list(RIG_COMMANDS.get(head, ()))
        if len(words) == 2:
            if head == ":card" and words[1] in ("insert", "tap"):
                return self.profile_names()
            if head == ":fault" and words[1] in ("set", "clear"):
                return list(FAULT_LINES)
            if head == ":swipe":
                return list(SWIPE_FAULTS)
        return []

    def run(self, line: str) -> str:
        """Do the ``:`` command on ``line``; returns what was done, in one line.

        HandError for a command typed wrongly; RigError or DutError when the
        instrument fails (both are said and the console goes on).
        """
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise HandError(f"{line.split(maxsplit=1)[0]}: {e}") from None
        head, rest = words[0], words[1:]
        actions: dict[str, Callable[[list[str]], str]] = {
            ":card": self._card,
            ":swipe": self._swipe,
            ":fault": self._fault,
            ":qr": self._qr,
            ":net": self._net,
        }
        action = actions.get(head)
        if action is None:
            raise HandError(f"unknown command {head!r} (:help lists them)")
        return action(rest)

    def _usage(self, head: str) -> HandError:
        return HandError(f"usage: {USAGE[head]}")

    def _card(self, words: list[str]) -> str:
        slot = cast(CardSlot, self._instrument("cards", CardSlot))
        if words == ["remove"]:
            slot.remove()
            return "card removed"
        if len(words) != 2 or words[0] not in ("insert", "tap"):
            raise self._usage(":card")
        profile = slot.profiles.get(words[1])
        if words[0] == "insert":
            slot.insert(profile)
            return f"card {profile.name} inserted"
        slot.tap(profile)
        return f"card {profile.name} tapped"

    def _swipe(self, words: list[str]) -> str:
        head = cast(Magstripe, self._instrument("magstripe", Magstripe))
        if len(words) not in (1, 2):
            raise self._usage(":swipe")
        fault = words[1] if len(words) == 2 else "none"
        if fault not in SWIPE_FAULTS:
            raise HandError(f":swipe: unknown fault {fault!r} (known: {', '.join(SWIPE_FAULTS)})")
        profile = head.profiles.get(words[0])
        head.swipe(profile, fault=fault)
        return f"card {profile.name} swiped" + ("" if fault == "none" else f" ({fault})")

    def _fault(self, words: list[str]) -> str:
        lines = cast(FaultLines, self._instrument("faultlines", FaultLines))
        if not words:
            state = lines.state()
            return "fault lines: " + ", ".join(
                f"{name}={'on' if on else 'off'}" for name, on in state.items()
            )
        if len(words) != 2 or words[0] not in ("set", "clear"):
            raise self._usage(":fault")
        if words[1] not in FAULT_LINES:
            raise HandError(f":fault: unknown line {words[1]!r} (known: {', '.join(FAULT_LINES)})")
        if words[0] == "set":
            lines.set(words[1])
            return f"fault line {words[1]} set"
        lines.clear(words[1])
        return f"fault line {words[1]} cleared"

    def _qr(self, words: list[str]) -> str:
        screen = cast(QrScreen, self._instrument("qr_screen", QrScreen))
        if words == ["blank"]:
            screen.blank()
            return "QR screen blank"
        if len(words) < 2 or words[0] != "show":
            raise self._usage(":qr")
        degradation = degradation_from_words(words[2:])
        screen.show(words[1], degradation)
        return f"QR screen shows {len(words[1])} characters, degradation {degradation.describe()}"

    def _net(self, words: list[str]) -> str:
        network = cast(NetworkFaults, self._instrument("network", NetworkFaults))
        if words == ["blackhole"]:
            network.blackhole()
            return "network: every packet dropped (blackhole)"
        if words == ["refuse"]:
            network.refuse()
            return "network: connections refused"
        if words == ["heal"]:
            network.heal()
            return "network: healed"
        if len(words) == 2 and words[0] == "latency":
            try:
                ms = float(words[1])
            except ValueError:
                raise HandError(f":net latency: {words[1]!r} is not a number of ms") from None
            if not 0 <= ms <= 600_000:
                raise HandError(f":net latency: {words[1]} ms is out of range (0..600000)")
            network.latency(ms)
            return f"network: {ms:g} ms latency"
        raise self._usage(":net")
