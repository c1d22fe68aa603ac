"""The rig end of a JSON-lines channel into a process terminal (mag head, fault lines).

The rig listens on 127.0.0.1 (an ephemeral port), the terminal connects to the
address it finds in ``HIL_CHANNELS``. Messages are UTF-8 JSON objects, one per line
(``hil.jsonlines.codec``). A new connection replaces the old one (the terminal
reconnects after every boot), and ``greeting()`` is sent first on each connection so
a booting terminal learns the current state before its self-check. Protocol per
channel: docs/test-port-protocol.md.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from hil.errors import RigError
from hil.jsonlines.codec import LineDecoder, encode_line

#: Replies kept for ``request`` to match; older ones are dropped.
MAX_KEPT_REPLIES = 100


class RigEndServer:
    """Listens for the terminal's end of one channel; the newest connection is the one
    messages go to. Thread-safe."""

    def __init__(
        self,
        name: str,
        greeting: Callable[[], list[dict[str, Any]]] | None = None,
        *,
        port: int = 0,
    ) -> None:
        self.name = name
        self._greeting = greeting
        try:
            self._listener = socket.create_server(("127.0.0.1", port))
        except OSError as e:
            raise RigError(
                f"{name}: cannot listen on 127.0.0.1:{port}: {e.strerror or e} "
                "(another rig or program holds the port? pick another in the rig file)",
                instrument=name,
            ) from None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._conn: socket.socket | None = None
        self._generation = 0
        self._replies: list[dict[str, Any]] = []
        self._closed = False
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"{name}-accept", daemon=True
        )
        self._accepter.start()

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._conn is not None

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._cond:
                old, self._conn = self._conn, conn
                self._generation += 1
                generation = self._generation
                self._replies.clear()
                self._cond.notify_all()
            if old is not None:
                _close(old)
            for message in self._greeting() if self._greeting is not None else []:
                self._send_on(conn, message)
            threading.Thread(
                target=self._read_loop,
                args=(conn, generation),
                name=f"{self.name}-read",
                daemon=True,
            ).start()

    def _read_loop(self, conn: socket.socket, generation: int) -> None:
        decoder = LineDecoder(self.name)
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                messages = decoder.feed(chunk)
                if messages:
                    with self._cond:
                        self._replies.extend(messages)
                        del self._replies[:-MAX_KEPT_REPLIES]
                        self._cond.notify_all()
        except OSError:
            pass
        with self._cond:
            if self._generation == generation and self._conn is conn:
                self._conn = None
                self._cond.notify_all()
        _close(conn)

    def _send_on(self, conn: socket.socket, message: dict[str, Any]) -> bool:
        try:
            conn.sendall(encode_line(message))
        except OSError:
            return False
        return True

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._conn is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._cond.wait(remaining)
            return True

    def send(self, message: dict[str, Any]) -> bool:
        """Send to the connected terminal; False when none is connected."""
        with self._lock:
            conn = self._conn
        return conn is not None and self._send_on(conn, message)

    def request(
        self, message: dict[str, Any], *, key: str, timeout: float
    ) -> dict[str, Any] | None:
        """Send and wait for the reply whose ``key`` equals the message's; None if the
        terminal is not connected or does not answer in time."""
        want = message[key]
        with self._cond:
            self._replies = [r for r in self._replies if r.get(key) != want]
        if not self.send(message):
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for reply in self._replies:
                    if reply.get(key) == want and reply.get("type") == "ack":
                        self._replies.remove(reply)
                        return reply
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def close(self) -> None:
        self._closed = True
        _close(self._listener)
        with self._cond:
            conn, self._conn = self._conn, None
            self._cond.notify_all()
        if conn is not None:
            _close(conn)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
