"""The acquirer host simulator: ISO 8583 over TCP (pyiso8583), recording every message.

``HostSimulator`` runs the host; ``hil.host.iso8583`` is the wire format both the host
and the simulated terminal speak; ``hil.host.downloads`` the parameter and key
download rules; ``hil.host.registry`` the TID-to-device bindings. See docs/host.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hil.host.downloads import KeySet, ParameterSet, load_key_set, load_parameter_set
from hil.host.records import MessageRecord
from hil.host.registry import TerminalRegistry

if TYPE_CHECKING:
    from hil.host.simulator import TRANSACTIONS, Behaviour, HostSimulator

_SIMULATOR_NAMES = ("TRANSACTIONS", "Behaviour", "HostSimulator")


def __getattr__(name: str) -> Any:
    # The simulator (asyncio, its server) loads when a rig asks for it: the sim terminal
    # imports this package for the wire format and the download rules only, at every
    # power-on (about 16 ms of CPU each).
    if name in _SIMULATOR_NAMES:
        from hil.host import simulator

        return getattr(simulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TRANSACTIONS",
    "Behaviour",
    "HostSimulator",
    "KeySet",
    "MessageRecord",
    "ParameterSet",
    "TerminalRegistry",
    "load_key_set",
    "load_parameter_set",
]
