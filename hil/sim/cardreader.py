"""The simulated terminal's card reader unit: chip and contactless through PC/SC,
magstripe through the mag head.

It holds the reader state: which readers are wired, whether the reader has power,
the last read and the reads counted so far, and what the screen and the test port
are told. A card that arrives while the terminal is idle (``hil.sim.pcsc`` watches
the readers) is read at once by the EMV kernel (``hil.sim.emv_kernel``); a swipe is
decoded here. ``CardPeripherals`` is what a terminal session owns: fault-line inputs,
mag head and reader unit, with the ``card.*`` test-port commands.

What was read is reported on the test port (event ``card.read``) with the PAN masked
at the source; the full PAN and the track data never leave the reader unit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from hil.cards.track import TrackData, TrackError, decode_track1, decode_track2
from hil.masking import mask_pan
from hil.protocol.endpoint import CommandFailed
from hil.sim import defects as seeded
from hil.sim.channels import Channels
from hil.sim.display import Display
from hil.sim.emv_kernel import (
    ENTRY_CHIP,
    ENTRY_CONTACTLESS,
    ENTRY_MAGSTRIPE,
    EmvKernel,
    OnlineData,
    ReadFailure,
    expiry_passed,
)
from hil.sim.faultlines import FaultLineInputs
from hil.sim.hardware import Hardware
from hil.sim.maghead import MagHead
from hil.sim.pcsc import (
    CardConnectError,
    CardIoError,
    ConnectProblem,
    PcscCard,
    PcscContext,
    ReaderMonitor,
    card_left,
)

log = logging.getLogger("hil.sim.cardreader")

READ_HOLD_S = 1.5  # a tap or swipe result stays on screen this long (times the time scale)
REMOVAL_CONFIRM_S = 1.0  # after an I/O error, how long to wait for the reader to see removal
CARD_READ_DEFAULT_MS = 10_000
CARD_READ_MAX_MS = 120_000

#: The read code for each way a card can refuse the connection.
CONNECT_FAILURE_CODES: dict[ConnectProblem, str] = {
    "mute": "E_CARD_MUTE",
    "removed": "E_CARD_REMOVED",
    "error": "E_CARD_DATA",
}

#: Screen lines (Chinese, English) per code; docs/test-port-protocol.md lists them.
CARD_SCREENS: dict[str, tuple[str, str]] = {
    "E_CARD_MUTE": ("卡片无响应", "Card not responding"),
    "E_CARD_NO_APP": ("不支持此卡", "Card not supported"),
    "E_CARD_REMOVED": ("卡片已拔出", "Card removed"),
    "E_CARD_DATA": ("读卡错误", "Card read error"),
    "E_CARD_EXPIRED": ("卡片已过期", "Card expired"),
    "E_PIN_BLOCKED": ("密码已锁", "PIN tries exceeded"),
    "E_CARD_DECLINED": ("卡片拒绝", "Declined by card"),
    "E_SWIPE_READ": ("请重新刷卡", "Swipe again"),
    "E_USE_CHIP": ("请插卡", "Use chip"),
}
READING_LINES = ("读卡中", "Reading card...")
PROMPT_LINES = ("请插卡/挥卡/刷卡", "Insert, tap or swipe card")
REMOVE_LINE = "请取卡 Remove card"


#: Seeded defects (docs/test-port-protocol.md) that leak the card number: the full PAN
#: in the ``card.read`` event and answer, or in the card read's log entry.
DEFECT_PAN_IN_EVENTS = "pan_in_events"
DEFECT_PAN_IN_LOG = "pan_in_log"
LEAK_DEFECTS = (DEFECT_PAN_IN_EVENTS, DEFECT_PAN_IN_LOG)


class CardReader:
    """The reader unit of the terminal: watches readers, reads cards, reports results."""

    def __init__(
        self,
        *,
        channels: Channels,
        display: Display,
        emit: Callable[[str, dict[str, Any]], None],
        log_entry: Callable[[str, str, str], Any],
        show_idle: Callable[[], None],
        is_idle: Callable[[], bool],
        reader_powered: Callable[[], bool],
        tampered: Callable[[], bool],
        time_scale: float,
    ) -> None:
        self.readers: dict[str, str] = {}
        if channels.has("pcsc") and channels.value("pcsc"):
            self.readers[channels.value("pcsc")] = ENTRY_CHIP
        if channels.has("pcsc_cl") and channels.value("pcsc_cl"):
            self.readers[channels.value("pcsc_cl")] = ENTRY_CONTACTLESS
        self._display = display
        self._emit = emit
        self._log = log_entry
        self._show_idle = show_idle
        self._is_idle = is_idle
        self.reader_powered = reader_powered
        self._tampered = tampered
        self._time_scale = time_scale
        #: seeded defects of the running image this reader honours (LEAK_DEFECTS)
        self.leaks: frozenset[str] = frozenset()
        #: every seeded defect of the running image (hil.sim.defects); the reader honours
        #: the card-reading ones
        self.defects: frozenset[str] = frozenset()
        self._chip_reads = 0
        self._read_lock = threading.Lock()
        self._results = threading.Condition()
        self._result_count = 0
        self._last: dict[str, Any] | None = None
        self._idle_timer: threading.Timer | None = None
        self._prompting = False
        #: a sale waiting for a card: (entry mode, amount); its read uses the amount
        self._sale: tuple[str, int] | None = None
        #: the last successful read's data for the host (kept in here, never reported)
        self._last_online: OnlineData | None = None
        self._monitor = ReaderMonitor(
            self.readers, on_arrived=self._card_arrived, on_left=self._card_left
        )

    # --- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        self._monitor.start()

    def stop(self) -> None:
        self._monitor.stop()
        timer = self._idle_timer
        if timer is not None:
            timer.cancel()

    # --- cards arriving and leaving (on the monitor's thread) ----------------------------

    def _card_arrived(self, context: PcscContext, reader: str) -> None:
        entry = self.readers[reader]
        if not self.reader_powered():
            return  # an unpowered reader sees nothing
        if not self._is_idle():
            self._log("info", "I_CARD_IGNORED", f"{entry} card ignored: terminal not idle")
            return
        with self._read_lock:
            self._emit("card.presented", {"entry_mode": entry, "reader": reader})
            self._display.show("card_reading", [*READING_LINES, entry])
            started = time.monotonic()
            card = PcscCard(context, reader)
            sale = self._sale
            amount = sale[1] if sale is not None and sale[0] == entry else 0
            kernel = EmvKernel(card, entry, amount=amount)
            try:
                card.connect()
                result = kernel.run()
                result.update(ok=True, code="OK", message="card read")
            except ReadFailure as failure:
                result = self._failure_result(failure, entry, reader)
            except CardConnectError as refused:
                code = CONNECT_FAILURE_CODES[refused.problem]
                result = self._failure_result(ReadFailure(code, refused.message), entry, reader)
            except CardIoError as e:
                removed = card_left(context, reader, REMOVAL_CONFIRM_S)
                code = "E_CARD_REMOVED" if removed else "E_CARD_DATA"
                message = (
                    "the card was removed during the transaction"
                    if code == "E_CARD_REMOVED"
                    else f"card I/O error: {e}"
                )
                result = self._failure_result(ReadFailure(code, message), entry, reader)
            finally:
                try:
                    card.disconnect(unpower=entry == ENTRY_CONTACTLESS)
                except Exception:  # the card may be gone already
                    log.debug("disconnect failed", exc_info=True)
            result = self._seeded_read_defects(result)
            result["apdus"] = card.exchanges
            result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self._finish(
                result,
                wait_removal=entry == ENTRY_CHIP and result["code"] != "E_CARD_REMOVED",
                clear_pan=kernel.pan_digits,
                online=kernel.online,
            )

    def _card_left(self, reader: str) -> None:
        entry = self.readers[reader]
        self._emit("card.removed", {"entry_mode": entry, "reader": reader})
        if entry == ENTRY_CHIP and self._display.read().screen in ("card_read", "card_error"):
            self._return_to_idle()

    def _seeded_read_defects(self, result: dict[str, Any]) -> dict[str, Any]:
        """A chip or contactless read as the seeded card-reading defects spoil it."""
        self._chip_reads += 1
        entry, reader = result["entry_mode"], result["reader"]
        if seeded.EVERY_FIFTH_CARD_READ_FAILS in self.defects and self._chip_reads % 5 == 0:
            # The record buffer's index wraps every fifth read: the records come back empty.
            failure = ReadFailure("E_CARD_DATA", "card records unreadable")
            return self._failure_result(failure, entry, reader)
        this_month = date.today().strftime("%y%m")
        if (
            seeded.CARD_EXPIRING_THIS_MONTH_REFUSED in self.defects
            and result.get("ok")
            and result.get("expiry") == this_month
        ):
            # Month end compared with >= instead of >: the card's last month is refused.
            failure = ReadFailure(
                "E_CARD_EXPIRED", f"card expired at the end of 20{this_month[:2]}-{this_month[2:]}"
            )
            return self._failure_result(failure, entry, reader) | {"outcome": "declined"}
        return result

    @staticmethod
    def _failure_result(failure: ReadFailure, entry: str, reader: str) -> dict[str, Any]:
        result: dict[str, Any] = {"entry_mode": entry, "reader": reader}
        result.update(failure.known)
        result.setdefault("outcome", "error")
        result.update(ok=False, code=failure.code, message=failure.message)
        return result

    # --- magstripe -----------------------------------------------------------------------

    def swipe(self, track1: str | None, track2: str | None) -> None:
        """A swipe through the mag head (called on the mag-head channel's thread)."""
        if not self.reader_powered() or not self._is_idle():
            return
        with self._read_lock:
            self._emit("card.presented", {"entry_mode": ENTRY_MAGSTRIPE, "reader": "maghead"})
            started = time.monotonic()
            result, clear_pan = self._decode_swipe(track1, track2)
            if seeded.TRACK2_IN_SWIPE_EVENT in self.defects and track2 and clear_pan:
                result["track2"] = track2  # a debug field left in the read's result
            result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self._finish(result, wait_removal=False, clear_pan=clear_pan)

    def _decode_swipe(
        self, track1: str | None, track2: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """The read's result, and the PAN in clear when a track decoded (never reported)."""
        base: dict[str, Any] = {"entry_mode": ENTRY_MAGSTRIPE, "reader": "maghead"}
        data: TrackData | None = None
        problem: TrackError | None = None
        for raw, decode in ((track2, decode_track2), (track1, decode_track1)):
            if not raw:
                continue
            try:
                data = decode(raw)
                break
            except TrackError as e:
                problem = problem or e
        if data is None:
            why = f"{problem.kind} on track {problem.track}" if problem else "no track read"
            return base | {
                "ok": False,
                "code": "E_SWIPE_READ",
                "outcome": "error",
                "message": f"swipe unreadable ({why}); swipe again",
            }, None
        base.update(pan=mask_pan(data.pan), expiry=data.expiry, service_code=data.service_code)
        chip_first = seeded.CHIP_CARD_SWIPE_ACCEPTED not in self.defects
        if chip_first and data.service_code[0] in "26" and ENTRY_CHIP in self.readers.values():
            return base | {
                "ok": False,
                "code": "E_USE_CHIP",
                "outcome": "error",
                "message": f"service code {data.service_code}: chip card, use the chip reader",
            }, data.pan
        if expiry_passed(data.expiry, date.today()):
            return base | {
                "ok": False,
                "code": "E_CARD_EXPIRED",
                "outcome": "declined",
                "message": f"card expired at the end of 20{data.expiry[:2]}-{data.expiry[2:]}",
            }, data.pan
        read = {"ok": True, "code": "OK", "outcome": "online", "message": "stripe read"}
        return base | read, data.pan

    # --- results, screens ----------------------------------------------------------------

    def _finish(
        self,
        result: dict[str, Any],
        *,
        wait_removal: bool,
        clear_pan: str | None = None,
        online: OnlineData | None = None,
    ) -> None:
        entry = result["entry_mode"]
        if result["ok"]:
            lines = [str(result.get("label") or "卡片 Card"), str(result.get("pan", ""))]
            logged = dict(result)
            if DEFECT_PAN_IN_LOG in self.leaks and clear_pan:
                logged["pan"] = clear_pan  # seeded defect: the log gets the card number
            self._log(
                "info",
                "I_CARD_READ",
                f"{entry} read "
                + " ".join(str(logged[k]) for k in ("pan", "aid", "label") if logged.get(k)),
            )
            self._display.show(
                "card_read",
                [*lines, REMOVE_LINE] if wait_removal else ["读卡成功 Card read", *lines],
            )
        else:
            chinese, english = CARD_SCREENS.get(result["code"], ("读卡错误", "Card read error"))
            self._log("warn", result["code"], f"{entry}: {result['message']}")
            lines = [chinese, english, result["code"]]
            self._display.show("card_error", [*lines, REMOVE_LINE] if wait_removal else lines)
        if DEFECT_PAN_IN_EVENTS in self.leaks and clear_pan:
            result = result | {"pan": clear_pan}  # seeded defect: the card number leaves
        self._emit("card.read", result)
        with self._results:
            self._last = result
            self._last_online = online if result["ok"] else None
            self._result_count += 1
            self._results.notify_all()
        if not wait_removal:
            self._schedule_idle(READ_HOLD_S * self._time_scale)

    def _schedule_idle(self, delay: float) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        timer = threading.Timer(delay, self._return_to_idle)
        timer.daemon = True
        self._idle_timer = timer
        timer.start()

    def _return_to_idle(self) -> None:
        if self._prompting:
            self._display.show("card_prompt", list(PROMPT_LINES))
        else:
            self._show_idle()

    # --- test-port commands ----------------------------------------------------------------

    def payment_refusal(self) -> tuple[str, str] | None:
        """Why a payment must be refused now (code, message), or None."""
        if self._tampered():
            return "E_TAMPERED", "tamper switch open: the terminal is locked, no payment"
        if self.readers and not self.reader_powered():
            return "E_READER_FAULT", "card reader fault (reader power lost): payments refused"
        return None

    def read_for_sale(
        self, entry: str, amount: int, timeout_ms: int, prompt: Callable[[], None]
    ) -> tuple[dict[str, Any], OnlineData]:
        """The card of a sale: arm the reader with the amount, ``prompt``, then wait for
        the next read of this entry mode. Returns the (masked) read and the data for the
        host; a read that failed or that the card declined refuses the sale with its
        card code (``CommandFailed``), as does no card within ``timeout_ms``."""
        if entry not in self.readers.values():
            raise CommandFailed("E_READER_FAULT", f"no {entry} reader connected: no {entry} sale")
        with self._results:
            start_count = self._result_count
            self._sale = (entry, amount)
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            prompt()
            with self._results:
                while True:
                    if self._result_count > start_count and self._last is not None:
                        if self._last.get("entry_mode") == entry:
                            break
                        start_count = self._result_count  # another reader's card: not ours
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise CommandFailed(
                            "E_TIMEOUT", f"no {entry} card presented within {timeout_ms} ms"
                        )
                    self._results.wait(remaining)
                result, online = dict(self._last), self._last_online
        finally:
            with self._results:
                self._sale = None
        if not result.get("ok") or online is None:
            code = str(result.get("code") or "E_CARD_DATA")
            raise CommandFailed(code, f"sale refused by the card read: {result.get('message')}")
        timer = self._idle_timer
        if timer is not None:
            timer.cancel()  # the sale owns the screen now, not the read's hold time
        return result, online

    def cmd_card_read(self, args: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(args) - {"timeout_ms"})
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS", f"unknown argument(s) {', '.join(unknown)}; expected: timeout_ms"
            )
        timeout_ms = args.get("timeout_ms", CARD_READ_DEFAULT_MS)
        if (
            isinstance(timeout_ms, bool)
            or not isinstance(timeout_ms, int)
            or not 1 <= timeout_ms <= CARD_READ_MAX_MS
        ):
            raise CommandFailed(
                "E_BAD_ARGS", f"timeout_ms must be an integer from 1 to {CARD_READ_MAX_MS}"
            )
        refusal = self.payment_refusal()
        if refusal is not None and refusal[0] == "E_READER_FAULT":
            raise CommandFailed(*refusal)
        with self._results:
            start_count = self._result_count
        self._prompting = True
        self._display.show("card_prompt", list(PROMPT_LINES))
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            with self._results:
                while self._result_count == start_count:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise CommandFailed(
                            "E_TIMEOUT", f"no card presented within {timeout_ms} ms"
                        )
                    self._results.wait(remaining)
                result = dict(self._last or {})
        finally:
            self._prompting = False
            if self._display.read().screen == "card_prompt":
                self._show_idle()
        return result

    def cmd_card_last(self, args: dict[str, Any]) -> dict[str, Any]:
        if args:
            raise CommandFailed("E_BAD_ARGS", "card.last takes no arguments")
        with self._results:
            return {
                "read": None if self._last is None else dict(self._last),
                "count": self._result_count,
            }

    def status(self) -> dict[str, Any]:
        return {
            "readers": [
                {
                    "reader": reader,
                    "entry_mode": entry,
                    "card_present": self._monitor.card_present(reader),
                }
                for reader, entry in self.readers.items()
            ],
            "reader_power": "ok" if self.reader_powered() else "fault",
            "monitor_error": self._monitor.error,
        }


class CardPeripherals:
    """Everything card-related a terminal session owns: fault-line inputs, mag head,
    reader unit; built from the channels, started and stopped by the terminal."""

    def __init__(
        self,
        channels: Channels,
        hardware: Hardware,
        *,
        display: Display,
        emit: Callable[[str, dict[str, Any]], None],
        log_entry: Callable[[str, str, str], Any],
        show_idle: Callable[[], None],
        is_idle: Callable[[], bool],
        time_scale: float,
    ) -> None:
        self.fault_lines = (
            FaultLineInputs(channels.value("faultlines")) if channels.has("faultlines") else None
        )
        self.reader = CardReader(
            channels=channels,
            display=display,
            emit=emit,
            log_entry=log_entry,
            show_idle=show_idle,
            is_idle=is_idle,
            reader_powered=hardware.reader_powered,
            tampered=hardware.tamper_open,
            time_scale=time_scale,
        )
        self.maghead = (
            MagHead(channels.value("maghead"), self.reader.swipe)
            if channels.has("maghead")
            else None
        )

    def start_inputs(self) -> None:
        """At power-on, before the self-check: fault lines and the mag head."""
        if self.maghead is not None:
            self.maghead.start()
        if self.fault_lines is not None:
            self.fault_lines.start()

    def start_reader(self) -> None:
        """Once idle: watch the card readers."""
        self.reader.start()

    def stop(self) -> None:
        self.reader.stop()
        for part in (self.maghead, self.fault_lines):
            if part is not None:
                part.close()

    def commands(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "card.read": self.reader.cmd_card_read,
            "card.last": self.reader.cmd_card_last,
            "card.status": self._cmd_card_status,
        }

    def _cmd_card_status(self, args: dict[str, Any]) -> dict[str, Any]:
        if args:
            raise CommandFailed("E_BAD_ARGS", "card.status takes no arguments")
        status = self.reader.status()
        status["maghead"] = (
            None
            if self.maghead is None
            else {"connected": self.maghead.connected, "reason": self.maghead.reason}
        )
        status["fault_lines"] = None if self.fault_lines is None else self.fault_lines.snapshot()
        return status
