"""One end of a test port: framing, ACK/NAK, retransmission and duplicate suppression.

The same class runs on both sides (rig session and terminal endpoint). Threads:

- the reader thread reads the port and ACKs/NAKs every frame it sees, before anything
  acts on its content;
- by default it hands the messages to a queue, and a dispatch thread takes them off
  it and calls ``on_message``; that handler may be slow and may call ``send`` (the
  ACK it waits for is read by the reader thread), and it cannot stop ACKs going out;
- with ``inline=True`` the reader thread calls ``on_message`` itself, after the ACK:
  one thread hand-off less per message (about 20-40 us), for handlers that are known
  to be quick and never block: the rig session (settle a waiting request, append an
  event) and the terminal endpoint (submit the request to its worker pool). Such a
  handler must not call ``send`` (it would wait for an ACK that only its own thread
  reads: refused with RuntimeError); ACKs for frames behind it wait while it runs;
- any caller thread may ``send``; sends are serialised, one frame outstanding;
- an ``answer`` callback lets the reader thread answer a message at once (a terminal's
  quick, read-only command): when no frame of this side is outstanding, the ACK and
  the answer go out in one write, and the reader itself then waits for the answer's
  ACK, retransmitting on NAK or on its read timeouts after ``ack_timeout``, with no
  thread hand-off anywhere on the way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import serial

from hil.errors import ProtocolError, RigError
from hil.masking import mask_text
from hil.protocol.framing import (
    ACK,
    HEADER_SIZE,
    NAK,
    TRAILER_SIZE,
    Broken,
    Control,
    Decoded,
    Frame,
    FrameDecoder,
    NotAFrame,
    Skipped,
    describe,
    encode_frame,
)
from hil.protocol.transcript import Transcript
from hil.protocol.transport import SerialLike, in_waiting, read_some_of, write_of

log = logging.getLogger(__name__)

DEFAULT_READ_TIMEOUT = 0.05
REFUSED_FRAMES_KEPT = 16
READ_CHUNK = 65536
_ACK_BYTE = bytes((ACK,))
_NAK_BYTE = bytes((NAK,))


@dataclass
class LinkStats:
    """Counters of one link. ``frames_tx`` counts first transmissions only."""

    frames_tx: int = 0
    frames_rx: int = 0
    acks_tx: int = 0
    acks_rx: int = 0
    naks_tx: int = 0
    naks_rx: int = 0
    retransmits: int = 0
    skipped_bytes: int = 0
    broken_frames: int = 0  # NAKed
    false_starts: int = 0  # STX bytes that started no frame: noise, dropped without NAK
    duplicates: int = 0
    stray_controls: int = 0  # ACK/NAK while nothing was outstanding
    write_timeouts: int = 0
    send_failures: int = 0  # frames given up after the last attempt
    handler_errors: int = 0  # exceptions raised by on_message

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class OneShot:
    """``threading.Event``'s set/is_set/wait, for one wait: a lock taken when made and
    released when set. Made per request or per ACK awaited, it costs a fraction of an
    Event (a Condition built in Python), and setting it is one release."""

    __slots__ = ("_flag", "_lock")

    def __init__(self) -> None:
        self._flag = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        """Set it; call from one thread at a time (a second set does nothing)."""
        if not self._flag:
            self._flag = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for ``set``; whether it is set."""
        if not self._flag and self._lock.acquire(timeout=max(timeout, 0.0)):
            self._lock.release()  # later waits return at once too
        return self._flag


class Answer(NamedTuple):
    """What an ``answer`` callback did with a message.

    ``frame`` (encoded with ``encode_frame``) is written right behind the message's
    ACK, in the same write. None: the callback took the message and answers later
    itself (with ``send``), so only the ACK goes out now. ``on_given_up`` is called on
    the reader thread if the frame is never ACKed. (A named tuple, not a frozen
    dataclass: one is made per quick answer, and a tuple costs a fraction to make.)
    """

    frame: bytes | None
    what: str = ""
    on_given_up: Callable[[], None] | None = None


