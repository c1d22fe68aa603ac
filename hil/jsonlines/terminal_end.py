"""The terminal end of a JSON-lines channel (mag head, fault lines).

Connects to ``ADDRESS:PORT`` from ``HIL_CHANNELS`` (loopback only), hands every
message (``hil.jsonlines.codec``) to a handler on its own thread and writes back
what the handler returns.
A channel that cannot be reached is retried every second in the background (an
event wait, not a busy loop); ``connected`` and ``reason`` say where it stands.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from hil.jsonlines.codec import LineDecoder, encode_line

log = logging.getLogger(__name__)

RETRY_S = 1.0

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


def parse_address(value: str) -> tuple[str, int] | None:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    host = host.strip("[]")
    # The rig wires loopback only; anything else is refused rather than dialled.
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    return host, int(port)


def still_open(sock: socket.socket) -> bool:
    """Whether the peer has neither closed nor reset ``sock``, without reading from it:
    a peek that does not wait."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True  # open, nothing to read
    except OSError:
        return False  # reset, or closed under us


class TerminalEndClient:
    """Keeps the terminal connected to the rig's end of one channel and answers it."""

    def __init__(self, name: str, value: str, handler: Handler) -> None:
        self.name = name
        self.address = parse_address(value)
        self._handler = handler
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.reason = (
            "not started" if self.address else f"bad address {value!r} (want 127.0.0.1:PORT)"
        )

    @property
    def connected(self) -> bool:
        """Whether the channel is up now. A link the rig cut (a harness unplugged) is
        down from that moment: the reset is already in this end's socket, whether or
        not the reading thread has woken to it yet (on a loaded machine it may not
        have, and a self-check would read the inputs of a harness that is out)."""
        sock = self._sock
        return self._connected.is_set() and sock is not None and still_open(sock)

    def start(self) -> None:
        if self.address is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"link-{self.name}", daemon=True)
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _run(self) -> None:
        assert self.address is not None
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(self.address, timeout=2.0)
            except OSError as e:
                self.reason = (
                    f"cannot connect to {self.address[0]}:{self.address[1]}: {e.strerror or e}"
                )
                self._stop.wait(RETRY_S)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self.reason = ""
            self._connected.set()
            try:
                self._serve(sock)
            finally:
                self._connected.clear()
                self._sock = None
                with contextlib.suppress(OSError):
                    sock.close()
            if not self._stop.is_set():
                self.reason = "the rig closed the channel"
                self._stop.wait(RETRY_S)

    def _serve(self, sock: socket.socket) -> None:
        decoder = LineDecoder(self.name)
        while not self._stop.is_set():
            try:
                chunk = sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            for message in decoder.feed(chunk):
                try:
                    reply = self._handler(message)
                except Exception:  # a bad message must not kill the channel
                    log.exception("%s: handler failed", self.name)
                    continue
                if reply is not None:
                    try:
                        sock.sendall(encode_line(reply))
                    except OSError:
                        return

    def close(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=3.0)
