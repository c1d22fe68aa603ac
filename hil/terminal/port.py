"""``TerminalPort``: what a terminal adapter offers the rig, whatever its wire protocol.

pos-hil's own test port is one adapter (``hil.terminal.testport.TestPortAdapter``). A
terminal that speaks another protocol needs one class implementing this Protocol,
returned by its console driver; ``Terminal`` and every step then work unchanged
(docs/terminal-api.md). Commands return the typed results of ``hil.terminal.results``;
a command the terminal refuses raises ``hil.errors.TerminalCommandError`` with its
code, an answer the adapter cannot read raises ``MalformedAnswer`` (a ``DutError``).

Events are read through cursors: take ``mark()`` *before* provoking something, then
``wait_event`` from it, so an event that arrives early is not missed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from hil.errors import DutError
from hil.terminal.results import (
    AppStatus,
    CardRead,
    ConfigValue,
    DeviceInfo,
    FirmwareUpdateStarted,
    LogEntry,
    PinEntry,
    ReversalStatus,
    SaleResult,
    ScanResult,
    Screen,
    SelfCheckRun,
    SyncResult,
    SyncStatus,
    TerminalEvent,
)

E = TypeVar("E", bound=TerminalEvent)


class MalformedAnswer(DutError):
    """The terminal answered, but not in a shape the protocol allows (a field missing or
    of the wrong type). The message names the command (or event) and the field."""


class TerminalEventTimeout(DutError):
    """An expected event did not come in time. ``arrived`` names what came instead."""

    def __init__(self, message: str, *, event: str, arrived: list[str]) -> None:
        super().__init__(message)
        self.event = event
        self.arrived = arrived


@runtime_checkable
class TerminalPort(Protocol):
    """The operations and events of one terminal. ``timeout`` is seconds; None means
    the adapter's default for that command."""

    def device_info(self, *, timeout: float | None = None) -> DeviceInfo: ...

    def run_selfcheck(
        self, items: Sequence[str] | None = None, *, timeout: float | None = None
    ) -> SelfCheckRun:
        """Run these items (all when None) and return when the run is over."""

    def config_get(self, key: str) -> ConfigValue: ...

    def config_set(self, key: str, value: ConfigValue) -> ConfigValue:
        """Store ``value`` under ``key``; returns the value the terminal stored."""

    def display(self) -> Screen: ...

    def log(self, *, since: int = 0, limit: int = 500) -> list[LogEntry]:
        """System log entries with sequence number ``since`` or later, oldest first."""

    def reboot(self) -> None:
        """Ask for a reboot; returns once the terminal accepted (the boot follows)."""

    def sale(
        self,
        amount_minor_units: int,
        *,
        entry_mode: str | None = None,
        present_ms: int | None = None,
        timeout: float | None = None,
    ) -> SaleResult:
        """A sale over the host. ``entry_mode`` None: the terminal's own test card; else
        ``chip``, ``contactless`` or ``qr``: the terminal prompts and waits up to
        ``present_ms`` for the card (or scans the code) the rig presents."""

    def reversal_status(self) -> ReversalStatus: ...

    def sync_run(self, *, timeout: float | None = None) -> SyncResult:
        """Download parameters and keys from the host now."""

    def sync_status(self) -> SyncStatus: ...

    def scan(self, timeout_ms: int, *, max_frames: int | None = None) -> ScanResult:
        """Scan for a QR code for at most ``timeout_ms`` (or ``max_frames`` frames)."""

    def read_card(self, timeout_ms: int) -> CardRead:
        """Prompt for a card and return the next read that ends within ``timeout_ms``."""

    def start_firmware_update(
        self, file: str, *, hold_at: str | None = None
    ) -> FirmwareUpdateStarted:
        """Install the image named ``file`` from the update medium. Returns once the
        update started; its phases and outcome come as events. ``hold_at`` (a test hook)
        stops it at that phase's documented hold point until the power goes."""

    def app_status(self) -> AppStatus:
        """The payment application and its watchdog: state, restarts since boot."""

    def mark(self) -> int:
        """A cursor: events after this call are at or beyond it."""

    def wait_event(
        self,
        kind: type[E],
        *,
        since: int,
        timeout: float,
        where: Callable[[E], bool] | None = None,
    ) -> E:
        """The first event of type ``kind`` (a subclass counts; ``TerminalEvent`` is any
        event) at or after cursor ``since`` that satisfies ``where``. Raises
        ``TerminalEventTimeout`` after ``timeout`` seconds."""

    def find_events(self, kind: type[E], *, since: int = 0) -> list[E]:
        """Every event of type ``kind`` that arrived at or after cursor ``since``."""


@runtime_checkable
class KeypadPort(Protocol):
    """A terminal port that also offers its keypad and PIN entry (pos-hil's test port
    does: ``keypad.press``, ``pin.enter``). Apart from ``TerminalPort`` so a vendor
    adapter without them still is a ``TerminalPort``."""

    def pin_entry(self, timeout_ms: int) -> PinEntry:
        """Ask for a PIN and wait (at most ``timeout_ms``) until it is entered; the
        answer holds the number of digits only. Cancelled or timed out: the terminal
        refuses with E_PIN_CANCELLED or E_PIN_TIMEOUT (``TerminalCommandError``)."""

    def press_keys(self, keys: Sequence[str]) -> int:
        """Press keys (0-9, enter, clear, cancel); returns how many were taken."""
