"""The terminal as scenarios see it: states (off -> booting -> idle) and domain operations.

``Terminal`` is the strategy of the design: "Given the terminal is idle" asks for a
state and this class gets there through the power instrument and the terminal's port,
waiting on the terminal's own events (never on sleeps). Everything it learns during a
boot is kept in a ``BootRecord`` so a scenario can check it independently afterwards.
Its operations (``run_item``, ``sale``, ``scan``...) return the typed results of
``hil.terminal.results``; it knows no wire format (that is the port's business).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from hil import reporting
from hil.errors import CommandTimeout, DutError, ProtocolError, RigError, TerminalCommandError
from hil.instruments.power import Power
from hil.masking import mask_text
from hil.terminal.admin import AdminAnswer, AdminPort, BiometricVerdict, LogMarks
from hil.terminal.port import KeypadPort, MalformedAnswer, TerminalEventTimeout, TerminalPort
from hil.terminal.results import (
    AppStatus,
    BootFailed,
    BootRecord,
    CardRead,
    CardReadFinished,
    ConfigValue,
    DeviceInfo,
    FirmwareUpdateStarted,
    LogEntry,
    ParameterInfo,
    PinEntry,
    ReversalStatus,
    SaleResult,
    ScanResult,
    Screen,
    SelfCheckFinished,
    SelfCheckItemResult,
    SelfCheckRun,
    SyncResult,
    SyncStatus,
    TerminalEvent,
    TerminalReady,
)

E = TypeVar("E", bound=TerminalEvent)

#: A self-check run on command blocks until its last item ends (a comm item may retry
#: its host for a while), so its answer gets this long.
SELFCHECK_TIMEOUT_S = 60.0
#: A sale or a sync waits on the host, with the terminal's own timeouts and retries.
HOST_COMMAND_TIMEOUT_S = 60.0
#: How long ``ensure_idle`` gives a terminal to answer before it power-cycles it.
STATE_QUERY_TIMEOUT_S = 2.0
#: How much of a dead terminal process's last output its error message quotes.
LAST_OUTPUT_CHARS = 200

#: The terminal process's exit status (a negative one is the signal that ended it), or
#: None while it runs; and the tail of what it printed.
ExitStatus = Callable[[], int | None]
OutputTail = Callable[[int], str]


class TerminalGone(DutError):
    """The terminal is gone: its process exited, or it stopped answering on its test
    port. Raised instead of the symptom a step would otherwise report (an event that
    never came, a command never answered), which would send a person looking at the
    wrong thing."""


def describe_exit(status: int) -> str:
    """``status 3``, or ``killed by SIGSEGV`` for a process a signal ended."""
    if status >= 0:
        return f"exited with status {status}"
    try:
        return f"was killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"was killed by signal {-status}"


class Terminal:
    """High-level control of one terminal on a rig, over any ``TerminalPort``."""

    def __init__(self, port: TerminalPort, power: Power | None, *, boot_timeout: float) -> None:
        self.port = port
        self.power = power
        self.boot_timeout = boot_timeout
        self.last_boot: BootRecord | None = None
        #: Configuration that wires the rig's channels into a terminal the rig did not
        #: start (hil/wiring.py): pushed once per session, when the terminal is first up.
        self.wiring: Mapping[str, ConfigValue] = {}
        self._wiring_applied = False
        self._exit_status: ExitStatus | None = None
        self._output_tail: OutputTail | None = None

    def watch_process(self, exit_status: ExitStatus, output_tail: OutputTail | None = None) -> None:
        """For a terminal that runs as a local process: how to learn that it died, so a
        wait or a command that fails because of it says so."""
        self._exit_status = exit_status
        self._output_tail = output_tail

    # --- is it still there? -----------------------------------------------------

    def _process_gone(self) -> str | None:
        """Why the terminal's process is not running (with its last words), or None."""
        status = self._exit_status() if self._exit_status is not None else None
        if status is None:
            return None
        why = f"the terminal process {describe_exit(status)}"
        tail = self._output_tail(LAST_OUTPUT_CHARS * 4) if self._output_tail else ""
        last = [line.strip() for line in tail.splitlines() if line.strip()][-1:]
        if last:
            why += f"; its last output: {mask_text(last[0])[:LAST_OUTPUT_CHARS]!r}"
        return why

    def _silent(self) -> str | None:
        """Why the terminal is not answering on its test port, or None if it answers."""
        try:
            self.port.device_info(timeout=STATE_QUERY_TIMEOUT_S)
        except (CommandTimeout, ProtocolError) as e:
            return f"the terminal stopped answering on its test port ({e})"
        except DutError:
            return None  # it answered, if wrongly: the original symptom stands
        return None

    @contextlib.contextmanager
    def _diagnosed(self, doing: str) -> Iterator[None]:
        """A wait or command that failed for want of an answer: if the terminal is gone,
        say that (``TerminalGone``) instead of what it failed to do."""
        try:
            yield
        except (TerminalEventTimeout, CommandTimeout, ProtocolError) as e:
            gone = self._process_gone()
            if gone is None and not (isinstance(e, CommandTimeout) and e.command == "device.info"):
                gone = self._silent()
            if gone is not None:
                raise TerminalGone(f"{gone} (while the rig {doing})") from e
            raise

    # --- states -----------------------------------------------------------------

    def power_on(self) -> BootRecord:
        """Switch on and wait until the terminal is ready (or reports a failed boot)."""
        power = self._require_power()
        cursor = self.port.mark()
        started = time.monotonic()
        power.on()
        record = self.wait_boot(cursor, started)
        if record.failure is None and self._wiring_due():
            return self.apply_wiring() or record
        return record

    def power_off(self) -> None:
        self._require_power().off()

    def power_cut(self) -> None:
        self._require_power().cut()

    def reboot(self) -> BootRecord:
        """Reboot through the terminal's port and wait for the new boot to finish."""
        cursor = self.port.mark()
        started = time.monotonic()
        with self._diagnosed("asked for a reboot"):
            self.port.reboot()
        return self.wait_boot(cursor, started)

    def ensure_idle(self) -> None:
        """Get to the idle state from wherever the terminal is, or say why not."""
        self._reach_idle()
        if self._wiring_due():
            self.apply_wiring()

    def _wiring_due(self) -> bool:
        return bool(self.wiring) and not self._wiring_applied

    def apply_wiring(self) -> BootRecord | None:
        """Push the rig's wiring over the test port (``config.set`` per key); when any
        value changed, reboot so the terminal boots with it, and return that boot.
        A key the terminal refuses is a rig fault: the rig file promised wiring by
        configuration this terminal does not offer."""
        self._wiring_applied = True
        changed: list[str] = []
        with reporting.action("wire the rig's channels by configuration", **dict(self.wiring)):
            for key, value in self.wiring.items():
                try:
                    if self.config_get(key) == value:
                        continue
                    self.config_set(key, value)
                except TerminalCommandError as e:
                    raise RigError(
                        f"wiring by configuration: the terminal refused {key} = {value!r} "
                        f"({e.code}: {e.terminal_message}); wire this channel by hand and set "
                        "dut.wiring = 'fixed' in the rig file",
                        instrument="dut",
                    ) from None
                changed.append(key)
        if not changed:
            return None
        # A terminal reads its wiring at boot, like a cable plugged in.
        record = self.reboot()
        self._require_booted(record)
        return record

    def _reach_idle(self) -> None:
        if self.power is not None and not self.power.is_on:
            self._require_booted(self.power_on())
            return
        cursor = self.port.mark()
        try:
            info = self.port.device_info(timeout=STATE_QUERY_TIMEOUT_S)
        except MalformedAnswer:
            raise  # it answers, only wrongly: a power cycle would hide that
        except DutError:
            if self.power is None:
                raise
            # Hung or mute terminal: the only way back to a known state is a power cycle.
            self.power.cut()
            self._require_booted(self.power_on())
            return
        if info.state == "idle":
            return
        if info.state == "booting":
            # sys.ready of the boot under way comes after the mark taken before asking.
            self._require_booted(self.wait_boot(cursor, time.monotonic()))
            return
        if info.state == "selfcheck":
            self._wait_selfcheck_over(cursor)
            return
        if info.state == "recovery":
            failures = self.port.find_events(BootFailed)
            why = failures[-1].describe() if failures else "no boot failure was reported"
            raise DutError(f"terminal is in recovery, not idle: boot failed: {why}")
        raise DutError(f"terminal is in state {info.state!r}, not idle")

    def _wait_selfcheck_over(self, cursor: int) -> None:
        """The terminal is running a self-check: the boot's (which ends with ready) or one
        an earlier command started (which ends with its finished event and no ready)."""

        def over(event: TerminalEvent) -> bool:
            if isinstance(event, SelfCheckFinished):
                return event.run.trigger != "boot"
            return isinstance(event, TerminalReady | BootFailed)

        try:
            end = self.port.wait_event(
                TerminalEvent, since=cursor, timeout=self.boot_timeout, where=over
            )
        except TerminalEventTimeout as e:
            raise DutError(
                f"terminal still in its self-check {self.boot_timeout:.1f} s later: {e}"
            ) from e
        if not isinstance(end, SelfCheckFinished):
            # The boot's self-check: collect its record up to ready (already arrived).
            self._require_booted(self.wait_boot(cursor, time.monotonic()))

    @staticmethod
    def _require_booted(record: BootRecord) -> None:
        if record.failure is not None:
            raise DutError(f"terminal failed to boot: {record.failure.describe()}")

    def wait_boot(self, cursor: int, started: float) -> BootRecord:
        """Collect boot events from ``cursor`` until the terminal is ready or failed."""
        deadline = started + self.boot_timeout
        position = cursor
        events: list[TerminalEvent] = []
        while True:
            try:
                event = self.port.wait_event(
                    TerminalEvent,
                    since=position,
                    timeout=max(deadline - time.monotonic(), 0.0),
                )
            except TerminalEventTimeout:
                gone = self._process_gone()
                if gone is not None:
                    raise TerminalGone(f"{gone} during its boot") from None
                if self.power is not None and not self.power.is_on:
                    raise TerminalGone("terminal died during boot (its power is off)") from None
                seen = [type(e).__name__ for e in events][-10:]
                raise DutError(
                    f"terminal not ready within {self.boot_timeout:.1f} s of power-on; saw {seen}"
                ) from None
            position = event.after
            events.append(event)
            if isinstance(event, TerminalReady | BootFailed):
                break
        record = BootRecord.from_events(started, time.monotonic() - started, events)
        self.last_boot = record
        reporting.attach_json("boot record", record.summary())
        return record

    def _require_power(self) -> Power:
        if self.power is None:
            raise RigError("this rig has no power instrument", instrument="power")
        return self.power

    # --- operations -------------------------------------------------------------

    def info(self) -> DeviceInfo:
        with self._diagnosed("asked for device info"):
            return self.port.device_info()

    def run_selfcheck(
        self, items: Sequence[str] | None = None, *, timeout: float = SELFCHECK_TIMEOUT_S
    ) -> SelfCheckRun:
        """Run these self-check items (all when None) now, on command."""
        with self._diagnosed("ran a self-check"):
            return self.port.run_selfcheck(items, timeout=timeout)

    def run_item(self, item: str, *, timeout: float = SELFCHECK_TIMEOUT_S) -> SelfCheckItemResult:
        """Run one self-check item and return its result; the terminal must report it
        exactly once."""
        run = self.run_selfcheck([item], timeout=timeout)
        results = [result for result in run.results if result.item == item]
        if len(results) != 1:
            raise DutError(f"self-check of [{item}] returned {len(results)} results for it")
        return results[0]

    def display(self) -> Screen:
        with self._diagnosed("read the display"):
            return self.port.display()

    def log(self, *, since: int = 0, limit: int = 500) -> list[LogEntry]:
        with self._diagnosed("read the system log"):
            return self.port.log(since=since, limit=limit)

    def config_get(self, key: str) -> ConfigValue:
        with self._diagnosed(f"read config '{key}'"):
            return self.port.config_get(key)

    def config_set(self, key: str, value: ConfigValue) -> ConfigValue:
        with self._diagnosed(f"set config '{key}'"):
            return self.port.config_set(key, value)

    def sale(
        self,
        amount_minor_units: int,
        *,
        entry_mode: str | None = None,
        present_ms: int | None = None,
        timeout: float = HOST_COMMAND_TIMEOUT_S,
    ) -> SaleResult:
        """A sale over the host; a refusal before anything is sent is a
        ``TerminalCommandError`` with the terminal's code. With ``entry_mode`` the
        terminal prompts for that instrument (waiting up to ``present_ms``), which the
        caller presents meanwhile (the answer's timeout grows by that wait)."""
        with self._diagnosed("asked for a sale"):
            if entry_mode is None and present_ms is None:
                return self.port.sale(amount_minor_units, timeout=timeout)
            waited = (present_ms or 0) / 1000
            return self.port.sale(
                amount_minor_units,
                entry_mode=entry_mode,
                present_ms=present_ms,
                timeout=timeout + waited,
            )

    # admin login, biometrics and log marks: offered by adapters that implement them
    # (``AdminPort``); another adapter makes these a rig error, never a terminal fault.

    def _admin_port(self) -> AdminPort:
        if not isinstance(self.port, AdminPort):
            raise RigError(
                f"{type(self.port).__name__} offers no admin login, biometric or log-mark "
                "operations",
                instrument="console",
            )
        return self.port

    def admin_login(self, password: str) -> AdminAnswer:
        with self._diagnosed("logged in as admin"):
            return self._admin_port().admin_login(password)

    def admin_set_password(self, old: str, new: str) -> AdminAnswer:
        with self._diagnosed("changed the admin password"):
            return self._admin_port().admin_set_password(old, new)

    def admin_reset(self) -> None:
        with self._diagnosed("reset the admin password"):
            self._admin_port().admin_reset()

    def biometric_enrol(self, user: str, modality: str) -> None:
        with self._diagnosed(f"enrolled a {modality}"):
            self._admin_port().biometric_enrol(user, modality)

    def biometric_verify(self, user: str, modality: str) -> BiometricVerdict:
        with self._diagnosed(f"verified a {modality}"):
            return self._admin_port().biometric_verify(user, modality)

    def log_mark(self, count: int, note: str) -> LogMarks:
        with self._diagnosed("wrote log marks"):
            return self._admin_port().log_mark(count, note)

    def reversal_status(self) -> ReversalStatus:
        with self._diagnosed("asked for the reversal status"):
            return self.port.reversal_status()

    def sync(self, *, timeout: float = HOST_COMMAND_TIMEOUT_S) -> SyncResult:
        """Download parameters and keys from the host now."""
        with self._diagnosed("asked for a data sync"):
            return self.port.sync_run(timeout=timeout)

    def sync_status(self) -> SyncStatus:
        with self._diagnosed("asked for the sync status"):
            return self.port.sync_status()

    def parameters(self) -> ParameterInfo:
        """The parameter set in force on the terminal."""
        return self.sync_status().parameters

    def scan(self, timeout_ms: int, *, max_frames: int | None = None) -> ScanResult:
        with self._diagnosed("asked for a QR scan"):
            return self.port.scan(timeout_ms, max_frames=max_frames)

    def read_card(self, timeout_ms: int) -> CardRead:
        with self._diagnosed("asked for a card read"):
            return self.port.read_card(timeout_ms)

    def start_firmware_update(
        self, file: str, *, hold_at: str | None = None
    ) -> FirmwareUpdateStarted:
        """Have the terminal install ``file`` from its update medium (events follow)."""
        with self._diagnosed(f"started a firmware update from {file}"):
            return self.port.start_firmware_update(file, hold_at=hold_at)

    def app_status(self) -> AppStatus:
        with self._diagnosed("asked for the payment application's status"):
            return self.port.app_status()

    def pin_entry(self, timeout_ms: int) -> PinEntry:
        """Ask the cardholder for a PIN (keys come from the rig's keypad meanwhile)."""
        if not isinstance(self.port, KeypadPort):
            raise RigError("this terminal's port offers no PIN entry", instrument="console")
        with self._diagnosed("asked for a PIN"):
            return self.port.pin_entry(timeout_ms)

    # --- events -----------------------------------------------------------------

    def mark(self) -> int:
        """A cursor to wait from: take it before provoking what you wait for."""
        return self.port.mark()

    def wait_event(
        self,
        kind: type[E],
        *,
        since: int,
        timeout: float,
        where: Callable[[E], bool] | None = None,
    ) -> E:
        with self._diagnosed(f"waited for {kind.__name__}"):
            return self.port.wait_event(kind, since=since, timeout=timeout, where=where)

    def find_events(self, kind: type[E], *, since: int = 0) -> list[E]:
        return self.port.find_events(kind, since=since)

    def wait_card_read(self, *, since: int, timeout: float) -> CardReadFinished:
        """The first card read that ended at or after cursor ``since``."""
        with self._diagnosed("waited for a card read"):
            return self.port.wait_event(CardReadFinished, since=since, timeout=timeout)
