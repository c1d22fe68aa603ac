"""What a terminal tells the rig, as typed values: command results and domain events.

A terminal adapter (``hil.terminal.testport`` for pos-hil's test port, or a vendor's
console driver speaking its own protocol) turns the terminal's answers into these
frozen dataclasses; steps and the ``Terminal`` strategy read nothing else. Field names
follow the domain (docs/test-port-protocol.md describes them), not any wire format.
Only ``details`` of a self-check item stays free-form: each item documents its own.

Events carry ``received_at`` (``time.monotonic()`` on the rig when the event
arrived), so a step can time what the terminal did, and ``position``, the cursor
value of the event in the adapter's event log (wait again from ``after`` to get the
next one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

ItemStatus = Literal["pass", "warn", "fail"]
ITEM_STATUSES: tuple[ItemStatus, ...] = ("pass", "warn", "fail")
SaleOutcome = Literal["approved", "declined", "failed"]
SALE_OUTCOMES: tuple[SaleOutcome, ...] = ("approved", "declined", "failed")
#: A configuration value: what a terminal stores under a configuration key.
ConfigValue: TypeAlias = str | int | float | bool | None

#: ``code`` of a result that reports no problem (an item that passed, a card read).
OK = "OK"


def as_report(value: object) -> Any:
    """A result or event as plain data for a report attachment (JSON-ready)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


# --- command results --------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """Who the terminal says it is and what state it is in."""

    model: str
    serial_number: str
    terminal_id: str
    merchant_id: str
    #: None when the terminal has no parseable firmware image
    firmware_version: str | None
    firmware_sha256: str | None
    protocol_version: int
    #: power_on, reboot or power_loss
    boot_reason: str
    uptime_ms: int
    #: booting, selfcheck, idle, recovery or shutdown
    state: str
    #: extensions a terminal may leave out
    firmware_verified: bool | None = None
    firmware_build: str | None = None
    boot_count: int | None = None
    #: the firmware slot the terminal booted from (A/B update), if it reports one
    firmware_slot: str | None = None


@dataclass(frozen=True)
class SelfCheckItemResult:
    """One self-check item's verdict: ``code`` is ``OK`` for a pass."""

    item: str
    status: ItemStatus
    code: str
    message: str
    duration_ms: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def describe(self) -> str:
        return f"{self.item}: {self.status} {self.code}: {self.message}"


@dataclass(frozen=True)
class SelfCheckRun:
    """One self-check run (at boot or on command) and its item results, in run order."""

    #: boot or command (None: no run since boot)
    trigger: str | None
    passed: int
    warned: int
    failed: int
    duration_ms: float
    results: tuple[SelfCheckItemResult, ...]

    def result(self, item: str) -> SelfCheckItemResult | None:
        for result in self.results:
            if result.item == item:
                return result
        return None


@dataclass(frozen=True)
class Screen:
    """What the terminal's display shows: a screen id and its text lines."""

    screen: str
    lines: tuple[str, ...]
    #: display changes since this boot (None when the terminal does not count them)
    changed_seq: int | None = None
    #: the reader LED: off, green, red, blue or amber (None when not reported)
    reader_led: str | None = None

    def shows(self, *words: str) -> bool:
        """True when every one of ``words`` appears somewhere in the lines."""
        text = " ".join(self.lines)
        return all(word in text for word in words)


@dataclass(frozen=True)
class PinEntry:
    """A PIN the terminal took: how many digits, never which."""

    entered: bool
    digits: int


@dataclass(frozen=True)
class LogEntry:
    """One entry of the terminal's system log (messages are PAN-masked by the terminal)."""

    seq: int
    ts_ms: int
    #: info, warn or error
    level: str
    code: str
    message: str


@dataclass(frozen=True)
class SaleReversal:
    """What became of the reversal a sale may need."""

    #: none, acknowledged or pending
    state: str
    attempts: int | None = None


@dataclass(frozen=True)
class SaleResult:
    """A sale over the host: approved or declined by the host, or failed on the way."""

    outcome: SaleOutcome
    #: system trace audit number of the sale
    stan: str
    #: minor units
    amount: int
    #: masked PAN of the card used
    card: str | None
    reversal: SaleReversal
    response_code: str | None = None
    rrn: str | None = None
    auth_code: str | None = None
    rtt_ms: float | None = None
    #: a failed sale's comm code and why
    code: str | None = None
    reason: str | None = None
    #: how the instrument was presented: chip, contactless or qr (None: not reported)
    entry_mode: str | None = None
    #: the wallet of a QR sale's payment code
    wallet: str | None = None

    def describe(self) -> str:
        if self.outcome == "failed":
            return f"sale {self.stan} failed {self.code}: {self.reason}"
        return f"sale {self.stan} {self.outcome} ({self.response_code})"


