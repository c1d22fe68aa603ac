"""The terminal end of a JSON-lines channel knows at once when the rig cut the link."""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

from hil.jsonlines.codec import encode_line
from hil.jsonlines.terminal_end import TerminalEndClient, still_open


def _listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_still_open_tells_open_closed_and_reset_apart() -> None:
    server = _listener()
    with server:
        for end in ("open", "closed", "reset"):
            client = socket.create_connection(server.getsockname())
            peer, _ = server.accept()
            with client:
                if end == "open":
                    assert still_open(client)
                    peer.sendall(b"x")  # data waiting is still open, and is not consumed
                    assert still_open(client) and client.recv(1) == b"x"
                    peer.close()
                elif end == "closed":
                    peer.close()
                    assert not still_open(client)
                else:
                    _reset(peer)
                    assert not still_open(client)


def test_a_link_reset_while_the_reader_is_busy_reads_down_at_once() -> None:
    """The reading thread is held in the handler when the rig resets the link: the
    channel must not read as connected (a self-check would trust a harness that is out)."""
    server = _listener()
    busy, release = threading.Event(), threading.Event()

    def handler(message: dict[str, Any]) -> dict[str, Any] | None:
        busy.set()
        release.wait(10)
        return None

    host, port = server.getsockname()
    client = TerminalEndClient("faultlines", f"{host}:{port}", handler)
    client.start()
    try:
        peer, _ = server.accept()
        assert client.wait_connected(10) and client.connected
        peer.sendall(encode_line({"type": "lines", "version": 1, "lines": {}}))
        assert busy.wait(10)
        _reset(peer)
        assert not client.connected
    finally:
        release.set()
        client.close()
        server.close()
