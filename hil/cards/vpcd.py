"""The card side of vpcd (vsmartcard's virtual reader driver for pcscd).

Wire protocol (vsmartcard ``vpcd``): every message is a 2-byte big-endian length
and a payload. A 1-byte payload from the reader is a control message: ``00`` power
off, ``01`` power on, ``02`` reset, ``04`` "send your ATR" (answered with the ATR as a
message); any longer payload is a C-APDU, answered with one R-APDU message. The
card side connects to vpcd's port for a slot: connecting is inserting the card,
closing the connection is removing it.

Two details matter for speed: vpcd writes the length and the body in separate
segments, so the card side reads the full length in a loop, and it sets
``TCP_QUICKACK`` before every ``recv`` (Nagle plus delayed ACK otherwise cost about
44 ms per APDU; measured in FACTS.md).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Protocol

from hil.cards.trace import ApduTrace
from hil.errors import RigError

log = logging.getLogger(__name__)

CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_ATR = 0x04


class CardModel(Protocol):
    """What the card server needs from a card."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def process(self, apdu: bytes) -> bytes: ...


def _recv_exact(sock: socket.socket, count: int, quickack: bool = True) -> bytes | None:
    """``count`` bytes, or None when the peer closed first."""
    chunks = bytearray()
    while len(chunks) < count:
        if quickack:  # Linux clears it after each ACK: set it again before every recv
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        try:
            chunk = sock.recv(count - len(chunks))
        except OSError:
            return None
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def send_message(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(len(payload).to_bytes(2, "big") + payload)


class VpcdCardConnection:
    """One card in one vpcd slot: connected = inserted. Serves APDUs on a thread."""

    def __init__(
        self,
        card: CardModel,
        address: tuple[str, int],
        *,
        trace: ApduTrace | None = None,
        label: str = "card",
        quickack: bool = True,
    ) -> None:
        self.card = card
        self.address = address
        self.trace = trace
        self.label = label
        self.quickack = quickack  # off only to measure what it saves (bench/bench_cards.py)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._changed = threading.Condition()
        self.powered_off_after_use = False
        self.apdu_count = 0
        self.disconnected = threading.Event()

    def connect(self, timeout: float = 2.0) -> None:
        """Insert: connect to vpcd. RigError when vpcd is not listening."""
        try:
            sock = socket.create_connection(self.address, timeout=timeout)
        except OSError as e:
            raise RigError(
                f"vpcd slot {self.address[0]}:{self.address[1]} refused the card: "
                f"{e.strerror or e} (is pcscd running with the vpcd reader?)",
                instrument="cards",
            ) from e
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        if self.trace is not None:
            self.trace.note(f"{self.label} inserted (vpcd port {self.address[1]})")
        self._thread = threading.Thread(
            target=self._serve, name=f"vpcd-card-{self.address[1]}", daemon=True
        )
        self._thread.start()

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            while not self._closing.is_set():
                header = _recv_exact(sock, 2, self.quickack)
                if header is None:
                    break
                length = int.from_bytes(header, "big")
                payload = _recv_exact(sock, length, self.quickack)
                if payload is None:
                    break
                if length == 1:
                    self._control(sock, payload[0])
                    continue
                started = time.perf_counter()
                response = self.card.process(payload)
                elapsed_ms = (time.perf_counter() - started) * 1000
                if self._closing.is_set():
                    break  # removed while the card was still working: no answer
                try:
                    send_message(sock, response)
                except OSError:
                    break
                self.apdu_count += 1
                if self.trace is not None:
                    self.trace.exchange(payload, response, elapsed_ms)
        finally:
            self.disconnected.set()
            with self._changed:
                self._changed.notify_all()

    def _control(self, sock: socket.socket, code: int) -> None:
        if code == CTRL_ATR:
            with contextlib.suppress(OSError):
                send_message(sock, self.card.atr)
        elif code == CTRL_POWER_ON:
            self.card.power_on()
        elif code == CTRL_RESET:
            self.card.reset()
        elif code == CTRL_POWER_OFF:
            self.card.power_off()
            if self.apdu_count:
                self.powered_off_after_use = True
                with self._changed:
                    self._changed.notify_all()
        else:
            log.warning("vpcd sent unknown control byte 0x%02X", code)

    def wait_used_and_released(self, timeout: float) -> bool:
        """Wait until the reader powered the card off after talking to it (a terminal
        done with a contactless card) or it went away; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self.powered_off_after_use or self.disconnected.is_set()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self) -> None:
        """Remove: close the connection; vpcd reports the card gone at its next poll."""
        self._closing.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        if self.trace is not None:
            self.trace.note(f"{self.label} removed")
