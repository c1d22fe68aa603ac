"""An asyncio TCP service on a background loop, for synchronous callers.

The rig's TCP servers (the ISO 8583 host simulator, the fault proxy, the QR screen's
camera channel) share this lifecycle: ``start`` listens and returns the bound
address, ``address`` reports it, ``stop`` closes the listener and every client
connection and ends the loop thread. A service may also stop listening and listen
again on the same port while its clients stay connected (the proxy's ``refuse``).

A subclass writes ``serve_client`` only. Each accepted connection is a
``ClientConnection``: numbered from 1, tracked until its handler returns, then
closed; streams a service opens on a client's behalf (the proxy's upstream) are
attached to it and closed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from abc import ABC, abstractmethod

from hil.errors import RigError
from hil.eventloop import BackgroundLoop

SHUTDOWN_TIMEOUT_S = 3.0


class ClientConnection:
    """One accepted client and the streams opened for it; closed once, all together."""

    def __init__(self, number: int, writer: asyncio.StreamWriter) -> None:
        self.number = number
        self.writers = [writer]
        self.closed = False

    def attach(self, writer: asyncio.StreamWriter) -> None:
        """Close ``writer`` with this client (e.g. the upstream leg of a proxied link)."""
        self.writers.append(writer)

    def close(self, *, abort: bool) -> None:
        """Close every stream: with FIN, or with ``abort`` a TCP RST (a "connection reset").

        Runs on the service's loop."""
        if self.closed:
            return
        self.closed = True
        for writer in self.writers:
            transport = writer.transport
            if abort:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    # Linger 0: close() sends RST instead of FIN.
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                transport.abort()
            else:
                transport.close()

    async def wait_closed(self) -> None:
        for writer in self.writers:
            with contextlib.suppress(Exception):  # closing a broken stream may fail; it is gone
                await writer.wait_closed()


class TcpService(ABC):
    """An asyncio TCP server on its own loop thread; every public method is synchronous.

    ``description`` names the service in errors ("fault proxy cannot listen on ...");
    ``name`` is the instrument a ``RigError`` blames. ``abort_on_stop`` resets client
    connections on ``stop`` instead of closing them.
    """

    def __init__(
        self,
        *,
        listen: tuple[str, int],
        name: str,
        description: str,
        thread_name: str,
        abort_on_stop: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self._listen_on = listen
        self._abort_on_stop = abort_on_stop
        self._loop = BackgroundLoop(thread_name)
        self._server: asyncio.Server | None = None
        self._address: tuple[str, int] | None = None
        self._client_numbers = itertools.count(1)
        self._clients: set[ClientConnection] = set()

    @abstractmethod
    async def serve_client(
        self, client: ClientConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connection until done; the client is closed (FIN) afterwards."""

    # --- lifetime --------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Listen; return the bound (address, port). ``RigError`` when it cannot."""
        self._loop.start()
        try:
            self._address = self._loop.run(self._open_listener(self._listen_on))
        except OSError as e:
            self._loop.stop()
            raise RigError(
                f"{self.description} cannot listen on "
                f"{self._listen_on[0]}:{self._listen_on[1]}: {e}",
                instrument=self.name,
            ) from e
        return self._address

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RigError(f"{self.description} is not started", instrument=self.name)
        return self._address

    def stop(self) -> None:
        """Close the listener and every client, then end the loop thread."""
        if self._loop.running:
            with contextlib.suppress(Exception):
                self._loop.run(self._shutdown(), timeout=SHUTDOWN_TIMEOUT_S)
        self._loop.stop()

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._close_clients(abort=self._abort_on_stop)
        if server is not None:
            # After the clients: from Python 3.12 this waits for every connection to end.
            await server.wait_closed()

    # --- listening ---------------------------------------------------------------------

    async def _open_listener(self, listen: tuple[str, int]) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._accept, listen[0], listen[1], reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def _stop_listening(self) -> None:
        """Close the listening socket (a connect is then refused); clients stay."""
        self._loop.run(self._close_listener())

    def _listen_again(self) -> None:
        """Listen again on the port ``start`` bound."""
        if self._address is not None:
            self._loop.run(self._open_listener(self._address))

    async def _close_listener(self) -> None:
        if self._server is not None:
            # close() stops listening at once; wait_closed() is not awaited, since from
            # Python 3.12 it would wait for the clients, which stay connected here.
            self._server.close()
            self._server = None

    # --- clients -----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = ClientConnection(next(self._client_numbers), writer)
        self._clients.add(client)
        try:
            await self.serve_client(client, reader, writer)
        finally:
            self._clients.discard(client)
            client.close(abort=False)
            await client.wait_closed()

    def _close_all_clients(self) -> None:
        """Close every client connection (FIN); the service keeps listening."""
        self._loop.run(self._close_clients_now())

    async def _close_clients_now(self) -> None:
        self._close_clients(abort=False)

    def _close_clients(self, *, abort: bool) -> None:
        for client in list(self._clients):
            client.close(abort=abort)
