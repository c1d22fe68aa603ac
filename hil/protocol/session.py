"""Rig side of the test port: requests with ids, responses, and the event log."""

from __future__ import annotations

import fnmatch
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from hil.errors import (
    CommandTimeout,
    DutError,
    HilError,
    ProtocolError,
    RigError,
    TerminalCommandError,
)
from hil.masking import mask_text
from hil.protocol.framing import describe, encode_frame
from hil.protocol.link import Link, LinkStats, OneShot, RefusedFrame
from hil.protocol.transcript import Transcript
from hil.protocol.transport import SerialLike, open_serial

log = logging.getLogger(__name__)

MAX_NAMES_IN_TIMEOUT = 10
REFUSED_EXCERPT_CHARS = 80

# Request ids increase across all sessions of the process, not from 1 per session: a
# new session's first request must never be byte-identical to the previous session's
# last one, or the terminal would take it for a retransmission and drop it.
_request_ids = itertools.count(1)


class EventTimeout(DutError):
    """An expected event did not arrive in time. ``arrived`` names what came instead."""

    def __init__(self, message: str, *, event: str, arrived: list[str]) -> None:
        super().__init__(message)
        self.event = event
        self.arrived = arrived


@dataclass(frozen=True)
class Event:
    """One ``evt`` from the terminal. ``seq`` restarts at every boot; ``index`` does not."""

    seq: int
    name: str
    ts_ms: int
    data: dict[str, Any] = field(hash=False)
    received_at: float  # time.monotonic() on the rig
    index: int  # position in the session's EventLog


def _seconds(timeout: float) -> str:
    return f"{timeout:.1f}" if round(timeout, 1) == timeout else f"{timeout:g}"


def _refused_frame(refused: RefusedFrame) -> str:
    """The reason and the start of the BODY, on one line and PAN-masked."""
    # Masked before it is cut: a PAN cut short is no longer recognised as one.
    text = mask_text(" ".join(refused.body.decode("utf-8", "replace").split()))
    if len(text) > REFUSED_EXCERPT_CHARS:
        text = text[: REFUSED_EXCERPT_CHARS - 3] + "..."
    return f"{refused.reason} in {text!r}"


class EventLog:
    """Append-only, thread-safe log of events, with cursors.

    Take a cursor with ``mark()`` *before* provoking something, then ``wait_for`` the
    event from that cursor: an event that arrives between the action and the wait
    is still found.
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._subscribers: list[Callable[[Event], None]] = []

    def append(self, seq: int, name: str, ts_ms: int, data: dict[str, Any]) -> Event:
        with self._cond:
            event = Event(seq, name, ts_ms, data, time.monotonic(), len(self._events))
            self._events.append(event)
            self._cond.notify_all()
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed on %r", callback, event.name)
        return event

    def mark(self) -> int:
        """A cursor: the index the next event will get."""
        with self._cond:
            return len(self._events)

    def since(self, cursor: int) -> list[Event]:
        with self._cond:
            return self._events[max(cursor, 0) :]

    def all(self) -> list[Event]:
        return self.since(0)

    def __len__(self) -> int:
        return self.mark()

    def find(
        self, name: str, *, since: int = 0, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[Event]:
        """Every event so far called ``name`` (and matching ``where``) at index >= since."""
        return [e for e in self.since(since) if _matches(e, name, where)]

    def wait_for(
        self,
        name: str,
        *,
        since: int,
        timeout: float,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Event:
        """The first event called ``name`` whose data satisfies ``where``, at index >= since.

        ``name`` may be a glob: ``"*"`` is any event, ``"selfcheck.*"`` any of that area.
        Raises EventTimeout naming the event and what arrived meanwhile.
        """
        deadline = time.monotonic() + timeout
        position = max(since, 0)
        with self._cond:
            while True:
                while position < len(self._events):
                    event = self._events[position]
                    position += 1
                    if _matches(event, name, where):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            arrived = [e.name for e in self._events[max(since, 0) :]]
        wanted = f"event {name!r}" + (" matching the condition" if where is not None else "")
        if arrived:
            shown = ", ".join(arrived[:MAX_NAMES_IN_TIMEOUT])
            more = len(arrived) - MAX_NAMES_IN_TIMEOUT
            meanwhile = f"arrived meanwhile: {shown}" + (f" (+{more} more)" if more > 0 else "")
        else:
            meanwhile = "no events arrived meanwhile"
        raise EventTimeout(
            f"{wanted} did not arrive within {_seconds(timeout)} s; {meanwhile}",
            event=name,
            arrived=arrived,
        )

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for each new event, before any later message is handled.

        It runs on the port's reader thread: it must be quick and must not wait for
        the terminal (no requests), or the ACKs of the frames behind it wait too.
        """
        with self._cond:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._cond:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe


def _matches(event: Event, name: str, where: Callable[[dict[str, Any]], bool] | None) -> bool:
    if any(c in name for c in "*?["):
        named = fnmatch.fnmatchcase(event.name, name)
    else:
        named = event.name == name
    return named and (where is None or bool(where(event.data)))


class _Pending:
    __slots__ = ("cmd", "done", "error", "result")

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd
        self.done = OneShot()  # settled: result or error set
        self.result: dict[str, Any] | None = None
        self.error: HilError | None = None


