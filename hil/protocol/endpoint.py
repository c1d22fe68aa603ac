"""Terminal side of the test port: runs commands on a pool, streams events in order.

The simulated terminal uses this; a vendor's own terminal implements the same
behaviour from docs/test-port-protocol.md.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Self

from hil.errors import HilError
from hil.masking import mask_text
from hil.protocol.framing import describe, encode_frame
from hil.protocol.link import Answer, Link
from hil.protocol.transcript import Transcript
from hil.protocol.transport import SerialLike

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], dict[str, Any]]

MAX_ERROR_MESSAGE = 200


class CommandFailed(Exception):
    """Raised by a command handler to answer ``ok: false`` with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class EndpointStats:
    requests: int = 0
    bad_requests: int = 0
    internal_errors: int = 0
    responses_undelivered: int = 0
    ignored_messages: int = 0  # anything but a req reaching the terminal
    events_emitted: int = 0
    events_sent: int = 0
    events_dropped: int = 0  # not ACKed after all retries, unencodable, or queue full

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > MAX_ERROR_MESSAGE:
        line = line[: MAX_ERROR_MESSAGE - 3] + "..."
    return mask_text(line)


class TerminalEndpoint:
    """Serves requests with ``handler(cmd, args) -> result`` and sends events.

    Guarantees the rig can rely on:

    - each request runs on a pool of ``workers`` threads, so a long command does not
      hold up short ones; except the ``quick`` commands, which the port's reader thread
      answers itself when nothing else is waiting to go out: their handlers must return
      at once and never wait (they only read state), and their ACK and response then
      leave in one write, with no thread hand-off;
    - events are sent one at a time in ``seq`` order;
    - an event emitted before a handler returns is sent before that handler's
      response, so the rig has a command's events by the time it has its result.
    """

    def __init__(
        self,
        port: SerialLike,
        handler: Handler,
        *,
        name: str = "terminal",
        transcript: Transcript | None = None,
        clock_ms: Callable[[], int] | None = None,
        workers: int = 4,
        ack_timeout: float = 0.5,
        max_queued_events: int = 1000,
        quick: Collection[str] = (),
    ) -> None:
        self.name = name
        self._quick = frozenset(quick)
        self.stats = EndpointStats()
        self._handler = handler
        started = time.monotonic()
        self._clock_ms = clock_ms or (lambda: int((time.monotonic() - started) * 1000))
        self._max_queued = max_queued_events
        # The condition's own lock, taken directly where nothing waits or is notified
        # (the quick answer's check): Condition's __enter__ is a Python call.
        self._state = threading.RLock()
        self._cond = threading.Condition(self._state)
        # (seq, frame, description): each event is encoded once, when it is emitted.
        self._events: deque[tuple[int, bytes, str]] = deque()
        self._seq = 0
        self._done_seq = 0  # every event up to this seq has been sent or dropped
        self._stopping = False
        self._started = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{name}-worker")
        self._sender = threading.Thread(
            target=self._send_events, name=f"{name}-events", daemon=True
        )
        self.link = Link(
            port,
            name=name,
            on_message=self._on_message,
            transcript=transcript,
            ack_timeout=ack_timeout,
            # _on_message only checks the type and submits to the pool: quick, never
            # blocks, so the reader thread runs it and saves a hand-off per request.
            inline=True,
            answer=self._answer if self._quick else None,
        )

    def start(self) -> None:
        with self._cond:
            if self._started:
                return
            self._started = True
        self.link.start()
        self._sender.start()

    def close(self) -> None:
        """Stop sending (queued events are dropped), stop the link. Idempotent.

        Handlers still running are not waited for; their responses go nowhere.
        """
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self.link.close()
        if self._sender.is_alive() and self._sender is not threading.current_thread():
            self._sender.join(5.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

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

    # -- events ----------------------------------------------------------------

    def emit(self, name: str, data: dict[str, Any] | None = None) -> None:
        """Queue event ``name`` and return at once.

        Raises TypeError/ValueError if ``data`` is not a JSON object; a full queue
        drops the event (counted, logged) rather than block the terminal.
        """
        payload = dict(data or {})
        ts_ms = self._clock_ms()
        with self._cond:
            if len(self._events) >= self._max_queued:
                self.stats.events_dropped += 1
                log.warning("%s: event queue full, dropped event %r", self.name, name)
                return
            seq = self._seq + 1
            event = {"type": "evt", "seq": seq, "name": name, "ts_ms": ts_ms, "data": payload}
            # Encoded here, once: unencodable data is refused in the caller's stack, and
            # the sender writes these very bytes.
            raw = encode_frame(event)
            self._seq = seq
            self.stats.events_emitted += 1
            self._events.append((seq, raw, describe(event)))
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued event has been sent or dropped; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._events, timeout)

    def _send_events(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._events) or self._stopping)
                if self._stopping:
                    return
                # Stays queued while in flight so flush() also waits for it.
                event = self._events[0]
            seq, raw, what = event
            try:
                self.link.send_frame(raw, what)
                sent = True
            except (HilError, ValueError, TypeError) as e:
                sent = False
                level = logging.DEBUG if self._stopping else logging.WARNING
                log.log(level, "%s: dropped %s: %s", self.name, what, e)
            with self._cond:
                if sent:
                    self.stats.events_sent += 1
                else:
                    self.stats.events_dropped += 1
                if self._events and self._events[0] is event:
                    self._events.popleft()
                self._done_seq = seq
                self._cond.notify_all()

    def _wait_for_events_up_to(self, seq: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._done_seq >= seq or self._stopping)

    # -- requests --------------------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "req":
            with self._cond:
                self.stats.ignored_messages += 1
            log.warning(
                "%s: ignored %s: a terminal only takes requests", self.name, describe(message)
            )
            return
        with self._cond:
            self.stats.requests += 1
        try:
            self._pool.submit(self._serve, message)
        except RuntimeError:  # pool shut down: we are closing
            log.debug("%s: closing, request %s not served", self.name, describe(message))

    def _answer(self, message: dict[str, Any]) -> Answer | None:
        """A quick command, answered on the reader thread; None for anything else.

        Only when no event is queued or in flight: an event emitted earlier must reach
        the rig before this response. If the handler emitted events itself, a worker
        sends the response behind them (the ACK goes out now).
        """
        if message.get("type") != "req" or message.get("cmd") not in self._quick:
            return None
        with self._state:
            if self._events or self._stopping:
                return None
            self.stats.requests += 1
            seq_before = self._seq
        response = self._respond(message)
        # Read without the lock: an event the handler emitted (on this thread) is
        # counted by now, and one emitted elsewhere a moment later could as well have
        # come after the check with the lock too.
        emitted = self._seq
        if emitted != seq_before:
            self._pool.submit(self._send_response, message, response, emitted)
            return Answer(None)
        return Answer(response, f"res id {message.get('id')}", self._count_undelivered)

    def _serve(self, request: dict[str, Any]) -> None:
        response = self._respond(request)
        with self._cond:
            emitted_before_return = self._seq
        self._send_response(request, response, emitted_before_return)

    def _respond(self, request: dict[str, Any]) -> bytes:
        """The response frame to ``request``: its result or an error."""
        request_id = request.get("id")
        cmd = request.get("cmd")
        args = request.get("args", {})
        if not isinstance(request_id, int) or isinstance(request_id, bool):
            return self._error(request_id, "E_BAD_REQUEST", "id must be an integer")
        if not isinstance(cmd, str) or not cmd:
            return self._error(request_id, "E_BAD_REQUEST", "cmd must be a non-empty string")
        if not isinstance(args, dict):
            return self._error(request_id, "E_BAD_REQUEST", "args must be an object")
        return self._run(request_id, cmd, args)

    def _send_response(self, request: dict[str, Any], response: bytes, after_seq: int) -> None:
        """Send ``response`` once every event up to ``after_seq`` is sent or dropped."""
        self._wait_for_events_up_to(after_seq)
        try:
            self.link.send_frame(response, f"res id {request.get('id')}")
        except (HilError, ValueError, TypeError) as e:
            self._count_undelivered()
            level = logging.DEBUG if self._stopping else logging.WARNING
            log.log(level, "%s: response to %s not delivered: %s", self.name, describe(request), e)

    def _count_undelivered(self) -> None:
        with self._cond:
            self.stats.responses_undelivered += 1

    def _run(self, request_id: int, cmd: str, args: dict[str, Any]) -> bytes:
        """The response frame, encoded once."""
        try:
            result = self._handler(cmd, args)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
            # Encoded here: an unencodable result must become E_INTERNAL, not silence.
            return encode_frame({"type": "res", "id": request_id, "ok": True, "result": result})
        except CommandFailed as e:
            return self._error(request_id, str(e.code), _one_line(str(e.message)))
        except Exception as e:
            with self._cond:
                self.stats.internal_errors += 1
            log.error(
                "%s: command %r failed:\n%s",
                self.name,
                cmd,
                mask_text("".join(traceback.format_exception(e))),
            )
            return self._error(request_id, "E_INTERNAL", _one_line(f"{type(e).__name__}: {e}"))

    def _error(self, request_id: Any, code: str, message: str) -> bytes:
        if code == "E_BAD_REQUEST":
            with self._cond:
                self.stats.bad_requests += 1
        # The id as received: it came in strict JSON, so it encodes again.
        error = {"code": code, "message": message}
        return encode_frame({"type": "res", "id": request_id, "ok": False, "error": error})
