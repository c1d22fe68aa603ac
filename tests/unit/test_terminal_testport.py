"""TestPortAdapter: every reply and event of the test port read into its typed result,
and a malformed answer reported as the terminal's fault, naming command and field.

The transport is faked (a Console that answers from a table); what is under test is
the reading of replies, which needs no terminal.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from hil.errors import CommandTimeout, DutError, TerminalCommandError
from hil.instruments.console import Console
from hil.protocol.session import EventLog
from hil.protocol.transcript import Transcript
from hil.terminal import (
    AppFault,
    AppRestarted,
    BootFailed,
    CardReadFinished,
    FirmwareUpdateFailed,
    FirmwareUpdateFinished,
    FirmwareUpdateProgress,
    ItemChecked,
    MalformedAnswer,
    ReversalAcknowledged,
    ScreenChanged,
    SelfCheckFinished,
    Terminal,
    TerminalEvent,
    TerminalEventTimeout,
    TerminalPort,
    TerminalReady,
    TestPortAdapter,
    port_for,
)

FULL_PAN = "4761739001010010"

DEVICE_INFO: dict[str, Any] = {
    "model": "POS-SIM-A8",
    "serial_number": "SIM8A0000001",
    "terminal_id": "T0000001",
    "merchant_id": "898310058120001",
    "firmware_version": "1.4.2",
    "firmware_sha256": "ce" * 32,
    "firmware_verified": True,
    "firmware_build": "2024.11.18-healthy",
    "protocol_version": 1,
    "boot_reason": "power_on",
    "boot_count": 1,
    "uptime_ms": 336,
    "state": "idle",
}
ITEM: dict[str, Any] = {
    "item": "power",
    "status": "pass",
    "code": "OK",
    "message": "supply 12.0 V, battery 100%",
    "duration_ms": 6,
    "details": {"supply_v": 12.0},
}
RUN: dict[str, Any] = {
    "trigger": "command",
    "passed": 1,
    "warned": 0,
    "failed": 0,
    "duration_ms": 6,
    "results": [ITEM],
}
CARD_READ: dict[str, Any] = {
    "ok": True,
    "code": "OK",
    "message": "card read",
    "entry_mode": "contactless",
    "reader": "Virtual PCD 01",
    "pan": "541333******0483",
    "expiry": "3012",
    "service_code": "201",
    "pan_sequence": None,
    "aid": "A0000000041010",
    "label": "MASTERCARD",
    "aip": "1980",
    "cryptogram": "ARQC",
    "atc": 7,
    "outcome": "online",
    "apdus": 9,
    "duration_ms": 41.2,
}
SALE_FAILED: dict[str, Any] = {
    "stan": "000042",
    "amount": 1234,
    "card": "621234******1232",
    "reversal": {"state": "pending", "attempts": 1},
    "outcome": "failed",
    "code": "E_COMM_TIMEOUT",
    "reason": "no answer in 1500 ms",
}
DECODED: dict[str, Any] = {
    "payload": "000201010212",
    "kind": "emv_mpm",
    "wallet": None,
    "fields": {"00": "01", "01": "12"},
    "decode_ms": 22.57,
    "scan_ms": 23.7,
    "frames": 1,
    "frame_seq": 2,
}


class FakeConsole:
    """A Console whose terminal answers from ``replies`` (an exception is raised)."""

    def __init__(self, replies: Mapping[str, object]) -> None:
        self.name = "console"
        self.transcript = Transcript()
        self.replies = dict(replies)
        self.requests: list[tuple[str, dict[str, Any], float | None]] = []
        self._events = EventLog()

    @property
    def events(self) -> EventLog:
        return self._events

    def request(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        self.requests.append((cmd, dict(args or {}), timeout))
        reply = self.replies[cmd]
        if isinstance(reply, Exception):
            raise reply
        assert isinstance(reply, dict)
        return copy.deepcopy(reply)

    def close(self) -> None:
        pass

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self._events.append(len(self._events) + 1, name, 0, data)


def adapter(**replies: object) -> tuple[TestPortAdapter, FakeConsole]:
    console = FakeConsole({k.replace("__", "."): v for k, v in replies.items()})
    assert isinstance(console, Console)
    return TestPortAdapter(console), console


def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


# --- commands -----------------------------------------------------------------------


def test_device_info_is_read_with_its_extensions() -> None:
    port, console = adapter(device__info=DEVICE_INFO)
    info = port.device_info(timeout=2.0)
    assert (info.model, info.serial_number, info.state) == ("POS-SIM-A8", "SIM8A0000001", "idle")
    assert info.firmware_version == "1.4.2" and info.firmware_verified is True
    assert info.boot_count == 1 and info.protocol_version == 1
    assert console.requests == [("device.info", {}, 2.0)]


def test_device_info_without_extensions_or_firmware() -> None:
    bare = {k: v for k, v in DEVICE_INFO.items() if k not in ("firmware_build", "boot_count")}
    bare["firmware_version"] = None
    info = adapter(device__info=bare)[0].device_info()
    assert info.firmware_version is None and info.boot_count is None
    assert info.firmware_build is None


@pytest.mark.parametrize(
    ("reply", "field", "wanted"),
    [
        (without(DEVICE_INFO, "serial_number"), "serial_number", "is missing"),
        ({**DEVICE_INFO, "uptime_ms": "336"}, "uptime_ms", "must be an integer"),
        ({**DEVICE_INFO, "uptime_ms": True}, "uptime_ms", "must be an integer"),
        ({**DEVICE_INFO, "firmware_verified": "yes"}, "firmware_verified", "true, false"),
    ],
)
def test_a_malformed_device_info_is_a_terminal_fault_naming_command_and_field(
    reply: dict[str, Any], field: str, wanted: str
) -> None:
    port, _ = adapter(device__info=reply)
    with pytest.raises(DutError) as e:
        port.device_info()
    message = str(e.value)
    assert "'device.info'" in message and f"'{field}'" in message and wanted in message


def test_a_nested_field_that_is_not_an_object_is_a_terminal_fault() -> None:
    port, _ = adapter(payment__sale={**SALE_FAILED, "reversal": "pending"})
    with pytest.raises(DutError, match=r"'payment\.sale'.*field 'reversal' must be an object"):
        port.sale(100)


def test_selfcheck_run_is_read_into_item_results() -> None:
    port, console = adapter(selfcheck__run=RUN)
    run = port.run_selfcheck(["power"], timeout=60.0)
    assert console.requests == [("selfcheck.run", {"items": ["power"]}, 60.0)]
    assert (run.trigger, run.passed, run.failed) == ("command", 1, 0)
    (item,) = run.results
    assert (item.item, item.status, item.code) == ("power", "pass", "OK")
    assert item.details == {"supply_v": 12.0} and item.duration_ms == 6.0
    assert run.result("power") == item and run.result("comm") is None


def test_an_item_status_outside_the_protocol_names_its_path() -> None:
    port, _ = adapter(selfcheck__run={**RUN, "results": [{**ITEM, "status": "ok"}]})
    with pytest.raises(DutError) as e:
        port.run_selfcheck()
    assert "'selfcheck.run'" in str(e.value)
    assert "'results[0].status' must be one of pass, warn, fail" in str(e.value)


def test_config_get_and_set_return_the_stored_value() -> None:
    port, console = adapter(
        config__get={"key": "comm.retries", "value": 3},
        config__set={"key": "comm.retries", "value": 1},
    )
    assert port.config_get("comm.retries") == 3
    assert port.config_set("comm.retries", 1) == 1
    assert console.requests[1][:2] == ("config.set", {"key": "comm.retries", "value": 1})
    console.replies["config.get"] = {"key": "comm.retries", "value": [3]}
    with pytest.raises(DutError, match=r"'config\.get'.*'value'"):
        port.config_get("comm.retries")


def test_display_and_log_are_read() -> None:
    entry = {"seq": 5, "ts_ms": 1795757234050, "level": "info", "code": "I_BOOT", "message": "b"}
    port, console = adapter(
        display__read={"screen": "idle", "lines": ["Present card", "T0000001"], "changed_seq": 3},
        log__read={"entries": [entry], "next": 6},
    )
    screen = port.display()
    assert screen.screen == "idle" and screen.lines == ("Present card", "T0000001")
    assert screen.shows("Present", "T0000001") and not screen.shows("Faults")
    (logged,) = port.log(since=5, limit=10)
    assert (logged.seq, logged.code, logged.level) == (5, "I_BOOT", "info")
    assert console.requests[-1][1] == {"since": 5, "limit": 10}
    console.replies["log.read"] = {"entries": [without(entry, "code")], "next": 6}
    with pytest.raises(DutError, match=r"'entries\[0\]\.code' is missing"):
        port.log()


def test_a_failed_sale_is_a_result_and_a_refused_one_an_error() -> None:
    port, console = adapter(payment__sale=SALE_FAILED)
    sale = port.sale(1234, timeout=60.0)
    assert console.requests == [("payment.sale", {"amount": 1234}, 60.0)]
    assert (sale.outcome, sale.code, sale.stan) == ("failed", "E_COMM_TIMEOUT", "000042")
    assert (sale.reversal.state, sale.reversal.attempts) == ("pending", 1)
    assert sale.response_code is None and "failed E_COMM_TIMEOUT" in sale.describe()
    console.replies["payment.sale"] = TerminalCommandError("payment.sale", "E_TAMPERED", "locked")
    with pytest.raises(TerminalCommandError) as e:
        port.sale(100)
    assert e.value.code == "E_TAMPERED"


def test_an_approved_sale_and_its_acknowledged_reversal_without_attempts() -> None:
    approved = {
        **without(SALE_FAILED, "code"),
        "outcome": "approved",
        "response_code": "00",
        "rrn": "123456789012",
        "auth_code": "A1B2C3",
        "rtt_ms": 12.5,
        "reversal": {"state": "acknowledged"},
    }
    sale = adapter(payment__sale=approved)[0].sale(1234)
    assert (sale.outcome, sale.response_code, sale.rtt_ms) == ("approved", "00", 12.5)
    assert sale.reversal.attempts is None


def test_a_sale_outcome_outside_the_protocol_is_a_terminal_fault() -> None:
    port, _ = adapter(payment__sale={**SALE_FAILED, "outcome": "maybe"})
    with pytest.raises(DutError, match=r"'payment\.sale'.*'outcome' must be one of"):
        port.sale(100)


def test_reversal_status_pending_or_not() -> None:
    port, console = adapter(reversal__status={"pending": False})
    assert not port.reversal_status().pending
    console.replies["reversal.status"] = {
        "pending": True,
        "stan": "000042",
        "amount": 500,
        "state": "pending",
        "attempts": 2,
        "last_error": "no answer",
    }
    status = port.reversal_status()
    assert (status.pending, status.stan, status.attempts) == (True, "000042", 2)
    console.replies["reversal.status"] = {"pending": "no"}
    with pytest.raises(DutError, match=r"'reversal\.status'.*'pending'"):
        port.reversal_status()


def test_sync_run_and_status() -> None:
    port, _ = adapter(
        sync__run={"code": "OK", "message": "parameters 2024.12.01", "details": {"blocks": 3}},
        sync__status={
            "parameters": {"version": "2024.12.01", "digest": "ab" * 32, "synced_at": "x"},
            "keys": {"tpk": "1A2B3C"},
            "last_sync": {"code": "OK", "message": "parameters 2024.12.01"},
        },
    )
    result = port.sync_run(timeout=60.0)
    assert result.passed and result.details == {"blocks": 3}
    status = port.sync_status()
    assert status.parameters.version == "2024.12.01" and status.keys == {"tpk": "1A2B3C"}
    assert status.last_sync is not None and status.last_sync.code == "OK"


def test_sync_status_before_the_first_sync() -> None:
    never = {"parameters": {"version": None, "digest": None, "synced_at": None}, "keys": {}}
    status = adapter(sync__status={**never, "last_sync": None})[0].sync_status()
    assert status.parameters.digest is None and status.last_sync is None


def test_a_scan_that_reads_a_code_and_one_that_reads_none() -> None:
    port, console = adapter(scanner__scan=DECODED)
    scan = port.scan(3000)
    assert scan.code == "OK" and scan.decoded is not None
    assert scan.decoded.payload == "000201010212"
    assert scan.decoded.fields == {"00": "01", "01": "12"}
    # the command blocks for its own timeout: the answer is given longer than that
    assert console.requests[-1] == ("scanner.scan", {"timeout_ms": 3000}, 8.0)
    console.replies["scanner.scan"] = TerminalCommandError(
        "scanner.scan", "E_QR_NO_CODE", "no QR code read in 302 ms (10 frames)"
    )
    refused = port.scan(300, max_frames=1)
    assert (refused.code, refused.decoded) == ("E_QR_NO_CODE", None)
    assert "302 ms" in refused.message
    assert console.requests[-1][1] == {"timeout_ms": 300, "max_frames": 1}


def test_a_scan_refused_for_another_reason_is_an_error() -> None:
    busy = TerminalCommandError("scanner.scan", "E_BUSY", "a scan is running")
    port, _ = adapter(scanner__scan=busy)
    with pytest.raises(TerminalCommandError):
        port.scan(300)


def test_card_read_and_a_malformed_pan_never_shown_in_full() -> None:
    port, console = adapter(card__read=CARD_READ)
    read = port.read_card(8000)
    assert read.ok and read.pan == "541333******0483" and read.atc == 7
    assert console.requests[-1] == ("card.read", {"timeout_ms": 8000}, 10.0)
    console.replies["card.read"] = {**CARD_READ, "pan": int(FULL_PAN)}
    with pytest.raises(DutError) as e:
        port.read_card(8000)
    assert "'card.read'" in str(e.value) and "'pan'" in str(e.value)
    assert FULL_PAN not in str(e.value)


def test_reboot_sends_the_reboot_command() -> None:
    port, console = adapter(sys__reboot={})
    port.reboot()
    assert console.requests[0][0] == "sys.reboot"


# --- events -------------------------------------------------------------------------


def test_events_are_typed_and_found_from_a_cursor() -> None:
    port, console = adapter()
    console.emit("display.changed", {"screen": "boot", "lines": ["POS-SIM"], "changed_seq": 1})
    cursor = port.mark()
    console.emit("scanner.no_code", {"scan_ms": 1, "frames": 1, "timeout_ms": 1})
    console.emit("card.read", CARD_READ)
    console.emit("display.changed", {"screen": "card_read", "lines": ["MASTERCARD"]})
    finished = port.wait_event(CardReadFinished, since=cursor, timeout=1.0)
    assert finished.read.pan == "541333******0483" and finished.position == cursor + 1
    screen = port.wait_event(
        ScreenChanged, since=cursor, timeout=1.0, where=lambda e: e.screen.screen == "card_read"
    )
    assert screen.after == cursor + 3 and screen.received_at >= finished.received_at
    assert [e.screen.screen for e in port.find_events(ScreenChanged)] == ["boot", "card_read"]
    assert port.find_events(ScreenChanged, since=cursor)[0].screen.screen == "card_read"
    # TerminalEvent is any event the adapter knows; others are passed over
    kinds = [type(port.wait_event(TerminalEvent, since=c, timeout=1.0)) for c in (0, 1, 2)]
    assert kinds == [ScreenChanged, CardReadFinished, CardReadFinished]


def test_an_event_waited_for_arrives_later() -> None:
    port, console = adapter()
    cursor = port.mark()
    ack = {"stan": "000042", "attempts": 2, "response_code": "00"}
    threading.Timer(0.05, lambda: console.emit("reversal.acknowledged", ack)).start()
    event = port.wait_event(ReversalAcknowledged, since=cursor, timeout=2.0)
    assert (event.stan, event.attempts) == ("000042", 2)


def test_an_event_that_never_comes_is_a_timeout_naming_it_and_what_came() -> None:
    port, console = adapter()
    console.emit("card.presented", {"entry_mode": "chip", "reader": "r"})
    with pytest.raises(TerminalEventTimeout) as e:
        port.wait_event(CardReadFinished, since=0, timeout=0.05)
    assert "CardReadFinished" in str(e.value) and "card.read" in str(e.value)
    assert e.value.arrived == ["card.presented"]
    with pytest.raises(TerminalEventTimeout, match="matching the condition"):
        port.wait_event(BootFailed, since=0, timeout=0.01, where=lambda e: e.code == "x")


def test_a_malformed_event_is_a_terminal_fault_naming_event_and_field() -> None:
    port, console = adapter()
    console.emit("selfcheck.item", {**ITEM, "code": None})
    with pytest.raises(DutError) as e:
        port.wait_event(ItemChecked, since=0, timeout=1.0)
    assert "'selfcheck.item'" in str(e.value) and "'code' must be a string" in str(e.value)


def test_port_for_wraps_a_console_and_keeps_a_terminal_port() -> None:
    port, console = adapter()
    assert isinstance(port_for(console), TestPortAdapter)
    assert isinstance(port, TerminalPort)
    assert port_for(port) is port
    with pytest.raises(TypeError):
        port_for(object())


# --- the strategy waiting for a self-check it did not start ------------------------------


def test_ensure_idle_waits_for_a_selfcheck_started_by_an_earlier_command() -> None:
    """A selfcheck.run still running ends with selfcheck.finished and no sys.ready."""
    port, console = adapter(device__info={**DEVICE_INFO, "state": "selfcheck"})
    terminal = Terminal(port, None, boot_timeout=5.0)
    finished = {**RUN, "trigger": "command"}
    threading.Timer(0.1, lambda: console.emit("selfcheck.finished", finished)).start()
    started = time.monotonic()
    terminal.ensure_idle()
    assert time.monotonic() - started < 2.0
    assert terminal.last_boot is None


def test_ensure_idle_collects_the_boot_when_the_selfcheck_is_the_boots() -> None:
    port, console = adapter(device__info={**DEVICE_INFO, "state": "selfcheck"})
    terminal = Terminal(port, None, boot_timeout=5.0)

    def finish_boot() -> None:
        console.emit("selfcheck.finished", {**RUN, "trigger": "boot"})
        console.emit("sys.ready", {})

    threading.Timer(0.1, finish_boot).start()
    terminal.ensure_idle()
    assert terminal.last_boot is not None and terminal.last_boot.ready is not None
    assert terminal.last_boot.selfcheck is not None
    assert isinstance(port.find_events(TerminalReady)[0], TerminalReady)


def test_ensure_idle_reports_a_terminal_stuck_in_its_selfcheck() -> None:
    port, console = adapter(device__info={**DEVICE_INFO, "state": "selfcheck"})
    console.emit("selfcheck.finished", {**RUN, "trigger": "command"})  # before the cursor
    terminal = Terminal(port, None, boot_timeout=0.1)
    with pytest.raises(DutError, match="still in its self-check"):
        terminal.ensure_idle()
    assert not port.find_events(SelfCheckFinished, since=1)


class RecordingPower:
    """A power supply that is on and records what it is asked to do."""

    def __init__(self) -> None:
        self.name = "power"
        self.calls: list[str] = []

    def on(self) -> None:
        self.calls.append("on")

    def off(self) -> None:
        self.calls.append("off")

    def cut(self) -> None:
        self.calls.append("cut")

    @property
    def is_on(self) -> bool:
        return True


def test_ensure_idle_reports_a_malformed_state_answer_instead_of_power_cycling() -> None:
    port, _ = adapter(device__info=without(DEVICE_INFO, "state"))
    power = RecordingPower()
    with pytest.raises(MalformedAnswer, match="'state' is missing"):
        Terminal(port, power, boot_timeout=1.0).ensure_idle()
    assert power.calls == []


def test_ensure_idle_power_cycles_a_terminal_that_does_not_answer() -> None:
    port, console = adapter(device__info=CommandTimeout("no answer", command="device.info"))
    power = RecordingPower()
    terminal = Terminal(port, power, boot_timeout=1.0)
    threading.Timer(0.1, lambda: console.emit("sys.ready", {})).start()
    terminal.ensure_idle()
    assert power.calls == ["cut", "on"]


# --- firmware update and the payment application's watchdog -------------------------


def test_a_firmware_update_is_started_with_its_hold_hook_and_reported_by_events() -> None:
    started = {"file": "new.fw.json", "size": 431, "from_version": "1.4.2"}
    port, console = adapter(fw__update=started)
    result = port.start_firmware_update("new.fw.json", hold_at="writing")
    assert (result.file, result.size, result.from_version) == ("new.fw.json", 431, "1.4.2")
    port.start_firmware_update("new.fw.json")
    assert [args for _, args, _ in console.requests] == [
        {"file": "new.fw.json", "hold_at": "writing"},
        {"file": "new.fw.json"},
    ]
    console.emit("fw.update_progress", {"phase": "writing", "held": True, "file": "new.fw.json"})
    console.emit("fw.update_finished", {"version": "1.5.0", "sha256": "ab" * 32, "slot": "b"})
    console.emit(
        "fw.update_failed",
        {"code": "E_FW_MODEL", "message": "other model", "phase": "verifying", "version": None},
    )
    progress = port.wait_event(FirmwareUpdateProgress, since=0, timeout=1.0)
    assert (progress.phase, progress.held) == ("writing", True)
    finished = port.wait_event(FirmwareUpdateFinished, since=0, timeout=1.0)
    assert (finished.version, finished.slot) == ("1.5.0", "b")
    failed = port.wait_event(FirmwareUpdateFailed, since=0, timeout=1.0)
    assert failed.describe() == "E_FW_MODEL while verifying: other model"
    assert failed.version is None


def test_a_refused_update_start_is_an_error_with_its_code() -> None:
    port, _ = adapter(fw__update=TerminalCommandError("fw.update", "E_FW_NO_MEDIA", "no medium"))
    with pytest.raises(TerminalCommandError) as e:
        port.start_firmware_update("x.fw.json")
    assert e.value.code == "E_FW_NO_MEDIA"


def test_app_status_and_watchdog_events() -> None:
    status = {
        "state": "running",
        "restarts": 1,
        "last_fault": "E_APP_HANG",
        "watchdog_timeout_ms": 300,
        "kick_interval_ms": 50,
    }
    port, console = adapter(app__status=status)
    read = port.app_status()
    assert (read.state, read.restarts, read.last_fault) == ("running", 1, "E_APP_HANG")
    console.emit("app.fault", {"code": "E_APP_HANG", "silent_ms": 310})
    console.emit("app.restarted", {"code": "E_APP_HANG", "restarts": 1, "down_ms": 101})
    assert port.wait_event(AppFault, since=0, timeout=1.0).silent_ms == 310
    assert port.wait_event(AppRestarted, since=0, timeout=1.0).down_ms == 101


def test_a_malformed_update_event_names_event_and_field() -> None:
    port, console = adapter(app__status={"state": "running", "restarts": "one"})
    console.emit("fw.update_progress", {"phase": "writing", "held": "yes", "file": "x"})
    with pytest.raises(MalformedAnswer, match="'held' must be true or false"):
        port.wait_event(FirmwareUpdateProgress, since=0, timeout=1.0)
    with pytest.raises(MalformedAnswer, match="'restarts' must be an integer"):
        port.app_status()