@dataclass(frozen=True)
class ReversalStatus:
    """Whether the terminal still owes the host a reversal, and of which sale."""

    pending: bool
    stan: str | None = None
    amount: int | None = None
    state: str | None = None
    attempts: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class SyncResult:
    """A parameter and key download: ``code`` is ``OK`` or a data_sync code."""

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def passed(self) -> bool:
        return self.code == OK


@dataclass(frozen=True)
class ParameterInfo:
    """The parameter set in force on the terminal (all None before the first sync)."""

    version: str | None
    digest: str | None
    synced_at: str | None


@dataclass(frozen=True)
class SyncStatus:
    """The terminal's parameters, key check values and the last sync's outcome."""

    parameters: ParameterInfo
    #: key name -> check value (hex)
    keys: Mapping[str, str] = field(hash=False)
    last_sync: SyncResult | None


@dataclass(frozen=True)
class DecodedCode:
    """A QR code the scanner read."""

    payload: str
    #: emv_mpm, wallet or text
    kind: str
    #: wechat, alipay or unionpay for a wallet code
    wallet: str | None
    #: an EMVCo merchant code's top-level ID -> value
    fields: Mapping[str, str] | None = field(hash=False)
    decode_ms: float
    scan_ms: float
    frames: int
    frame_seq: int


@dataclass(frozen=True)
class ScanResult:
    """A QR scan: ``code`` is ``OK`` with ``decoded`` set, or the reason nothing was read.

    A scan that read nothing or rejected the code (``E_QR_NO_CODE``, ``E_QR_CRC``,
    ``E_QR_FORMAT``, ``E_CAMERA_ABSENT``) is a result, not an exception.
    """

    code: str
    message: str
    decoded: DecodedCode | None = None


@dataclass(frozen=True)
class CardRead:
    """A card read: ``ok`` and ``code`` ``OK``, or the card code that stopped it.

    ``pan`` is masked (first six, last four) by the terminal; track data and PIN
    blocks are never part of it.
    """

    ok: bool
    code: str
    message: str
    #: chip, contactless or magstripe
    entry_mode: str
    reader: str
    pan: str | None = None
    expiry: str | None = None
    service_code: str | None = None
    pan_sequence: str | None = None
    aid: str | None = None
    label: str | None = None
    aip: str | None = None
    #: ARQC, TC or AAC
    cryptogram: str | None = None
    atc: int | None = None
    #: online, approved, declined or error
    outcome: str | None = None
    pin_try_counter: int | None = None
    apdus: int | None = None
    duration_ms: float | None = None


# --- events -----------------------------------------------------------------------


# --- firmware update and the payment application's watchdog ----------------------


@dataclass(frozen=True)
class FirmwareUpdateStarted:
    """The terminal took an update from its update medium; phase events follow."""

    file: str
    size: int
    from_version: str | None


@dataclass(frozen=True)
class AppStatus:
    """The payment application as its watchdog sees it."""

    #: running, restarting or stopped
    state: str
    #: restarts since this boot
    restarts: int
    last_fault: str | None
    watchdog_timeout_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class TerminalEvent:
    """Something the terminal reported on its own. Subclasses say what."""

    received_at: float
    position: int

    @property
    def after(self) -> int:
        """The cursor just past this event: wait from here for the next one."""
        return self.position + 1


@dataclass(frozen=True, kw_only=True)
class BootStarted(TerminalEvent):
    """The firmware verified and the OS is up; the self-check follows."""

    reason: str
    firmware_version: str | None
    model: str | None


