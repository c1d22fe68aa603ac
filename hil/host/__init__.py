"""The acquirer host simulator: ISO 8583 over TCP (pyiso8583), recording every message.

``HostSimulator`` runs the host; ``hil.host.iso8583`` is the wire format both the host
and the simulated terminal speak; ``hil.host.downloads`` the parameter and key
download rules; ``hil.host.registry`` the TID-to-device bindings. See docs/host.md.
"""

from __future__ import annotations

from hil.host.downloads import KeySet, ParameterSet, load_key_set, load_parameter_set
from hil.host.records import MessageRecord
from hil.host.registry import TerminalRegistry
from hil.host.simulator import TRANSACTIONS, Behaviour, HostSimulator

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
