"""``TestPortAdapter``: ``TerminalPort`` over pos-hil's test-port protocol v1.

The only module that knows the protocol's command names, event names and reply
fields (docs/test-port-protocol.md, "Commands, events and error codes"). It sends
requests through a ``Console`` (which keeps the wire transcript) and reads each reply
into its typed result. A reply that lacks a field or holds the wrong type is the
terminal's fault: ``MalformedAnswer`` (a ``DutError``) naming the command (or event)
and the field, never a KeyError or TypeError from deep inside a step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from hil.errors import DutError, TerminalCommandError
from hil.instruments.console import Console
from hil.masking import mask_text
from hil.protocol.framing import Broken, Frame, FrameDecoder, NotAFrame, Skipped
from hil.protocol.session import Event, EventTimeout
from hil.terminal.admin import AdminAnswer, BiometricVerdict, LogMarks
from hil.terminal.leaks import Leak, leaks_in_data, leaks_in_text
from hil.terminal.port import MalformedAnswer, TerminalEventTimeout
from hil.terminal.results import (
    ITEM_STATUSES,
    OK,
    SALE_OUTCOMES,
    AppFault,
    AppRestarted,
    AppStatus,
    BootFailed,
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
    SaleOutcome,
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
)

E = TypeVar("E", bound=TerminalEvent)
T = TypeVar("T")

#: ``scanner.scan`` blocks for its own timeout; the answer may take this much longer
#: (test-port round trips, the last frame's decode).
SCAN_ANSWER_MARGIN_S = 5.0
#: Refusals of ``scanner.scan`` that say what the scanner saw: results, not errors.
SCAN_OUTCOME_CODES = frozenset({"E_QR_NO_CODE", "E_QR_CRC", "E_QR_FORMAT", "E_CAMERA_ABSENT"})
#: ``card.read`` blocks for its own timeout; the answer may take this much longer.
CARD_READ_ANSWER_MARGIN_S = 2.0
#: Log entries the leak scan reads a page at a time.
LOG_SCAN_PAGE = 500
#: How much of a malformed value an error message shows.
SHOWN_VALUE_CHARS = 60


class _Fields:
    """Typed access to one JSON object of a reply or event; errors name where and what."""

    def __init__(self, where: str, data: object, path: str = "") -> None:
        if not isinstance(data, Mapping):
            what = f"field '{path}'" if path else "the result"
            raise MalformedAnswer(f"{where}: {what} must be an object, got {_shown(data)}")
        self.where = where
        self.data: Mapping[str, Any] = data
        self.path = path

    def _name(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def _bad(self, name: str, wanted: str) -> MalformedAnswer:
        if name not in self.data:
            return MalformedAnswer(f"{self.where}: field '{self._name(name)}' is missing")
        return MalformedAnswer(
            f"{self.where}: field '{self._name(name)}' must be {wanted}, "
            f"got {_shown(self.data[name])}"
        )

    def _get(self, name: str, check: Callable[[object], bool], wanted: str, optional: bool) -> Any:
        if optional and self.data.get(name) is None:
            return None
        value = self.data.get(name)
        if name not in self.data or not check(value):
            raise self._bad(name, wanted)
        return value

    def text(self, name: str) -> str:
        return cast(str, self._get(name, _is_text, "a string", False))

    def text_or_none(self, name: str) -> str | None:
        return cast(str | None, self._get(name, _is_text, "a string or null", True))

    def integer(self, name: str) -> int:
        return cast(int, self._get(name, _is_integer, "an integer", False))

    def integer_or_none(self, name: str) -> int | None:
        return cast(int | None, self._get(name, _is_integer, "an integer or null", True))

    def number(self, name: str) -> float:
        return float(self._get(name, _is_number, "a number", False))

    def number_or_none(self, name: str) -> float | None:
        value = self._get(name, _is_number, "a number or null", True)
        return None if value is None else float(value)

    def boolean(self, name: str) -> bool:
        return cast(bool, self._get(name, _is_boolean, "true or false", False))

    def boolean_or_none(self, name: str) -> bool | None:
        return cast(bool | None, self._get(name, _is_boolean, "true, false or null", True))

    def choice(self, name: str, allowed: Sequence[T]) -> T:
        value = self.data.get(name)
        if name not in self.data or value not in allowed:
            raise self._bad(name, "one of " + ", ".join(str(a) for a in allowed))
        return cast(T, value)

    def scalar(self, name: str) -> ConfigValue:
        return cast(
            ConfigValue, self._get(name, _is_scalar, "a string, number, bool or null", False)
        )

    def texts(self, name: str) -> tuple[str, ...]:
        value = self._get(name, _is_text_list, "a list of strings", False)
        return tuple(cast(list[str], value))

    def obj(self, name: str) -> _Fields:
        if name not in self.data:
            raise self._bad(name, "an object")
        return _Fields(self.where, self.data[name], self._name(name))

    def obj_or_none(self, name: str) -> _Fields | None:
        return None if self.data.get(name) is None else self.obj(name)

    def objects(self, name: str) -> list[_Fields]:
        value = self._get(name, lambda v: isinstance(v, list), "a list of objects", False)
        return [
            _Fields(self.where, entry, f"{self._name(name)}[{index}]")
            for index, entry in enumerate(cast(list[object], value))
        ]

    def free_form(self, name: str) -> dict[str, Any]:
        """A documented free-form object (absent or null reads as empty)."""
        if self.data.get(name) is None:
            return {}
        return dict(self.obj(name).data)

    def text_map(self, name: str) -> dict[str, str] | None:
        """An object of strings (null reads as None)."""
        nested = self.obj_or_none(name)
        if nested is None:
            return None
        return {key: nested.text(key) for key in nested.data}


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_boolean(value: object) -> bool:
    return isinstance(value, bool)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _shown(value: object) -> str:
    """A malformed value for an error message: short, and never a full PAN."""
    text = mask_text(repr(value))
    if len(text) > SHOWN_VALUE_CHARS:
        text = text[:SHOWN_VALUE_CHARS] + "..."
    return f"{type(value).__name__} {text}"


def _reply(command: str) -> str:
    return f"terminal's answer to '{command}'"


# --- replies and event data -> results ----------------------------------------------


def _item_result(fields: _Fields) -> SelfCheckItemResult:
    status: ItemStatus = fields.choice("status", ITEM_STATUSES)
    return SelfCheckItemResult(
        item=fields.text("item"),
        status=status,
        code=fields.text("code"),
        message=fields.text("message"),
        duration_ms=fields.number_or_none("duration_ms"),
        details=fields.free_form("details"),
    )


def _selfcheck_run(fields: _Fields) -> SelfCheckRun:
    return SelfCheckRun(
        trigger=fields.text_or_none("trigger"),
        passed=fields.integer("passed"),
        warned=fields.integer("warned"),
        failed=fields.integer("failed"),
        duration_ms=fields.number("duration_ms"),
        results=tuple(_item_result(entry) for entry in fields.objects("results")),
    )


def _screen(fields: _Fields) -> Screen:
    leds = fields.obj_or_none("leds")
    return Screen(
        screen=fields.text("screen"),
        lines=fields.texts("lines"),
        changed_seq=fields.integer_or_none("changed_seq"),
        reader_led=leds.text_or_none("reader") if leds is not None else None,
    )


def _card_read(fields: _Fields) -> CardRead:
    return CardRead(
        ok=fields.boolean("ok"),
        code=fields.text("code"),
        message=fields.text("message"),
        entry_mode=fields.text("entry_mode"),
        reader=fields.text("reader"),
        pan=fields.text_or_none("pan"),
        expiry=fields.text_or_none("expiry"),
        service_code=fields.text_or_none("service_code"),
        pan_sequence=fields.text_or_none("pan_sequence"),
        aid=fields.text_or_none("aid"),
        label=fields.text_or_none("label"),
        aip=fields.text_or_none("aip"),
        cryptogram=fields.text_or_none("cryptogram"),
        atc=fields.integer_or_none("atc"),
        outcome=fields.text_or_none("outcome"),
        pin_try_counter=fields.integer_or_none("pin_try_counter"),
        apdus=fields.integer_or_none("apdus"),
        duration_ms=fields.number_or_none("duration_ms"),
    )


def _sale(fields: _Fields) -> SaleResult:
    outcome: SaleOutcome = fields.choice("outcome", SALE_OUTCOMES)
    reversal = fields.obj("reversal")
    return SaleResult(
        outcome=outcome,
        stan=fields.text("stan"),
        amount=fields.integer("amount"),
        card=fields.text_or_none("card"),
        reversal=SaleReversal(
            state=reversal.text("state"), attempts=reversal.integer_or_none("attempts")
        ),
        response_code=fields.text_or_none("response_code"),
        rrn=fields.text_or_none("rrn"),
        auth_code=fields.text_or_none("auth_code"),
        rtt_ms=fields.number_or_none("rtt_ms"),
        code=fields.text_or_none("code"),
        reason=fields.text_or_none("reason"),
        entry_mode=fields.text_or_none("entry_mode"),
        wallet=fields.text_or_none("wallet"),
    )


def _decoded(fields: _Fields) -> DecodedCode:
    return DecodedCode(
        payload=fields.text("payload"),
        kind=fields.text("kind"),
        wallet=fields.text_or_none("wallet"),
        fields=fields.text_map("fields"),
        decode_ms=fields.number("decode_ms"),
        scan_ms=fields.number("scan_ms"),
        frames=fields.integer("frames"),
        frame_seq=fields.integer("frame_seq"),
    )


# Each event's data parser; received_at and position are filled in from the log entry.
_EVENTS: dict[str, tuple[type[TerminalEvent], Callable[[_Fields], dict[str, Any]]]] = {
    "sys.boot": (
        BootStarted,
        lambda f: {
            "reason": f.text("boot_reason"),
            "firmware_version": f.text_or_none("firmware_version"),
            "model": f.text_or_none("model"),
        },
    ),
    "sys.boot_failed": (
        BootFailed,
        lambda f: {
            "code": f.text("code"),
            "message": f.text("message"),
            "reason": f.text_or_none("boot_reason"),
        },
    ),
    "selfcheck.started": (
        SelfCheckStarted,
        lambda f: {"trigger": f.text("trigger"), "items": f.texts("items")},
    ),
    "selfcheck.item": (ItemChecked, lambda f: {"result": _item_result(f)}),
    "selfcheck.finished": (SelfCheckFinished, lambda f: {"run": _selfcheck_run(f)}),
    "sys.ready": (TerminalReady, lambda f: {}),
    "display.changed": (ScreenChanged, lambda f: {"screen": _screen(f)}),
    "card.presented": (
        CardPresented,
        lambda f: {"entry_mode": f.text("entry_mode"), "reader": f.text("reader")},
    ),
    "card.read": (CardReadFinished, lambda f: {"read": _card_read(f)}),
    "card.removed": (
        CardRemoved,
        lambda f: {"entry_mode": f.text("entry_mode"), "reader": f.text("reader")},
    ),
    "reversal.acknowledged": (
        ReversalAcknowledged,
        lambda f: {
            "stan": f.text("stan"),
            "attempts": f.integer("attempts"),
            "response_code": f.text("response_code"),
        },
    ),
    "fw.update_progress": (
        FirmwareUpdateProgress,
        lambda f: {"phase": f.text("phase"), "held": f.boolean("held"), "file": f.text("file")},
    ),
    "fw.update_finished": (
        FirmwareUpdateFinished,
        lambda f: {
            "version": f.text("version"),
            "sha256": f.text("sha256"),
            "slot": f.text("slot"),
        },
    ),
    "fw.update_failed": (
        FirmwareUpdateFailed,
        lambda f: {
            "code": f.text("code"),
            "message": f.text("message"),
            "phase": f.text("phase"),
            "version": f.text_or_none("version"),
        },
    ),
    "app.fault": (
        AppFault,
        lambda f: {"code": f.text("code"), "silent_ms": f.integer("silent_ms")},
    ),
    "app.restarted": (
        AppRestarted,
        lambda f: {
            "code": f.text("code"),
            "restarts": f.integer("restarts"),
            "down_ms": f.integer("down_ms"),
        },
    ),
}


def _event_names(kind: type[TerminalEvent]) -> list[str]:
    names = [name for name, (cls, _) in _EVENTS.items() if issubclass(cls, kind)]
    if not names:
        raise TypeError(f"the test port reports no event of type {kind.__name__}")
    return names


def _typed(event: Event) -> TerminalEvent:
    cls, parse = _EVENTS[event.name]
    fields = _Fields(f"terminal's event '{event.name}' (seq {event.seq})", event.data)
    return cls(received_at=event.received_at, position=event.index, **parse(fields))


#: A PIN entry's answer comes after its own timeout at the latest; this is the margin.
PIN_ANSWER_MARGIN_S = 5.0


def press_keys(console: Console, keys: Sequence[str]) -> int:
    """Press ``keys`` on the terminal's keypad through its test port (``keypad.press``);
    the transcript withholds digit keys (``hil.protocol.transcript.withhold_keys``).
    Returns how many keys the terminal took."""
    result = console.request("keypad.press", {"keys": list(keys)})
    return _Fields(_reply("keypad.press"), result).integer("pressed")


class TestPortAdapter:
    """A terminal on pos-hil's test port (protocol v1), through a ``Console``.

    Everything the terminal writes is scanned for cardholder data before anything masks
    it (``hil.terminal.leaks``): every event as it arrives, every answer, and at
    ``take_leaks`` the refusals and stray bytes of the port's transcript and the log
    entries written since the last look. ``take_leaks`` hands out what was found.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    def __init__(self, console: Console) -> None:
        self.console = console
        self._leaks_lock = threading.Lock()
        self._leaks: list[Leak] = []
        self._log_next = 0  # where the end-of-scenario log read starts
        self._log_scanned: set[int] = set()  # log entries already scanned, by seq
        self._transcript_seen: object | None = None  # the last transcript entry scanned
        self._rx_decoder = FrameDecoder()
        console.events.subscribe(self._scan_event)

    def _request(
        self, command: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> _Fields:
        result = self.console.request(command, args, timeout=timeout)
        self._scan_answer(command, result)
        return _Fields(_reply(command), result)

    # --- leak scan ------------------------------------------------------------------

    def _found(self, leaks: list[Leak]) -> None:
        if leaks:
            with self._leaks_lock:
                self._leaks.extend(leaks)

    def _scan_event(self, event: Event) -> None:
        self._found(leaks_in_data(event.data, f"event '{event.name}' (seq {event.seq})", "data"))

    def _scan_answer(self, command: str, result: Mapping[str, Any]) -> None:
        entries = result.get("entries") if command == "log.read" else None
        if isinstance(entries, list):
            for entry in entries:
                seq = entry.get("seq") if isinstance(entry, Mapping) else None
                if isinstance(seq, int) and not isinstance(seq, bool):
                    if seq in self._log_scanned:
                        continue  # read again by a later step: reported once already
                    self._log_scanned.add(seq)
                    self._log_next = max(self._log_next, seq + 1)
                self._found(leaks_in_data(entry, f"log entry seq {seq} (read with 'log.read')"))
            rest = {key: value for key, value in result.items() if key != "entries"}
            self._found(leaks_in_data(rest, f"answer to '{command}'", "result"))
            return
        self._found(leaks_in_data(result, f"answer to '{command}'", "result"))

    def _scan_transcript(self) -> None:
        """Refusals and bytes outside frames, which only the raw transcript holds (a
        refusal's message is masked before it reaches a ``TerminalCommandError``)."""
        transcript = getattr(self.console, "transcript", None)
        if transcript is None:
            return
        entries = transcript.entries()
        start = 0
        for index in range(len(entries) - 1, -1, -1):
            if entries[index] is self._transcript_seen:
                start = index + 1
                break
        else:
            self._rx_decoder = FrameDecoder()  # cleared since the last look: start afresh
        for entry in entries[start:]:
            if entry.direction != "rx":
                continue
            items = (
                self._rx_decoder.flush_partial()
                if entry.resync
                else (self._rx_decoder.feed(entry.data))
            )
            for item in items:
                if isinstance(item, Frame):
                    message = item.message
                    if message.get("type") == "res" and message.get("ok") is False:
                        source = f"refusal of request id {message.get('id')}"
                        self._found(leaks_in_data(message.get("error"), source, "error"))
                elif isinstance(item, Skipped | NotAFrame | Broken):
                    text = item.raw.decode("utf-8", "replace")
                    self._found(leaks_in_text(text, "bytes outside frames on the test port"))
        if entries:
            self._transcript_seen = entries[-1]

    def take_leaks(self, *, read_log: bool = True) -> list[Leak]:
        """Cardholder data found since the last call (then forgotten). ``read_log``
        first reads the log entries written since the last look, so they are scanned
        even when no step read the log."""
        if read_log:
            while True:
                before = self._log_next
                page = self.log(since=before, limit=LOG_SCAN_PAGE)
                if len(page) < LOG_SCAN_PAGE or self._log_next == before:
                    break
        self._scan_transcript()
        with self._leaks_lock:
            leaks, self._leaks = self._leaks, []
        return leaks

    # --- commands -------------------------------------------------------------------

    def device_info(self, *, timeout: float | None = None) -> DeviceInfo:
        reply = self._request("device.info", timeout=timeout)
        return DeviceInfo(
            model=reply.text("model"),
            serial_number=reply.text("serial_number"),
            terminal_id=reply.text("terminal_id"),
            merchant_id=reply.text("merchant_id"),
            firmware_version=reply.text_or_none("firmware_version"),
            firmware_sha256=reply.text_or_none("firmware_sha256"),
            protocol_version=reply.integer("protocol_version"),
            boot_reason=reply.text("boot_reason"),
            uptime_ms=reply.integer("uptime_ms"),
            state=reply.text("state"),
            firmware_verified=reply.boolean_or_none("firmware_verified"),
            firmware_build=reply.text_or_none("firmware_build"),
            boot_count=reply.integer_or_none("boot_count"),
            firmware_slot=reply.text_or_none("firmware_slot"),
        )

    def start_firmware_update(
        self, file: str, *, hold_at: str | None = None
    ) -> FirmwareUpdateStarted:
        args: dict[str, Any] = {"file": file}
        if hold_at is not None:
            args["hold_at"] = hold_at
        reply = self._request("fw.update", args)
        return FirmwareUpdateStarted(
            file=reply.text("file"),
            size=reply.integer("size"),
            from_version=reply.text_or_none("from_version"),
        )

    def app_status(self) -> AppStatus:
        reply = self._request("app.status")
        return AppStatus(
            state=reply.text("state"),
            restarts=reply.integer("restarts"),
            last_fault=reply.text_or_none("last_fault"),
            watchdog_timeout_ms=reply.integer_or_none("watchdog_timeout_ms"),
        )

    def run_selfcheck(
        self, items: Sequence[str] | None = None, *, timeout: float | None = None
    ) -> SelfCheckRun:
        args = {} if items is None else {"items": list(items)}
        return _selfcheck_run(self._request("selfcheck.run", args, timeout=timeout))

    def config_get(self, key: str) -> ConfigValue:
        return self._request("config.get", {"key": key}).scalar("value")

    def config_set(self, key: str, value: ConfigValue) -> ConfigValue:
        return self._request("config.set", {"key": key, "value": value}).scalar("value")

    def display(self) -> Screen:
        return _screen(self._request("display.read"))

    def log(self, *, since: int = 0, limit: int = 500) -> list[LogEntry]:
        reply = self._request("log.read", {"since": since, "limit": limit})
        return [
            LogEntry(
                seq=entry.integer("seq"),
                ts_ms=entry.integer("ts_ms"),
                level=entry.text("level"),
                code=entry.text("code"),
                message=entry.text("message"),
            )
            for entry in reply.objects("entries")
        ]

    def reboot(self) -> None:
        self.console.request("sys.reboot")

    def sale(
        self,
        amount_minor_units: int,
        *,
        entry_mode: str | None = None,
        present_ms: int | None = None,
        timeout: float | None = None,
    ) -> SaleResult:
        args: dict[str, Any] = {"amount": amount_minor_units}
        if entry_mode is not None:
            args["entry_mode"] = entry_mode
        if present_ms is not None:
            args["timeout_ms"] = present_ms
        return _sale(self._request("payment.sale", args, timeout=timeout))

    def reversal_status(self) -> ReversalStatus:
        reply = self._request("reversal.status")
        if not reply.boolean("pending"):
            return ReversalStatus(pending=False)
        return ReversalStatus(
            pending=True,
            stan=reply.text_or_none("stan"),
            amount=reply.integer_or_none("amount"),
            state=reply.text_or_none("state"),
            attempts=reply.integer_or_none("attempts") or 0,
            last_error=reply.text_or_none("last_error") or "",
        )

    def sync_run(self, *, timeout: float | None = None) -> SyncResult:
        reply = self._request("sync.run", timeout=timeout)
        return SyncResult(
            code=reply.text("code"),
            message=reply.text("message"),
            details=reply.free_form("details"),
        )

    def sync_status(self) -> SyncStatus:
        reply = self._request("sync.status")
        parameters = reply.obj("parameters")
        last = reply.obj_or_none("last_sync")
        return SyncStatus(
            parameters=ParameterInfo(
                version=parameters.text_or_none("version"),
                digest=parameters.text_or_none("digest"),
                synced_at=parameters.text_or_none("synced_at"),
            ),
            keys=reply.text_map("keys") or {},
            last_sync=None
            if last is None
            else SyncResult(code=last.text("code"), message=last.text("message")),
        )

    def scan(self, timeout_ms: int, *, max_frames: int | None = None) -> ScanResult:
        args: dict[str, Any] = {"timeout_ms": timeout_ms}
        if max_frames is not None:
            args["max_frames"] = max_frames
        try:
            reply = self._request(
                "scanner.scan", args, timeout=timeout_ms / 1000 + SCAN_ANSWER_MARGIN_S
            )
        except TerminalCommandError as e:
            if e.code not in SCAN_OUTCOME_CODES:
                raise
            return ScanResult(code=e.code, message=e.terminal_message)
        return ScanResult(code=OK, message="code read", decoded=_decoded(reply))

    def read_card(self, timeout_ms: int) -> CardRead:
        reply = self._request(
            "card.read",
            {"timeout_ms": timeout_ms},
            timeout=timeout_ms / 1000 + CARD_READ_ANSWER_MARGIN_S,
        )
        return _card_read(reply)

    # --- admin login, biometrics, log marks (hil.terminal.admin) -----------------------

    def _admin(self, command: str, args: Mapping[str, str], secrets: list[str]) -> AdminAnswer:
        """An admin command whose E_SEC_ refusals are answers. A terminal that echoes a
        password it was sent is caught here, before the text goes anywhere."""
        try:
            self.console.request(command, args)
        except TerminalCommandError as e:
            if any(secret and secret in e.terminal_message for secret in secrets):
                raise DutError(
                    f"the terminal echoed the admin password in its refusal of '{command}' "
                    "(the report shows only its code)"
                ) from None
            if not e.code.startswith("E_SEC_"):
                raise
            return AdminAnswer(code=e.code, message=e.terminal_message)
        return AdminAnswer(code=OK, message="accepted")

    def admin_login(self, password: str) -> AdminAnswer:
        return self._admin("security.login", {"password": password}, [password])

    def admin_set_password(self, old: str, new: str) -> AdminAnswer:
        return self._admin(
            "security.set_password", {"old_password": old, "new_password": new}, [old, new]
        )

    def admin_reset(self) -> None:
        self._request("security.reset_admin")

    def biometric_enrol(self, user: str, modality: str) -> None:
        self._request("biometric.enrol", {"user": user, "modality": modality})

    def biometric_verify(self, user: str, modality: str) -> BiometricVerdict:
        reply = self._request("biometric.verify", {"user": user, "modality": modality})
        return BiometricVerdict(
            user=reply.text("user"),
            modality=reply.text("modality"),
            code=reply.text("code"),
            message=reply.text("message"),
        )

    def log_mark(self, count: int, note: str) -> LogMarks:
        reply = self._request("log.mark", {"count": count, "note": note})
        return LogMarks(first_seq=reply.integer("first_seq"), last_seq=reply.integer("last_seq"))

    # --- keypad and PIN entry (hil.terminal.port.KeypadPort) ------------------------

    def pin_entry(self, timeout_ms: int) -> PinEntry:
        reply = self._request(
            "pin.enter", {"timeout_ms": timeout_ms}, timeout=timeout_ms / 1000 + PIN_ANSWER_MARGIN_S
        )
        return PinEntry(entered=reply.boolean("entered"), digits=reply.integer("digits"))

    def press_keys(self, keys: Sequence[str]) -> int:
        return press_keys(self.console, keys)

    # --- events ---------------------------------------------------------------------

    def mark(self) -> int:
        return self.console.events.mark()

    def wait_event(
        self,
        kind: type[E],
        *,
        since: int,
        timeout: float,
        where: Callable[[E], bool] | None = None,
    ) -> E:
        names = _event_names(kind)
        pattern = names[0] if len(names) == 1 else "*"
        deadline = time.monotonic() + timeout
        position = since
        while True:
            try:
                raw = self.console.events.wait_for(
                    pattern, since=position, timeout=max(deadline - time.monotonic(), 0.0)
                )
            except EventTimeout:
                break
            position = raw.index + 1
            if raw.name not in names:
                continue
            event = cast(E, _typed(raw))
            if where is None or where(event):
                return event
        arrived = [e.name for e in self.console.events.since(since)]
        condition = " matching the condition" if where is not None else ""
        raise TerminalEventTimeout(
            f"{kind.__name__} (test-port event {' or '.join(names) if len(names) < 4 else 'any'})"
            f"{condition} did not arrive within {timeout:g} s; "
            + (
                f"arrived meanwhile: {', '.join(arrived[-10:])}" if arrived else "no events arrived"
            ),
            event=kind.__name__,
            arrived=arrived,
        )

    def find_events(self, kind: type[E], *, since: int = 0) -> list[E]:
        names = _event_names(kind)
        return [
            cast(E, _typed(raw)) for raw in self.console.events.since(since) if raw.name in names
        ]