@dataclass(frozen=True, kw_only=True)
class BootFailed(TerminalEvent):
    """The firmware image is missing or invalid; the terminal stays in recovery."""

    code: str
    message: str
    reason: str | None

    def describe(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class SelfCheckStarted(TerminalEvent):
    trigger: str
    items: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ItemChecked(TerminalEvent):
    """One item of a running self-check finished."""

    result: SelfCheckItemResult


@dataclass(frozen=True, kw_only=True)
class SelfCheckFinished(TerminalEvent):
    run: SelfCheckRun


@dataclass(frozen=True, kw_only=True)
class TerminalReady(TerminalEvent):
    """The boot self-check is over and the idle screen shows; every command is open."""


@dataclass(frozen=True, kw_only=True)
class ScreenChanged(TerminalEvent):
    screen: Screen


@dataclass(frozen=True, kw_only=True)
class CardPresented(TerminalEvent):
    """A card arrived (inserted, tapped, swiped) while idle; the read starts."""

    entry_mode: str
    reader: str


@dataclass(frozen=True, kw_only=True)
class CardReadFinished(TerminalEvent):
    """A card read ended, successfully or not."""

    read: CardRead


@dataclass(frozen=True, kw_only=True)
class CardRemoved(TerminalEvent):
    entry_mode: str
    reader: str


@dataclass(frozen=True, kw_only=True)
class ReversalAcknowledged(TerminalEvent):
    """The host acknowledged a pending reversal; the terminal no longer owes it."""

    stan: str
    attempts: int
    response_code: str


# --- what one boot showed ---------------------------------------------------------


@dataclass(frozen=True)
class BootRecord:
    """What one boot showed, from power-on (or reboot) to ready or failure."""

    started_at: float
    duration_s: float
    boot: BootStarted | None = None
    failure: BootFailed | None = None
    selfcheck_started: SelfCheckStarted | None = None
    items: tuple[SelfCheckItemResult, ...] = ()
    selfcheck: SelfCheckRun | None = None
    ready: TerminalReady | None = None
    screens: tuple[Screen, ...] = ()

    @classmethod
    def from_events(
        cls, started_at: float, duration_s: float, events: list[TerminalEvent]
    ) -> BootRecord:
        """The record of the boot events in ``events`` (others are left out)."""

        def last(kind: type[Any]) -> Any:
            found = [event for event in events if isinstance(event, kind)]
            return found[-1] if found else None

        finished: SelfCheckFinished | None = last(SelfCheckFinished)
        return cls(
            started_at=started_at,
            duration_s=duration_s,
            boot=last(BootStarted),
            failure=last(BootFailed),
            selfcheck_started=last(SelfCheckStarted),
            items=tuple(e.result for e in events if isinstance(e, ItemChecked)),
            selfcheck=None if finished is None else finished.run,
            ready=last(TerminalReady),
            screens=tuple(e.screen for e in events if isinstance(e, ScreenChanged)),
        )

    @property
    def boot_reason(self) -> str | None:
        return None if self.boot is None else self.boot.reason

    @property
    def item_names(self) -> list[str]:
        return [result.item for result in self.items]

    def item(self, name: str) -> SelfCheckItemResult | None:
        for result in self.items:
            if result.item == name:
                return result
        return None

    def summary(self) -> dict[str, Any]:
        """The record as plain data for the report."""
        failed = self.failure
        return {
            "boot_reason": self.boot_reason,
            "boot_failed": None
            if failed is None
            else {"code": failed.code, "message": failed.message, "reason": failed.reason},
            "duration_s": round(self.duration_s, 3),
            "items": [as_report(result) for result in self.items],
            "screens": [screen.screen for screen in self.screens],
        }


@dataclass(frozen=True, kw_only=True)
class FirmwareUpdateProgress(TerminalEvent):
    """An update entered a phase (downloading, verifying, writing, switching), or is
    ``held`` at that phase's documented hold point (the rig asked it to stop there)."""

    phase: str
    held: bool
    file: str


@dataclass(frozen=True, kw_only=True)
class FirmwareUpdateFinished(TerminalEvent):
    """The new image is written and selected; the terminal reboots into it."""

    version: str
    sha256: str
    slot: str


@dataclass(frozen=True, kw_only=True)
class FirmwareUpdateFailed(TerminalEvent):
    """The terminal refused the update; the running image is untouched."""

    code: str
    message: str
    phase: str
    version: str | None

    def describe(self) -> str:
        return f"{self.code} while {self.phase}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class AppFault(TerminalEvent):
    """The watchdog found the payment application crashed or hung."""

    code: str
    silent_ms: int


@dataclass(frozen=True, kw_only=True)
class AppRestarted(TerminalEvent):
    """The watchdog restarted the payment application after a fault."""

    code: str
    restarts: int
    down_ms: int
