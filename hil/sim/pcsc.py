"""The simulated terminal's PC/SC access: its card readers, through pyscard and pcscd.

``ReaderMonitor`` watches the chip and contactless readers with blocking
``SCardGetStatusChange`` on one thread (no polling loop: the thread sleeps in pcscd
until a card arrives or leaves; ``SCardCancel`` wakes it to stop) and reports each
arrival and removal. ``PcscCard`` is one connected card: APDUs go out with the T=0
rules handled, GET RESPONSE for ``61xx`` and a resend with the right Le for ``6Cxx``.

Only transport lives here: what the APDUs mean is ``hil.sim.emv_kernel``, what the
terminal does with a card is ``hil.sim.cardreader``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal

#: A pyscard ``SCARDCONTEXT`` handle (pyscard ships no type hints).
PcscContext = Any

ConnectProblem = Literal["mute", "removed", "error"]

MONITOR_STOP_WAIT_S = 3.0
RETRY_S = 1.0  # pcscd away or a reader gone: how soon to look again


def _scard() -> Any:
    # Imported on first use: a terminal wired with no card reader never loads pyscard.
    from smartcard import scard

    return scard


class CardConnectError(Exception):
    """``SCardConnect`` failed; ``problem`` says whether the card is mute, gone or other."""

    def __init__(self, problem: ConnectProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


class CardIoError(Exception):
    """``SCardTransmit`` failed: removal or a broken card; the caller finds out which."""


def list_readers() -> list[str]:
    """Reader names from PC/SC; raises RuntimeError when PC/SC is unusable."""
    try:
        from smartcard.System import readers
    except ImportError as e:
        raise RuntimeError(f"pyscard not installed: {e}") from e
    try:
        return [str(r) for r in readers()]
    except Exception as e:  # pyscard raises its own classes for a missing pcscd
        raise RuntimeError(f"PC/SC service unusable: {e}") from e


class PcscCard:
    """A connected card: transmit with the T=0 rules (61xx, 6Cxx) handled."""

    def __init__(self, context: PcscContext, reader: str) -> None:
        self.context = context
        self.reader = reader
        self.handle: Any = None
        self.protocol: Any = None
        self.exchanges = 0

    def connect(self) -> None:
        sc = _scard()
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
            raise CardConnectError("mute", "the card gives no valid answer to reset (mute card)")
        if result in (sc.SCARD_E_NO_SMARTCARD, sc.SCARD_W_REMOVED_CARD):
            raise CardConnectError("removed", "the card was removed before it could be read")
        if result != sc.SCARD_S_SUCCESS:
            raise CardConnectError(
                "error", f"cannot connect to the card: {sc.SCardGetErrorMessage(result)}"
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
        sc = _scard()
        result, response = sc.SCardTransmit(self.handle, self.protocol, list(apdu))
        self.exchanges += 1
        if result != sc.SCARD_S_SUCCESS or len(response) < 2:
            raise CardIoError(sc.SCardGetErrorMessage(result) if result else "short response")
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def disconnect(self, unpower: bool) -> None:
        if self.handle is None:
            return
        sc = _scard()
        sc.SCardDisconnect(self.handle, sc.SCARD_UNPOWER_CARD if unpower else sc.SCARD_LEAVE_CARD)
        self.handle = None


def card_left(context: PcscContext, reader: str, timeout_s: float) -> bool:
    """After an I/O error: did the card leave? Wait up to ``timeout_s`` for the reader
    to say so."""
    sc = _scard()
    result, states = sc.SCardGetStatusChange(
        context, int(timeout_s * 1000), [(reader, sc.SCARD_STATE_PRESENT)]
    )
    if result != sc.SCARD_S_SUCCESS:
        return False  # still present after the wait (or PC/SC trouble): a card fault
    return not states[0][1] & sc.SCARD_STATE_PRESENT


class ReaderMonitor:
    """Watches readers on one thread; calls ``on_arrived(context, reader)`` when a card
    arrives and ``on_left(reader)`` when it leaves, on that thread."""

    def __init__(
        self,
        readers: Iterable[str],
        *,
        on_arrived: Callable[[PcscContext, str], None],
        on_left: Callable[[str], None],
    ) -> None:
        self.readers = list(readers)
        self._on_arrived = on_arrived
        self._on_left = on_left
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: PcscContext = None
        self._context_lock = threading.Lock()
        self._present: dict[str, bool] = dict.fromkeys(self.readers, False)
        #: Why the watch is not running right now ("" while it is).
        self.error = ""

    def card_present(self, reader: str) -> bool:
        return self._present.get(reader, False)

    def start(self) -> None:
        if not self.readers or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._monitor, name="card-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._context_lock:
            if self._context is not None:
                _scard().SCardCancel(self._context)
        if self._thread is not None:
            self._thread.join(timeout=MONITOR_STOP_WAIT_S)

    def _monitor(self) -> None:
        sc = _scard()
        while not self._stop.is_set():
            result, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
            if result != sc.SCARD_S_SUCCESS:
                self.error = f"PC/SC unavailable: {sc.SCardGetErrorMessage(result)}"
                self._stop.wait(RETRY_S)
                continue
            with self._context_lock:
                self._context = context
            try:
                self._watch(context)
            finally:
                with self._context_lock:
                    self._context = None
                sc.SCardReleaseContext(context)
            self._stop.wait(RETRY_S)  # pcscd went away or a reader vanished: try again soon

    def _watch(self, context: PcscContext) -> None:
        sc = _scard()
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
                self.error = f"reader watch failed: {sc.SCardGetErrorMessage(result)}"
                return
            self.error = ""
            for reader, event_state, _atr in new_states:
                states[reader] = event_state & ~sc.SCARD_STATE_CHANGED
                present = bool(event_state & sc.SCARD_STATE_PRESENT)
                was = self._present.get(reader, False)
                self._present[reader] = present
                if present and not was:
                    self._on_arrived(context, reader)
                elif was and not present:
                    self._on_left(reader)