class ConsoleSession:
    """The rig's end of a terminal's test port.

    ``close()`` also closes the port, unless ``owns_port=False`` (for a port that
    outlives the session, e.g. one session after another on the same pty).
    """

    def __init__(
        self,
        port: SerialLike,
        *,
        name: str = "console",
        transcript: Transcript | None = None,
        ack_timeout: float = 0.5,
        owns_port: bool = True,
    ) -> None:
        self.name = name
        self.port = port
        self.transcript = transcript
        self.events = EventLog()
        self.dropped_messages = 0
        self._owns_port = owns_port
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._closed = False
        self.link = Link(
            port,
            name=name,
            on_message=self._on_message,
            transcript=transcript,
            ack_timeout=ack_timeout,
            on_failure=self._on_link_failure,
            # _on_message settles a waiting request or appends an event: quick and never
            # blocking, so the reader thread runs it; the answer reaches the caller with
            # one thread hand-off instead of two.
            inline=True,
        )

    @classmethod
    def open_url(
        cls,
        url: str,
        *,
        baudrate: int = 115200,
        name: str = "console",
        transcript: Transcript | None = None,
        ack_timeout: float = 0.5,
    ) -> ConsoleSession:
        """Open ``url`` with pyserial (RigError if it cannot be opened); call start()."""
        return cls(
            open_serial(url, baudrate=baudrate),
            name=name,
            transcript=transcript,
            ack_timeout=ack_timeout,
        )

    @property
    def stats(self) -> LinkStats:
        return self.link.stats

    def start(self) -> None:
        self.link.start()

    def close(self) -> None:
        """Stop the link, fail requests still waiting, close the port if owned. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.link.close()
        self._fail_pending(
            lambda: RigError(f"test port {self.name!r} closed", instrument=self.name)
        )
        if self._owns_port:
            try:
                self.port.close()
            except Exception:
                log.warning("closing test port %r failed", self.name, exc_info=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Send ``cmd`` and return its ``result``.

        ``timeout`` counts from the terminal's ACK of the request. Raises
        TerminalCommandError on ok:false, CommandTimeout without an answer,
        ProtocolError if the request is never ACKed or if no answer came while the
        rig refused frames from the terminal for their content (the answer may be
        among them), RigError if the port fails.
        """
        with self._lock:
            if self._closed:
                raise RigError(f"test port {self.name!r} is closed", instrument=self.name)
            request_id = next(_request_ids)
            pending = _Pending(cmd)
            self._pending[request_id] = pending
        message = {"type": "req", "id": request_id, "cmd": cmd, "args": dict(args) if args else {}}
        sent_at = time.monotonic()
        try:
            # Link.send without the call in between: named only if an error needs it.
            self.link.send_frame(encode_frame(message), lambda: describe(message))
            pending.done.wait(timeout)
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
                # Read under the lock: an answer that raced the timeout still counts.
                answered = pending.done.is_set()
        if not answered:
            refused = self.link.refused_since(sent_at)
            if refused:
                raise ProtocolError(
                    f"terminal did not answer {cmd!r} (id {request_id}) within "
                    f"{_seconds(timeout)} s; meanwhile the rig refused {len(refused)} "
                    f"frame(s) from it with NAK, the last: {_refused_frame(refused[-1])}"
                )
            raise CommandTimeout(
                f"terminal did not answer {cmd!r} (id {request_id}) within {_seconds(timeout)} s",
                command=cmd,
            )
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    # -- incoming --------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "res":
            self._on_response(message)
        elif kind == "evt":
            self._on_event(message)
        else:
            self._drop(message, "not a response or event")

    def _on_response(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        with self._lock:
            pending = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
            if pending is not None:
                self._settle(pending, request_id, message)
                return
        self._drop(message, "unknown or expired id")

    @staticmethod
    def _settle(pending: _Pending, request_id: object, message: dict[str, Any]) -> None:
        ok = message.get("ok")
        if ok is True:
            result = message.get("result", {})
            if isinstance(result, dict):
                pending.result = result
            else:
                pending.error = ProtocolError(
                    f"terminal answered {pending.cmd!r} (id {request_id}) with a result that "
                    f"is {type(result).__name__}, not an object"
                )
        elif ok is False:
            error = message.get("error")
            error = error if isinstance(error, dict) else {}
            code = error.get("code")
            text = error.get("message")
            pending.error = TerminalCommandError(
                pending.cmd,
                code if isinstance(code, str) else "E_?",
                mask_text(text if isinstance(text, str) else repr(text)),
            )
        else:
            pending.error = ProtocolError(
                f"terminal answered {pending.cmd!r} (id {request_id}) without a boolean 'ok'"
            )
        pending.done.set()

    def _on_event(self, message: dict[str, Any]) -> None:
        seq, name, ts_ms = message.get("seq"), message.get("name"), message.get("ts_ms")
        data = message.get("data", {})
        if not (isinstance(seq, int) and isinstance(name, str) and isinstance(ts_ms, int)):
            self._drop(message, "event without integer seq/ts_ms and string name")
            return
        if not isinstance(data, dict):
            self._drop(message, "event data is not an object")
            return
        self.events.append(seq, name, ts_ms, data)

    def _drop(self, message: dict[str, Any], why: str) -> None:
        with self._lock:
            self.dropped_messages += 1
        log.warning("test port %r: dropped %s: %s", self.name, describe(message), why)

    def _on_link_failure(self, e: BaseException) -> None:
        def make() -> HilError:
            error = RigError(
                f"test port {self.name!r} failed: {type(e).__name__}: {e}", instrument=self.name
            )
            error.__cause__ = e
            return error

        self._fail_pending(make)

    def _fail_pending(self, make_error: Callable[[], HilError]) -> None:
        # One exception object per waiter: each is raised in its own thread.
        with self._lock:
            for p in self._pending.values():
                p.error = make_error()
                p.done.set()
            self._pending.clear()