@dataclass(slots=True)
class _InFlight:
    """An answer frame the reader thread wrote and waits to see ACKed."""

    answer: Answer
    raw: bytes
    attempts: int
    deadline: float
    outcomes: dict[str, int]


@dataclass(frozen=True)
class RefusedFrame:
    """A frame from the peer that was NAKed for its content: ETX and CRC were right, so
    it is what the peer wrote, but the BODY is not a strict JSON object."""

    at: float  # time.monotonic() when it was refused
    reason: str
    body: bytes


class Link:
    """A framed, acknowledged message link over one ``SerialLike`` port.

    The link does not close the port; whoever opened it does.
    """

    def __init__(
        self,
        port: SerialLike,
        *,
        name: str,
        on_message: Callable[[dict[str, Any]], None],
        transcript: Transcript | None = None,
        ack_timeout: float = 0.5,
        max_retransmits: int = 3,
        partial_timeout: float = 0.2,
        on_failure: Callable[[BaseException], None] | None = None,
        inline: bool = False,
        answer: Callable[[dict[str, Any]], Answer | None] | None = None,
    ) -> None:
        if ack_timeout <= 0 or partial_timeout <= 0 or max_retransmits < 0:
            raise ValueError("ack_timeout and partial_timeout must be > 0, max_retransmits >= 0")
        self.port = port
        self.name = name
        self.transcript = transcript
        self.ack_timeout = ack_timeout
        self.max_retransmits = max_retransmits
        self.partial_timeout = partial_timeout
        # A retransmit whose ACK was lost arrives at most this long after the original.
        self.duplicate_window = (max_retransmits + 1) * ack_timeout + 0.5
        self.stats = LinkStats()
        self._on_message = on_message
        self._on_failure = on_failure
        self.inline = inline
        self._answer = answer
        self._in_flight: _InFlight | None = None  # only the reader thread touches it
        self._stats_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._port_write = write_of(port)
        self._has_baudrate = hasattr(port, "baudrate")
        # Guards _controls, _awaiting, _ack_waiter and _failure. A sender waiting for
        # its ACK sleeps on its own one-shot lock (_ack_waiter), not on a Condition:
        # waking it is one release instead of Condition's bookkeeping in Python, on
        # every request's critical path.
        self._control = threading.Lock()
        self._ack_waiter: OneShot | None = None
        self._controls: deque[int] = deque()
        self._awaiting = False
        self._closed = threading.Event()
        self._failure: BaseException | None = None
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._decoder = FrameDecoder()
        self._last_delivered: tuple[bytes, float] | None = None
        self._refused: deque[RefusedFrame] = deque(maxlen=REFUSED_FRAMES_KEPT)
        # What was sent last, for errors: a text, or what makes it (made only if needed).
        self._last_sent: str | Callable[[], str] = "nothing sent yet"
        self._reader_ident: int | None = None  # the reader thread's, once it runs
        self._lifecycle = threading.Lock()
        self._reader: threading.Thread | None = None
        self._dispatcher: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and dispatch threads. Idempotent."""
        with self._lifecycle:
            if self._closed.is_set():
                raise RigError(f"test port {self.name!r} is closed", instrument=self.name)
            if self._reader is not None:
                return
            if self.port.timeout is None:
                # A blocking read would keep the reader from seeing stalls and close().
                self.port.timeout = DEFAULT_READ_TIMEOUT
            self._reader = threading.Thread(
                target=self._read_loop, name=f"{self.name}-reader", daemon=True
            )
            if not self.inline:
                self._dispatcher = threading.Thread(
                    target=self._dispatch_loop, name=f"{self.name}-dispatch", daemon=True
                )
                self._dispatcher.start()
            self._reader.start()

    def close(self) -> None:
        """Stop and join the threads; a blocked ``send`` raises RigError. Idempotent."""
        with self._lifecycle:
            if self._closed.is_set():
                return
            self._closed.set()
        self._wake_sender()
        self._inbox.put(None)
        cancel = getattr(self.port, "cancel_read", None)
        if callable(cancel):
            try:
                cancel()
            except Exception:  # best effort: the read times out soon anyway
                log.debug("cancel_read failed on %s", self.name, exc_info=True)
        me = threading.current_thread()
        read_timeout = self.port.timeout or DEFAULT_READ_TIMEOUT
        for thread, limit in ((self._reader, read_timeout + 2.0), (self._dispatcher, 5.0)):
            if thread is not None and thread is not me:
                thread.join(limit)
                if thread.is_alive():
                    log.warning("test port %r: thread %s did not stop", self.name, thread.name)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def failure(self) -> BaseException | None:
        """The port error that stopped the link, if any."""
        return self._failure

    def refused_since(self, since: float) -> list[RefusedFrame]:
        """Frames refused for their content at or after ``since`` (time.monotonic()),
        oldest first; the last few only."""
        with self._stats_lock:
            return [r for r in self._refused if r.at >= since]

    # -- sending ---------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        """Send one message and block until the peer ACKs it.

        Retransmits after a NAK or ``ack_timeout`` without answer, at most
        ``max_retransmits`` times, then raises ProtocolError. Raises RigError if the
        port failed or the link is closed, ValueError/TypeError if the message
        cannot be encoded.
        """
        # Named (describe) only if an error needs it: not on every request's way out.
        self.send_frame(encode_frame(message), lambda: describe(message))

    def send_frame(self, raw: bytes, what: str | Callable[[], str]) -> None:
        """``send`` for a frame the caller has already encoded (``encode_frame``), so a
        message that was encoded to check it is not encoded twice. ``what`` names it in
        errors (``describe(message)``), or is called to name it when one needs it."""
        if threading.get_ident() == self._reader_ident:
            # An inline on_message or an answer callback: it would wait for an ACK
            # that only its own thread reads.
            raise RuntimeError(
                f"test port {self.name!r}: send from the reader thread would wait for "
                "an ACK that only that thread reads"
            )
        attempts = self.max_retransmits + 1
        outcomes: dict[str, int] = {}  # a plain dict: a Counter costs more to make
        with self._send_lock:
            self._raise_if_unusable()
            self._last_sent = what
            wait = self.ack_timeout + self._tx_seconds(len(raw))
            try:
                for attempt in range(1, attempts + 1):
                    with self._control:
                        self._awaiting = True
                        # An ACK left over from an earlier frame must not confirm this one.
                        self._controls.clear()
                        # Ready before the write: an ACK read before this thread waits
                        # sets it, and the wait then returns at once.
                        waiter = self._ack_waiter = OneShot()
                    if not self._transmit(raw, attempt, attempts):
                        _tally(outcomes, "write timed out")
                        continue
                    answer = self._await_control(wait, waiter)
                    if answer == ACK:
                        return
                    _tally(outcomes, "NAK" if answer == NAK else "no answer")
            finally:
                with self._control:
                    self._awaiting = False
                    self._ack_waiter = None
        self._count("send_failures")
        detail = ", ".join(f"{k} x{v}" for k, v in outcomes.items())
        raise ProtocolError(
            f"test port {self.name!r}: no ACK for {_named(what)} after {attempts} attempts "
            f"({detail})"
        )

    def _transmit(self, raw: bytes, attempt: int, attempts: int) -> bool:
        """Write one transmission; False if the write timed out."""
        if attempt == 1:
            # frames_tx changes only under the send lock (held here, and by the reader
            # while an answer of its own is in flight): no increment can be lost.
            self.stats.frames_tx += 1
            return self._write(raw, "")
        self._count("retransmits")
        return self._write(raw, f"retransmit {attempt - 1}/{attempts - 1}")

    def _await_control(self, timeout: float, waiter: OneShot) -> int | None:
        """The ACK or NAK for the frame just written, or None after ``timeout``.
        ``waiter`` was made (as ``_ack_waiter``) before the frame was written."""
        deadline = time.monotonic() + timeout
        waiter.wait(timeout)
        while True:
            with self._control:
                if self._controls:  # the answer came, even if the link stopped since
                    return self._controls.popleft()
                self._raise_if_unusable()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                waiter = self._ack_waiter = OneShot()
            waiter.wait(left)

    def _wake_sender(self) -> None:
        """Wake the sender waiting in ``_await_control``, if one is."""
        with self._control:
            waiter, self._ack_waiter = self._ack_waiter, None
        if waiter is not None:
            waiter.set()

    def _tx_seconds(self, size: int) -> float:
        """Time the frame needs on the wire: pyserial's write returns before it is sent."""
        if not self._has_baudrate:  # asked once: a missing attribute costs an exception
            return 0.0
        baudrate = getattr(self.port, "baudrate", None)
        if isinstance(baudrate, int) and baudrate > 0:
            return size * 10 / baudrate
        return 0.0

    def _write(self, data: bytes, note: str) -> bool:
        """Write under the write lock so a frame and an ACK never interleave.

        Returns False on a write timeout (the peer is not reading: not fatal, the
        frame counts as not acknowledged); other port errors stop the link.
        """
        if self.transcript is not None:
            # Recorded before the write: once written, the peer may answer at once and
            # the answer must not appear above what caused it.
            self.transcript.record("tx", data, note)
        try:
            with self._write_lock:
                self._port_write(data)
        except (TimeoutError, serial.SerialTimeoutException):
            self._count("write_timeouts")
            log.debug("test port %r: write timed out", self.name)
            if self.transcript is not None:
                self.transcript.record("tx", b"", "write timed out (peer not reading?)")
            return False
        except Exception as e:
            self._fail(e)
            self._raise_if_unusable()
            raise
        return True

    def _raise_if_unusable(self) -> None:
        if self._failure is not None:
            e = self._failure
            raise RigError(
                f"test port {self.name!r} failed: {type(e).__name__}: {e}",
                instrument=self.name,
                last_io=f"last sent: {_named(self._last_sent)}",
            ) from e
        if self._closed.is_set():
            raise RigError(f"test port {self.name!r} is closed", instrument=self.name)
        if self._reader is None:
            # Nobody would read the ACK: fail now rather than after four timeouts.
            raise RigError(f"test port {self.name!r} is not started", instrument=self.name)

    # -- receiving -------------------------------------------------------------

    def _read_loop(self) -> None:
        # Thread idents are reused once a thread ends: forgotten when this one does.
        self._reader_ident = threading.get_ident()
        try:
            self._read_until_stopped()
        finally:
            self._reader_ident = None

    def _read_until_stopped(self) -> None:
        last_rx = time.monotonic()
        # A port that can return whatever is ready in one call saves the in_waiting
        # ioctl and a second read per chunk (pyserial's read(n) waits for all n bytes).
        read_some = read_some_of(self.port)
        closed = self._closed.is_set
        while not closed():
            try:
                if read_some is not None:
                    data = read_some(READ_CHUNK)
                else:
                    data = self.port.read(1)
                    if data:
                        more = in_waiting(self.port)
                        if more:
                            data += self.port.read(more)
            except Exception as e:
                if not self._closed.is_set():
                    self._fail(e)
                self._drop_in_flight("the port failed")
                return
            now = time.monotonic()
            try:
                if data:
                    last_rx = now
                    if self.transcript is not None:
                        self.transcript.record("rx", data)
                    self._handle(self._decoder.feed(data))
                elif self._decoder.pending() and now - last_rx >= self.partial_timeout:
                    self._expire_partial()
                    last_rx = now
                in_flight = self._in_flight
                if in_flight is not None and now >= in_flight.deadline:
                    _tally(in_flight.outcomes, "no answer")
                    self._retransmit_in_flight()
            except _WriteFailed:
                self._drop_in_flight("the port failed")
                return
        self._drop_in_flight("the link closed")

    def _expire_partial(self) -> None:
        items = self._decoder.flush_partial()
        if not items:
            return
        if self.transcript is not None:
            quiet_ms = round(self.partial_timeout * 1000)
            self.transcript.record_resync("rx", f"{quiet_ms} ms of silence: dropped, no NAK")
        self._handle(items)

    def _handle(self, items: list[Decoded]) -> None:
        controls_for_sender = False
        try:
            for item in items:
                if isinstance(item, Frame):
                    self._on_frame(item)
                elif isinstance(item, Control):
                    controls_for_sender |= self._on_control(item.byte)
                else:
                    self._on_other(item)
        finally:
            if controls_for_sender:
                # The sender is woken once, after the whole chunk: an answer that came
                # with the ACK (one write on the far side) is then delivered already,
                # and the caller wakes once instead of twice.
                self._wake_sender()

    def _on_other(self, item: Decoded) -> None:
        if isinstance(item, Broken):
            self._count_read("broken_frames")
            log.debug("test port %r: NAK for broken frame: %s", self.name, item.reason)
            if item.well_delimited:
                body = item.raw[HEADER_SIZE:-TRAILER_SIZE]
                with self._stats_lock:
                    self._refused.append(RefusedFrame(time.monotonic(), item.reason, body))
            self._reply(NAK, f"NAK sent: {item.reason}")
        elif isinstance(item, NotAFrame):
            # Noise, not a frame the peer sent: a NAK would make the peer resend (and
            # count against) whatever frame of its own is waiting for an ACK.
            self._count_read("false_starts")
            log.debug("test port %r: STX started no frame: %s", self.name, item.reason)
        elif isinstance(item, Skipped):
            self._count_read("skipped_bytes", len(item.raw))

    def _on_frame(self, frame: Frame) -> None:
        self.stats.frames_rx += 1  # a reader-only counter: see _count_read
        now = time.monotonic()
        last = self._last_delivered
        if last is not None and last[0] == frame.raw and now - last[1] <= self.duplicate_window:
            # Our ACK for it was lost and the peer retransmitted: confirm, do not deliver twice.
            self._count_read("duplicates")
            self._reply(ACK, "ACK sent (duplicate, not delivered)")
            return
        if self._answer is not None and self._answer_at_once(frame, now):
            return
        self._reply(ACK, "")
        self._last_delivered = (frame.raw, now)
        if self.inline:
            self._deliver(frame.message)
        else:
            self._inbox.put(frame.message)

    def _answer_at_once(self, frame: Frame, now: float) -> bool:
        """Offer ``frame`` to the ``answer`` callback; True if it took the message.

        Only while no frame of ours is outstanding (the send lock is free): then the
        answer can go out at once, right behind the ACK. The lock stays held until the
        answer is ACKed or given up, so other senders wait their turn as usual.
        """
        if not self._send_lock.acquire(blocking=False):
            return False
        try:
            answer = self._answer(frame.message) if self._answer is not None else None
        except Exception:
            self._send_lock.release()
            self._count("handler_errors")
            log.exception("test port %r: answer failed for %s", self.name, describe(frame.message))
            return False
        if answer is None:
            self._send_lock.release()
            return False
        self._last_delivered = (frame.raw, now)
        self.stats.acks_tx += 1
        if answer.frame is None:
            self._send_lock.release()
            self._reply_write(_ACK_BYTE, "")
            return True
        self.stats.frames_tx += 1  # under the send lock: see _transmit
        self._last_sent = answer.what
        self._in_flight = _InFlight(answer, answer.frame, 1, 0.0, {})
        if not self._reply_write(_ACK_BYTE + answer.frame, ""):
            _tally(self._in_flight.outcomes, "write timed out")
        self._in_flight.deadline = (
            time.monotonic() + self.ack_timeout + self._tx_seconds(len(answer.frame))
        )
        return True

    def _retransmit_in_flight(self) -> None:
        """Send the answer in flight again (NAK or no ACK in time), or give it up."""
        in_flight = self._in_flight
        assert in_flight is not None
        attempts = self.max_retransmits + 1
        if in_flight.attempts >= attempts:
            self._count("send_failures")
            detail = ", ".join(f"{k} x{v}" for k, v in in_flight.outcomes.items())
            log.warning(
                "test port %r: no ACK for %s after %d attempts (%s)",
                self.name,
                in_flight.answer.what,
                attempts,
                detail,
            )
            self._drop_in_flight(None)
            return
        in_flight.attempts += 1
        self._count("retransmits")
        note = f"retransmit {in_flight.attempts - 1}/{attempts - 1}"
        if not self._reply_write(in_flight.raw, note):
            _tally(in_flight.outcomes, "write timed out")
        in_flight.deadline = (
            time.monotonic() + self.ack_timeout + self._tx_seconds(len(in_flight.raw))
        )

    def _drop_in_flight(self, why: str | None) -> None:
        """Forget the answer in flight and free the send lock. ``why``: it was not given
        up after its attempts but cut short (port failed, link closed)."""
        in_flight = self._in_flight
        if in_flight is None:
            return
        self._in_flight = None
        self._send_lock.release()
        if why is not None:
            log.debug("test port %r: %s not ACKed: %s", self.name, in_flight.answer.what, why)
        if in_flight.answer.on_given_up is not None:
            try:
                in_flight.answer.on_given_up()
            except Exception:
                log.exception("test port %r: on_given_up failed", self.name)

    def _on_control(self, byte: int) -> bool:
        """Act on an ACK/NAK; True if a waiting sender must be woken (by ``_handle``)."""
        if byte == ACK:
            self.stats.acks_rx += 1  # a reader-only counter: see _count_read
        else:
            self.stats.naks_rx += 1
        in_flight = self._in_flight
        if in_flight is not None:
            if byte == ACK:
                self._in_flight = None
                self._send_lock.release()
            else:
                _tally(in_flight.outcomes, "NAK")
                self._retransmit_in_flight()
            return False
        with self._control:
            if self._awaiting:
                self._controls.append(byte)
                return True
        self._count_read("stray_controls")
        log.debug("test port %r: stray 0x%02X with no frame outstanding", self.name, byte)
        return False

    def _reply(self, byte: int, note: str) -> None:
        if byte == ACK:
            self.stats.acks_tx += 1  # a reader-only counter: see _count_read
            self._reply_write(_ACK_BYTE, note)
        else:
            self._count_read("naks_tx")
            self._reply_write(_NAK_BYTE, note)

    def _reply_write(self, data: bytes, note: str) -> bool:
        """``_write`` from the reader thread: a port error stops the reader."""
        try:
            return self._write(data, note)
        except Exception as e:
            raise _WriteFailed from e

    # -- dispatch --------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            message = self._inbox.get()
            if message is None:
                return
            self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        """Call ``on_message``; an exception is counted and logged, never raised: the
        link (and, inline, the reader thread with its ACKs) goes on."""
        try:
            self._on_message(message)
        except Exception as e:
            self._count("handler_errors")
            text = "".join(traceback.format_exception(e))
            log.error(
                "test port %r: on_message failed for %s:\n%s",
                self.name,
                describe(message),
                mask_text(text),
            )

    # -- helpers ---------------------------------------------------------------

    def _fail(self, e: BaseException) -> None:
        with self._control:
            if self._failure is not None:
                return
            self._failure = e
        self._wake_sender()
        log.error("test port %r failed: %s: %s", self.name, type(e).__name__, e)
        if self._on_failure is not None:
            try:
                self._on_failure(e)
            except Exception:
                log.exception("test port %r: on_failure callback failed", self.name)

    def _count(self, field: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self.stats, field, getattr(self.stats, field) + n)

    def _count_read(self, field: str, n: int = 1) -> None:
        """``_count`` for the counters only the reader thread changes (frames, ACKs and
        NAKs received, ACKs and NAKs sent, noise, duplicates, strays): nothing else
        writes them, so no increment can be lost and the lock is not needed."""
        setattr(self.stats, field, getattr(self.stats, field) + n)


def _tally(outcomes: dict[str, int], what: str) -> None:
    outcomes[what] = outcomes.get(what, 0) + 1


def _named(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


class _WriteFailed(Exception):
    """The reader could not write an ACK/NAK: the link has failed, stop reading."""
