"""The lifecycle every rig TCP service shares (hil.tcpservice), on a tiny echo service."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from hil.errors import RigError
from hil.tcpservice import ClientConnection, TcpService


class Echo(TcpService):
    def __init__(self, *, port: int = 0, abort_on_stop: bool = False) -> None:
        super().__init__(
            listen=("127.0.0.1", port),
            name="echo",
            description="echo service",
            thread_name="test-echo",
            abort_on_stop=abort_on_stop,
        )
        self.numbers: list[int] = []

    async def serve_client(
        self, client: ClientConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.numbers.append(client.number)
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()


@pytest.fixture
def echo() -> Iterator[Echo]:
    service = Echo()
    service.start()
    yield service
    service.stop()


def connect(service: TcpService) -> socket.socket:
    sock = socket.create_connection(service.address, timeout=2.0)
    sock.sendall(b"ping")
    assert sock.recv(16) == b"ping"
    return sock


def test_start_reports_the_bound_address_and_clients_are_numbered(echo: Echo) -> None:
    host, port = echo.address
    assert host == "127.0.0.1" and port > 0
    with connect(echo), connect(echo):
        pass
    assert echo.numbers == [1, 2]


def test_address_before_start_is_a_rig_error() -> None:
    with pytest.raises(RigError, match="echo service is not started"):
        _ = Echo().address


def test_a_port_in_use_is_a_rig_error_naming_the_service(echo: Echo) -> None:
    taken = Echo(port=echo.address[1])
    with pytest.raises(RigError, match=r"echo service cannot listen on 127\.0\.0\.1:\d+") as err:
        taken.start()
    assert err.value.instrument == "echo"


def test_stop_closes_clients_and_the_listener(echo: Echo) -> None:
    address = echo.address
    with connect(echo) as sock:
        echo.stop()
        assert sock.recv(16) == b""  # FIN
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2.0).close()


def test_stop_can_reset_clients() -> None:
    service = Echo(abort_on_stop=True)
    service.start()
    with connect(service) as sock:
        service.stop()
        with pytest.raises(ConnectionResetError):
            sock.recv(16)


def test_listening_pauses_while_clients_stay_and_resumes_on_the_same_port(echo: Echo) -> None:
    with connect(echo) as sock:
        echo._stop_listening()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(echo.address, timeout=2.0).close()
        sock.sendall(b"still")
        assert sock.recv(16) == b"still"
        echo._listen_again()
        with connect(echo):
            pass
