"""What every rig instrument offers the rig, whatever its kind.

Each instrument kind has its own Protocol for steps (``CardSlot``, ``QrScreen``...);
this one is the rig's view: put back after a scenario, answer a preflight, close.
Builders turn a rig-file section into an instrument plus the channels it wires into
the terminal (passed to a process terminal in ``HIL_CHANNELS``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hil.rig import Rig


@runtime_checkable
class RigInstrument(Protocol):
    """The rig's handle on one instrument."""

    name: str

    def put_back(self) -> None:
        """Return to the known state after a scenario (card out, screen blank...)."""

    def preflight(self) -> str:
        """One line saying the instrument answers; raise a HilError if it does not."""

    def close(self) -> None:
        """Release everything; must not raise."""


@dataclass
class Built:
    """What a builder returns: the instrument and the channels it wires."""

    instrument: RigInstrument
    channels: Mapping[str, str] = field(default_factory=dict)


#: section name in the rig file -> builder(rig, section config) -> Built
Builder = Callable[["Rig", Any], Built]

#: Sections are built in this order, so later ones may use earlier ones
#: (the network fault proxy sits in front of the host simulator).
BUILD_ORDER: list[str] = []
BUILDERS: dict[str, Builder] = {}


def register_builder(section: str, builder: Builder) -> None:
    """Make rig-file section ``section`` build an instrument with ``builder``."""
    if section not in BUILDERS:
        BUILD_ORDER.append(section)
    BUILDERS[section] = builder
