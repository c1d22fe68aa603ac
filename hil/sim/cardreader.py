"""The simulated terminal's card reader: chip and contactless through PC/SC, magstripe
through the mag head.

Chip (channel ``pcsc``) and contactless (channel ``pcsc_cl``) readers are watched with
blocking ``SCardGetStatusChange`` on one thread (no polling loop: the thread sleeps in
pcscd until a card arrives or leaves; ``SCardCancel`` wakes it to stop). A card that
arrives while the terminal is idle is read at once with the EMV flow: application
selection (PSE for chip, PPSE for contactless, then the terminal's own AID list),
GET PROCESSING OPTIONS with the PDOL, READ RECORD per AFL, the PIN try counter when
the card wants offline PIN, GENERATE AC. T=0 cards are served with GET RESPONSE
(``61xx``) and a resend with the right Le (``6Cxx``).

What was read is reported on the test port (event ``card.read``) with the PAN masked
here, at the source; the full PAN and the track data never leave this module.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from hil.cards import tlv
from hil.cards.track import TrackData, TrackError, decode_track1, decode_track2
from hil.masking import mask_pan
from hil.protocol.endpoint import CommandFailed
from hil.sim.channels import Channels
from hil.sim.display import Display
from hil.sim.faultlines import FaultLineInputs
from hil.sim.hardware import Hardware
from hil.sim.maghead import MagHead

log = logging.getLogger("hil.sim.cardreader")

ENTRY_CHIP = "chip"
ENTRY_CONTACTLESS = "contactless"
ENTRY_MAGSTRIPE = "magstripe"

PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"

#: Applications this terminal supports (its AID list), tried when the PSE is absent.
SUPPORTED_AIDS: dict[str, str] = {
    "A0000000031010": "VISA",
    "A0000000041010": "MASTERCARD",
    "A000000333010101": "UNIONPAY DEBIT",
    "A000000333010102": "UNIONPAY CREDIT",
    "A000000333010103": "UNIONPAY QUASI CREDIT",
}

# Terminal data for PDOL and CDOL (EMV Book 3 Annex A); numeric values in BCD.
TERMINAL_COUNTRY = bytes.fromhex("0156")
TERMINAL_CURRENCY = bytes.fromhex("0156")
TTQ = bytes.fromhex("36000000")

READ_HOLD_S = 1.5  # a tap or swipe result stays on screen this long (times the time scale)
REMOVAL_CONFIRM_S = 1.0  # after an I/O error, how long to wait for the reader to see removal
CARD_READ_DEFAULT_MS = 10_000
CARD_READ_MAX_MS = 120_000

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


class ReadFailure(Exception):
    """The read stopped with a documented code; ``known`` holds what was read so far."""

    def __init__(self, code: str, message: str, known: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.known = known or {}


def _sc() -> Any:
    from smartcard import scard

    return scard


def _pan_digits(value: bytes) -> str:
    return value.hex().upper().rstrip("F")


def _cid_name(cid: int) -> str:
    return {0x00: "AAC", 0x40: "TC", 0x80: "ARQC"}.get(cid & 0xC0, f"CID {cid:02X}")


def _expiry_passed(yymm: str, today: date) -> bool:
    year, month = 2000 + int(yymm[:2]), int(yymm[2:4])
    return (today.year, today.month) > (year, month)


class PcscCard:
    """A connected card: transmit with the T=0 rules (61xx, 6Cxx) handled."""

    def __init__(self, context: Any, reader: str) -> None:
        self.context = context
        self.reader = reader
        self.handle: Any = None
        self.protocol: Any = None
        self.exchanges = 0

    def connect(self) -> None:
        sc = _sc()
        result, handle, protocol = sc.SCardConnect(
            self.context,
            self.reader,
            sc.SCARD_SHARE_SHARED,
            sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1,
        )
        if result in (
            sc.SCARD_W_UNRESPONSIVE_CARD,
            sc.SCARD_W_UNPOWERED_CARD,
            sc.SCARD_W_UNSUPPORTED_CARD,
        ):
            raise ReadFailure("E_CARD_MUTE", "the card gives no valid answer to reset (mute card)")
        if result in (sc.SCARD_E_NO_SMARTCARD, sc.SCARD_W_REMOVED_CARD):
            raise ReadFailure("E_CARD_REMOVED", "the card was removed before it could be read")
        if result != sc.SCARD_S_SUCCESS:
            raise ReadFailure(
                "E_CARD_DATA", f"cannot connect to the card: {sc.SCardGetErrorMessage(result)}"
            )
        self.handle, self.protocol = handle, protocol

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        data, sw = self._raw(apdu)
        if sw >> 8 == 0x6C and len(apdu) >= 5:  # wrong Le: send again with the one the card wants
            data, sw = self._raw(
                apdu[:-1] + bytes([sw & 0xFF]) if len(apdu) == 5 else apdu + bytes([sw & 0xFF])
            )
        collected = data
        while sw >> 8 == 0x61:  # T=0: response data waits for GET RESPONSE
            data, sw = self._raw(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
            collected += data
        return collected, sw

    def _raw(self, apdu: bytes) -> tuple[bytes, int]:
        sc = _sc()
        result, response = sc.SCardTransmit(self.handle, self.protocol, list(apdu))
        self.exchanges += 1
        if result != sc.SCARD_S_SUCCESS or len(response) < 2:
            raise _IoError(sc.SCardGetErrorMessage(result) if result else "short response")
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def disconnect(self, unpower: bool) -> None:
        if self.handle is None:
            return
        sc = _sc()
        sc.SCardDisconnect(self.handle, sc.SCARD_UNPOWER_CARD if unpower else sc.SCARD_LEAVE_CARD)
        self.handle = None


class _IoError(Exception):
    """SCardTransmit failed: removal or a broken card; the caller finds out which."""


def _select(aid: bytes) -> bytes:
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid + b"\x00"


def _terminal_data(amount: int, unpredictable: bytes, tvr: bytes) -> dict[int, bytes]:
    today = date.today()
    return {
        0x9F66: TTQ,
        0x9F02: bytes.fromhex(f"{amount:012d}"),
        0x9F03: bytes(6),
        0x9F1A: TERMINAL_COUNTRY,
        0x5F2A: TERMINAL_CURRENCY,
        0x9A: bytes.fromhex(today.strftime("%y%m%d")),
        0x9C: b"\x00",
        0x9F37: unpredictable,
        0x95: tvr,
        0x9F35: b"\x22",
        0x9F33: bytes.fromhex("E0F8C8"),
    }


class EmvReader:
    """The EMV flow over one connected card. Pure protocol logic; no screens, no events."""

    def __init__(self, card: PcscCard, entry: str, *, amount: int = 0) -> None:
        self.card = card
        self.entry = entry
        self.amount = amount
        self.known: dict[str, Any] = {"entry_mode": entry, "reader": card.reader}

    def fail(self, code: str, message: str) -> ReadFailure:
        return ReadFailure(code, message, dict(self.known))

    def run(self) -> dict[str, Any]:
        candidates = self._candidates()
        if not candidates:
            raise self.fail("E_CARD_NO_APP", "no supported payment application on the card (6A82)")
        fci = b""
        chosen: tuple[bytes, str] | None = None
        for aid, label in candidates:
            fci, sw = self.card.transmit(_select(aid))
            if sw == 0x9000:
                chosen = (aid, label)
                break
        if chosen is None:
            raise self.fail("E_CARD_NO_APP", "no supported payment application could be selected")
        aid, label = chosen
        label_tag = tlv.find(fci, 0x50)
        self.known.update(
            aid=aid.hex().upper(), label=(label_tag or label.encode()).decode("ascii", "replace")
        )
        unpredictable = os.urandom(4)
        tvr = bytearray(5)
        values = _terminal_data(self.amount, unpredictable, bytes(tvr))
        pdol = tlv.parse_dol(tlv.find(fci, 0x9F38) or b"")
        pdol_data = tlv.build_dol(pdol, values)
        command = tlv.encode(0x83, pdol_data)
        response, sw = self.card.transmit(
            bytes([0x80, 0xA8, 0x00, 0x00, len(command)]) + command + b"\x00"
        )
        if sw != 0x9000:
            raise self.fail("E_CARD_DATA", f"GET PROCESSING OPTIONS answered {sw:04X}")
        aip, afl = self._aip_afl(response)
        data = self._read_records(afl)
        pan = data.get(0x5A)
        if pan is None:
            raise self.fail("E_CARD_DATA", "the card's records hold no PAN (tag 5A)")
        digits = _pan_digits(pan)
        expiry = data.get(0x5F24, b"").hex()[:4]
        service = data.get(0x5F30, b"").hex()[-3:]
        self.known.update(
            pan=mask_pan(digits),
            expiry=expiry,
            service_code=service,
            pan_sequence=data.get(0x5F34, b"").hex() or None,
            aip=aip.hex().upper(),
        )
        decline: tuple[str, str] | None = None
        if len(expiry) != 4 or not expiry.isdigit():
            raise self.fail("E_CARD_DATA", "expiry date (5F24) missing or malformed")
        if _expiry_passed(expiry, date.today()):
            tvr[1] |= 0x40  # expired application
            decline = ("E_CARD_EXPIRED", f"card expired at the end of 20{expiry[:2]}-{expiry[2:]}")
        cvm = data.get(0x8E, b"")
        if decline is None and aip[0] & 0x10 and self._wants_offline_pin(cvm):
            tries = self._pin_tries()
            self.known["pin_try_counter"] = tries
            if tries == 0:
                tvr[2] |= 0x20  # PIN try limit exceeded
                decline = ("E_PIN_BLOCKED", "PIN try limit exceeded on the card (9F17 = 0)")
        values[0x95] = bytes(tvr)
        cdol1 = tlv.parse_dol(data.get(0x8C, b""))
        request = 0x00 if decline else 0x80  # AAC when the terminal declines, else ARQC
        cdol_data = tlv.build_dol(cdol1, values)
        response, sw = self.card.transmit(
            bytes([0x80, 0xAE, request, 0x00, len(cdol_data)]) + cdol_data + b"\x00"
        )
        if sw != 0x9000:
            raise self.fail("E_CARD_DATA", f"GENERATE AC answered {sw:04X}")
        cid, atc = self._ac_result(response)
        self.known.update(cryptogram=_cid_name(cid), atc=atc)
        if decline is not None:
            self.known["outcome"] = "declined"
            raise self.fail(*decline)
        if cid & 0xC0 == 0x00:
            self.known["outcome"] = "declined"
            raise self.fail("E_CARD_DECLINED", "the card declined the transaction (AAC)")
        self.known["outcome"] = "approved" if cid & 0xC0 == 0x40 else "online"
        return dict(self.known)

    def _candidates(self) -> list[tuple[bytes, str]]:
        directory = PSE if self.entry == ENTRY_CHIP else PPSE
        fci, sw = self.card.transmit(_select(directory))
        found: list[tuple[int, bytes, str]] = []
        if sw == 0x9000:
            entries = self._directory_entries(fci)
            for entry in entries:
                aid = entry.get(0x4F)
                if aid is None:
                    continue
                label = entry.get(0x50, b"").decode("ascii", "replace")
                priority = entry.get(0x87, b"\x0f")[0] & 0x0F
                if any(
                    aid.hex().upper().startswith(s) or s.startswith(aid.hex().upper())
                    for s in SUPPORTED_AIDS
                ):
                    found.append((priority, aid, label))
        if found:
            return [(aid, label) for _, aid, label in sorted(found, key=lambda f: f[0])]
        # No directory: try the terminal's own list (EMV Book 1 12.3.3).
        out = []
        for aid_hex, name in SUPPORTED_AIDS.items():
            fci, sw = self.card.transmit(_select(bytes.fromhex(aid_hex)))
            if sw == 0x9000:
                out.append((bytes.fromhex(aid_hex), name))
        return out

    def _directory_entries(self, fci: bytes) -> list[dict[int, bytes]]:
        try:
            if self.entry == ENTRY_CONTACTLESS:
                directory = tlv.find(fci, 0xBF0C) or b""
                return [
                    dict((c.tag, c.value) for c in t.children())
                    for t in tlv.decode(directory)
                    if t.tag == 0x61
                ]
            sfi = (tlv.find(fci, 0x88) or b"\x01")[0]
            entries: list[dict[int, bytes]] = []
            for number in range(1, 11):
                record, sw = self.card.transmit(bytes([0x00, 0xB2, number, (sfi << 3) | 4, 0x00]))
                if sw != 0x9000:
                    break
                for item in tlv.walk(record):
                    if item.tag == 0x61:
                        entries.append({c.tag: c.value for c in item.children()})
            return entries
        except tlv.TlvError as e:
            raise self.fail("E_CARD_DATA", f"malformed directory: {e}") from None

    def _aip_afl(self, response: bytes) -> tuple[bytes, bytes]:
        try:
            items = tlv.decode(response)
        except tlv.TlvError as e:
            raise self.fail("E_CARD_DATA", f"malformed GPO response: {e}") from None
        if items and items[0].tag == 0x80 and len(items[0].value) >= 2:
            return items[0].value[:2], items[0].value[2:]
        aip = tlv.find(response, 0x82)
        afl = tlv.find(response, 0x94)
        if aip is None or len(aip) != 2 or afl is None:
            raise self.fail("E_CARD_DATA", "GPO response lacks AIP or AFL")
        return aip, afl

    def _read_records(self, afl: bytes) -> dict[int, bytes]:
        if len(afl) % 4:
            raise self.fail("E_CARD_DATA", f"AFL length {len(afl)} is not a multiple of 4")
        data: dict[int, bytes] = {}
        for i in range(0, len(afl), 4):
            sfi, first, last = afl[i] >> 3, afl[i + 1], afl[i + 2]
            if not 1 <= sfi <= 30 or first == 0 or last < first:
                raise self.fail("E_CARD_DATA", "malformed AFL entry")
            for number in range(first, last + 1):
                record, sw = self.card.transmit(bytes([0x00, 0xB2, number, (sfi << 3) | 4, 0x00]))
                if sw != 0x9000:
                    raise self.fail(
                        "E_CARD_DATA", f"READ RECORD SFI {sfi} record {number} answered {sw:04X}"
                    )
                try:
                    items = tlv.decode(record)
                    if len(items) != 1 or items[0].tag != 0x70:
                        raise tlv.TlvError("record is not a 70 template")
                    for key, value in tlv.flatten(items[0].value).items():
                        data.setdefault(key, value)
                except tlv.TlvError as e:
                    raise self.fail("E_CARD_DATA", f"SFI {sfi} record {number}: {e}") from None
        return data

    @staticmethod
    def _wants_offline_pin(cvm: bytes) -> bool:
        rules = cvm[8:]
        return any(rules[i] & 0x3F == 0x01 for i in range(0, len(rules) - 1, 2))

    def _pin_tries(self) -> int | None:
        data, sw = self.card.transmit(bytes([0x80, 0xCA, 0x9F, 0x17, 0x00]))
        value = tlv.find(data, 0x9F17) if sw == 0x9000 else None
        return value[0] if value else None

    def _ac_result(self, response: bytes) -> tuple[int, int]:
        try:
            items = tlv.decode(response)
        except tlv.TlvError as e:
            raise self.fail("E_CARD_DATA", f"malformed GENERATE AC response: {e}") from None
        if items and items[0].tag == 0x80 and len(items[0].value) >= 3:
            return items[0].value[0], int.from_bytes(items[0].value[1:3], "big")
        cid = tlv.find(response, 0x9F27)
        atc = tlv.find(response, 0x9F36)
        if not cid or not atc:
            raise self.fail("E_CARD_DATA", "GENERATE AC response lacks CID or ATC")
        return cid[0], int.from_bytes(atc, "big")


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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: Any = None
        self._context_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._results = threading.Condition()
        self._result_count = 0
        self._last: dict[str, Any] | None = None
        self._present: dict[str, bool] = dict.fromkeys(self.readers, False)
        self._idle_timer: threading.Timer | None = None
        self._prompting = False
        self.monitor_error = ""

    # --- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        if not self.readers or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._monitor, name="card-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._context_lock:
            if self._context is not None:
                _sc().SCardCancel(self._context)
        if self._thread is not None:
            self._thread.join(timeout=3.0)
        timer = self._idle_timer
        if timer is not None:
            timer.cancel()

    # --- monitoring ----------------------------------------------------------------------

    def _monitor(self) -> None:
        sc = _sc()
        while not self._stop.is_set():
            result, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
            if result != sc.SCARD_S_SUCCESS:
                self.monitor_error = f"PC/SC unavailable: {sc.SCardGetErrorMessage(result)}"
                self._stop.wait(1.0)
                continue
            with self._context_lock:
                self._context = context
            try:
                self._watch(context)
            finally:
                with self._context_lock:
                    self._context = None
                sc.SCardReleaseContext(context)
            self._stop.wait(1.0)  # pcscd went away or a reader vanished: try again soon

    def _watch(self, context: Any) -> None:
        sc = _sc()
        states = dict.fromkeys(self.readers, sc.SCARD_STATE_UNAWARE)
        while not self._stop.is_set():
            result, new_states = sc.SCardGetStatusChange(
                context, sc.INFINITE, [(reader, state) for reader, state in states.items()]
            )
            if result == sc.SCARD_E_CANCELLED or self._stop.is_set():
                return
            if result == sc.SCARD_E_TIMEOUT:
                continue
            if result != sc.SCARD_S_SUCCESS:
                self.monitor_error = f"reader watch failed: {sc.SCardGetErrorMessage(result)}"
                return
            self.monitor_error = ""
            for reader, event_state, _atr in new_states:
                states[reader] = event_state & ~sc.SCARD_STATE_CHANGED
                present = bool(event_state & sc.SCARD_STATE_PRESENT)
                was = self._present.get(reader, False)
                self._present[reader] = present
                if present and not was:
                    self._card_arrived(context, reader)
                elif was and not present:
                    self._card_left(reader)

    def _card_arrived(self, context: Any, reader: str) -> None:
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
            try:
                card.connect()
                result = EmvReader(card, entry).run()
                result.update(ok=True, code="OK", message="card read")
            except ReadFailure as failure:
                result = self._failure_result(failure, entry, reader)
            except _IoError as e:
                code = "E_CARD_REMOVED" if self._removed(context, reader) else "E_CARD_DATA"
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
            result["apdus"] = card.exchanges
            result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self._finish(
                result, wait_removal=entry == ENTRY_CHIP and result["code"] != "E_CARD_REMOVED"
            )

    def _removed(self, context: Any, reader: str) -> bool:
        """After an I/O error: did the card leave? Wait for the reader to say so."""
        sc = _sc()
        result, states = sc.SCardGetStatusChange(
            context, int(REMOVAL_CONFIRM_S * 1000), [(reader, sc.SCARD_STATE_PRESENT)]
        )
        if result != sc.SCARD_S_SUCCESS:
            return False  # still present after the wait (or PC/SC trouble): a card fault
        return not states[0][1] & sc.SCARD_STATE_PRESENT

    def _card_left(self, reader: str) -> None:
        entry = self.readers[reader]
        self._emit("card.removed", {"entry_mode": entry, "reader": reader})
        if entry == ENTRY_CHIP and self._display.read().screen in ("card_read", "card_error"):
            self._return_to_idle()

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
            result = self._decode_swipe(track1, track2)
            result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            self._finish(result, wait_removal=False)

    def _decode_swipe(self, track1: str | None, track2: str | None) -> dict[str, Any]:
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
            }
        base.update(pan=mask_pan(data.pan), expiry=data.expiry, service_code=data.service_code)
        if data.service_code[0] in "26" and ENTRY_CHIP in self.readers.values():
            return base | {
                "ok": False,
                "code": "E_USE_CHIP",
                "outcome": "error",
                "message": f"service code {data.service_code}: chip card, use the chip reader",
            }
        if _expiry_passed(data.expiry, date.today()):
            return base | {
                "ok": False,
                "code": "E_CARD_EXPIRED",
                "outcome": "declined",
                "message": f"card expired at the end of 20{data.expiry[:2]}-{data.expiry[2:]}",
            }
        return base | {"ok": True, "code": "OK", "outcome": "online", "message": "stripe read"}

    # --- results, screens ----------------------------------------------------------------

    def _finish(self, result: dict[str, Any], *, wait_removal: bool) -> None:
        entry = result["entry_mode"]
        if result["ok"]:
            lines = [str(result.get("label") or "卡片 Card"), str(result.get("pan", ""))]
            self._log(
                "info",
                "I_CARD_READ",
                f"{entry} read "
                + " ".join(str(result[k]) for k in ("pan", "aid", "label") if result.get(k)),
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
        self._emit("card.read", result)
        with self._results:
            self._last = result
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

    def guard_payment(
        self, command: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def guarded(args: dict[str, Any]) -> dict[str, Any]:
            refusal = self.payment_refusal()
            if refusal is not None:
                self._log("warn", refusal[0], f"payment refused: {refusal[1]}")
                raise CommandFailed(*refusal)
            return command(args)

        return guarded

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
                    "card_present": self._present.get(reader, False),
                }
                for reader, entry in self.readers.items()
            ],
            "reader_power": "ok" if self.reader_powered() else "fault",
            "monitor_error": self.monitor_error,
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
        hardware.fault_lines = self.fault_lines
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
