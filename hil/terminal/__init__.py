"""The terminal domain API: typed operations and events over any terminal protocol.

- ``hil.terminal.results``: what a terminal reports, as frozen dataclasses.
- ``hil.terminal.port``: ``TerminalPort``, the Protocol a terminal adapter implements.
- ``hil.terminal.testport``: ``TestPortAdapter``, that Protocol over pos-hil's test port.
- ``hil.terminal.strategy``: ``Terminal``, states (off, booting, idle) and operations.

Steps use ``Terminal`` and never a wire command; a terminal speaking another protocol
plugs in with one class implementing ``TerminalPort`` (docs/terminal-api.md).
"""

from __future__ import annotations

from hil.instruments.console import Console
from hil.terminal.port import MalformedAnswer, TerminalEventTimeout, TerminalPort
from hil.terminal.results import (
    AppFault,
    AppRestarted,
    AppStatus,
    BootFailed,
    BootRecord,
    BootStarted,
    CardPresented,
    CardRead,
    CardReadFinished,
    CardRemoved,
    ConfigValue,
    DecodedCode,
    DeviceInfo,
    FirmwareUpdateFailed,
    FirmwareUpdateFinished,
    FirmwareUpdateProgress,
    FirmwareUpdateStarted,
    ItemChecked,
    ItemStatus,
    LogEntry,
    ParameterInfo,
    PinEntry,
    ReversalAcknowledged,
    ReversalStatus,
    SaleResult,
    SaleReversal,
    ScanResult,
    Screen,
    ScreenChanged,
    SelfCheckFinished,
    SelfCheckItemResult,
    SelfCheckRun,
    SelfCheckStarted,
    SyncResult,
    SyncStatus,
    TerminalEvent,
    TerminalReady,
    as_report,
)
from hil.terminal.strategy import Terminal, TerminalGone
from hil.terminal.testport import TestPortAdapter


def port_for(console: object) -> TerminalPort:
    """The ``TerminalPort`` of a console instrument.

    A console driver whose terminal speaks its own protocol implements ``TerminalPort``
    itself and is returned as is; any other console speaks pos-hil's test port.
    """
    if isinstance(console, TerminalPort):
        return console
    if not isinstance(console, Console):
        raise TypeError(
            f"{type(console).__name__} is neither a TerminalPort nor a test-port Console"
        )
    return TestPortAdapter(console)


__all__ = [
    "AppFault",
    "AppRestarted",
    "AppStatus",
    "BootFailed",
    "BootRecord",
    "BootStarted",
    "CardPresented",
    "CardRead",
    "CardReadFinished",
    "CardRemoved",
    "ConfigValue",
    "DecodedCode",
    "DeviceInfo",
    "FirmwareUpdateFailed",
    "FirmwareUpdateFinished",
    "FirmwareUpdateProgress",
    "FirmwareUpdateStarted",
    "ItemChecked",
    "ItemStatus",
    "LogEntry",
    "MalformedAnswer",
    "ParameterInfo",
    "PinEntry",
    "ReversalAcknowledged",
    "ReversalStatus",
    "SaleResult",
    "SaleReversal",
    "ScanResult",
    "Screen",
    "ScreenChanged",
    "SelfCheckFinished",
    "SelfCheckItemResult",
    "SelfCheckRun",
    "SelfCheckStarted",
    "SyncResult",
    "SyncStatus",
    "Terminal",
    "TerminalEvent",
    "TerminalEventTimeout",
    "TerminalGone",
    "TerminalPort",
    "TerminalReady",
    "TestPortAdapter",
    "as_report",
    "port_for",
]
