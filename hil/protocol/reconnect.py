"""A network serial port that comes back: reopen the URL when the link drops.

A terminal's test port reached over the network (``rfc2217://`` through ser2net,
``socket://``) can drop while the terminal itself is fine: ser2net restarted, a switch
rebooted, an idle connection cut by a firewall. ``ReconnectingPort`` is a ``SerialLike``
for the link (hil.protocol.link) that hides such a drop: when a read or a write fails,
it closes the port, reopens the URL (``attempts`` tries, ``interval`` seconds apart)
and carries on. The link above never sees the drop, so its reader thread, its event
log and the transcript go on; what was lost on the wire the protocol recovers itself
(an unacknowledged frame is retransmitted on the new connection, the terminal's
duplicate suppression keeps it from acting twice).

Every drop and every reconnection is written into the transcript as a marker entry,
between the bytes before and after it. If the URL cannot be reopened within the
attempts, the read or write raises ``RigError`` (the link then fails every waiting
request with it: a rig fault, exit code 3, never the terminal's).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable

import serial

from hil.errors import RigError
from hil.protocol.transcript import Transcript
from hil.protocol.transport import SerialLike, in_waiting, open_serial, read_some_of

log = logging.getLogger(__name__)

#: URL schemes that reach the port over a network, where a dropped link is worth
#: reopening (a local device that vanished comes back under another name, if at all).
NETWORK_SCHEMES = ("rfc2217://", "socket://")

#: tries of one write: the first, and once more after each reconnection
WRITE_TRIES = 3

Opener = Callable[..., SerialLike]


def is_network_url(url: str) -> bool:
    """True for a pyserial URL that reaches its port over the network."""
    return url.lower().startswith(NETWORK_SCHEMES)


class ReconnectingPort:
    """A ``SerialLike`` over ``url`` that reopens it when the connection drops.

    ``drops`` counts the drops seen so far and ``reconnects`` the successful
    reopenings, so a caller can tell whether a link dropped while it waited.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        timeout: float = 0.05,
        attempts: int = 10,
        interval: float = 0.5,
        transcript: Transcript | None = None,
        name: str = "console",
        opener: Opener = open_serial,
    ) -> None:
        if attempts < 0 or interval < 0:
            raise ValueError("attempts and interval must be >= 0")
        self.url = url
        self.name = name
        self.baudrate = baudrate
        self.attempts = attempts
        self.interval = interval
        self.transcript = transcript
        self.drops = 0
        self.reconnects = 0
        #: time.monotonic() of the latest drop, None before any
        self.last_drop_at: float | None = None
        self._timeout: float | None = timeout
        self._opener = opener
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._cancelled = threading.Event()  # set by cancel_read: stop reconnecting
        self._failure: RigError | None = None
        self._reconnecting = False
        self._generation = 0
        # The first open is not retried: a URL that never worked is a wiring mistake,
        # reported at once (RigError from open_serial).
        self._port: SerialLike | None = self._open()
        self._reader = read_some_of(self._port)

    # -- SerialLike --------------------------------------------------------------

    @property
    def timeout(self) -> float | None:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._timeout = value
        with self._changed:
            if self._port is not None:
                self._port.timeout = value

    @property
    def in_waiting(self) -> int:
        port = self._port
        return in_waiting(port) if port is not None else 0

    def read(self, size: int = 1) -> bytes:
        return self._read(lambda port, _reader: port.read(size))

    def read_some(self, size: int) -> bytes:
        """Whatever the port has ready, up to about ``size`` bytes; ``b""`` after its
        timeout, and once after a reconnection."""

        def read_ready(port: SerialLike, reader: Callable[[int], bytes] | None) -> bytes:
            if reader is not None:
                return reader(size)
            data = port.read(1)  # pyserial's rfc2217 read returns a whole received chunk
            if data:
                more = in_waiting(port)
                if more:
                    data += port.read(more)
            return data

        return self._read(read_ready)

    def write(self, data: bytes) -> int | None:
        last: Exception | None = None
        for _ in range(WRITE_TRIES):
            port, generation, _ = self._current()
            try:
                return port.write(data)
            except (TimeoutError, serial.SerialTimeoutException):
                raise  # the peer is slow, the link is up: the caller's business
            except Exception as e:  # SerialException and socket errors are OSErrors
                if self._closed.is_set() or not (
                    isinstance(e, OSError) or self._swapped(generation)
                ):
                    raise
                last = e
                # Written again on the new connection: a frame the peer already had is
                # a duplicate it confirms and drops; a lost one arrives.
                self._recover(generation, e)
        assert last is not None
        raise RigError(
            f"test port {self.name!r}: writes to {self.url} kept failing after "
            f"{WRITE_TRIES - 1} reconnection(s): {last}",
            instrument=self.name,
        ) from last

    def cancel_read(self) -> None:
        """Abort a read under way, and a reconnection under way with it: the link calls
        this when it closes, and must not wait out the attempts to join its reader."""
        self._cancelled.set()
        port = self._port
        cancel = getattr(port, "cancel_read", None)
        if callable(cancel):
            cancel()

    def close(self) -> None:
        with self._changed:
            self._closed.set()
            self._cancelled.set()
            port, self._port = self._port, None
            self._changed.notify_all()
        if port is not None:
            port.close()

    # -- the drop and the way back ------------------------------------------------

    def _open(self) -> SerialLike:
        return self._opener(self.url, baudrate=self.baudrate, timeout=self._timeout)

    def _current(self) -> tuple[SerialLike, int, Callable[[int], bytes] | None]:
        """The open port; waits while a reconnection is under way (bounded by its
        attempts), raises its RigError if it failed."""
        with self._changed:
            while True:
                if self._failure is not None:
                    raise self._failed()
                given_up = self._cancelled.is_set() and self._port is None
                if self._closed.is_set() or (given_up and not self._reconnecting):
                    raise OSError(errno.EBADF, f"test port {self.url} is closed")
                if self._port is not None and not self._reconnecting:
                    return self._port, self._generation, self._reader
                self._changed.wait(0.1)

    def _read(self, read: Callable[[SerialLike, Callable[[int], bytes] | None], bytes]) -> bytes:
        port, generation, reader = self._current()
        try:
            return read(port, reader)
        except Exception as e:
            if self._closed.is_set():
                raise
            if not (isinstance(e, OSError) or self._swapped(generation)):
                raise
            # _recover returns at once (after waiting for it to end) if another thread
            # met the drop first and is reopening the port.
            self._recover(generation, e)
            # Silence once: the link then drops whatever partial frame the drop cut.
            return b""

    def _swapped(self, generation: int) -> bool:
        """Whether the port of ``generation`` was closed under its user by a thread that
        met the drop first: pyserial then fails in its own ways (``socket://`` with a
        TypeError from select on a closed socket), which is no bug and no new drop."""
        with self._changed:
            return self._reconnecting or self._generation != generation

    def _recover(self, generation: int, error: BaseException) -> None:
        """Reopen the URL after ``error`` on the port of ``generation``; returns once a
        new port is open (by this thread or another), raises RigError if none could be."""
        with self._changed:
            while self._reconnecting:
                self._changed.wait(0.1)
            if self._failure is not None:
                raise self._failed()
            if self._generation != generation or self._cancelled.is_set():
                return  # another thread already reopened it (or we are closing)
            self._reconnecting = True
            old, self._port = self._port, None
            self.drops += 1
            self.last_drop_at = time.monotonic()
        try:
            self._reopen(old, error)
        finally:
            with self._changed:
                self._reconnecting = False
                self._changed.notify_all()

    def _reopen(self, old: SerialLike | None, error: BaseException) -> None:
        if old is not None:
            try:
                old.close()
            except Exception:  # it is broken already; the new one matters
                log.debug("closing the dropped port %s failed", self.url, exc_info=True)
        what = f"{type(error).__name__}: {error}"
        log.warning(
            "test port %r: link to %s dropped (%s), reconnecting", self.name, self.url, what
        )
        self._mark(f"link to {self.url} dropped ({what}); reconnecting")
        started = time.monotonic()
        last: BaseException = error
        for attempt in range(1, self.attempts + 1):
            if self._cancelled.wait(self.interval):
                return
            try:
                port = self._open()
            except RigError as e:
                last = e
                log.debug("test port %r: reconnection %d failed: %s", self.name, attempt, e)
                continue
            with self._changed:
                if self._cancelled.is_set():
                    port.close()
                    return
                self._port = port
                self._reader = read_some_of(port)
                self._generation += 1
                self.reconnects += 1
            took = (time.monotonic() - started) * 1000
            log.warning("test port %r: link to %s re-established", self.name, self.url)
            self._mark(
                f"link to {self.url} re-established after {attempt} attempt(s), {took:.0f} ms"
            )
            return
        took_s = time.monotonic() - started
        failure = RigError(
            f"test port {self.name!r}: the link to {self.url} dropped ({what}) and could not "
            f"be re-established: {self.attempts} attempt(s) over {took_s:.1f} s, the last: "
            f"{last} (is its ser2net server up? console.reconnect_attempts in the rig file)",
            instrument=self.name,
        )
        failure.__cause__ = last
        self._mark(f"link to {self.url} not re-established after {self.attempts} attempt(s)")
        with self._changed:
            self._failure = failure
        raise failure

    @property
    def failure(self) -> RigError | None:
        """Why the link is down for good (it dropped and every reconnection failed), as
        a new exception for the caller to raise; None while it is up or being reopened."""
        with self._changed:
            return None if self._failure is None else self._failed()

    def _failed(self) -> RigError:
        """The failure to reopen, as a new exception for this thread to raise (one
        object raised in several threads would collect all their tracebacks)."""
        failure = self._failure
        assert failure is not None
        error = RigError(str(failure), instrument=failure.instrument)
        error.__cause__ = failure.__cause__
        return error

    def _mark(self, note: str) -> None:
        if self.transcript is not None:
            self.transcript.record_marker(note)
