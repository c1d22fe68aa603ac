"""The built-in fault proxy on real loopback TCP: each fault, measured.

An echo server stands for the host; a plain socket stands for the terminal. Every
test checks what the proxy actually did (bytes through, delay added, resets, cuts),
not only what the client felt.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from hil.errors import RigError
from hil.faultproxy import Fault, FaultProxy, _Conn
from hil.instruments.network.proxy import ProxyNetwork

pytestmark = pytest.mark.integration

PAYLOAD = bytes(range(256)) * 16  # 4096 bytes


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def network(echo_server: tuple[str, int]) -> Iterator[ProxyNetwork]:
    proxy = FaultProxy(echo_server, seed=7)
    proxy.start()
    net = ProxyNetwork(proxy)
    yield net
    net.close()


def _connect(net: ProxyNetwork, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(net.address, timeout=timeout)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_no_fault_passes_every_byte_both_ways(network: ProxyNetwork) -> None:
    with _connect(network) as sock:
        sock.sendall(PAYLOAD)
        assert _recv_exactly(sock, len(PAYLOAD)) == PAYLOAD
    stats = network.stats()
    assert stats["connections"] == 1
    assert stats["upstream"]["bytes_written"] == len(PAYLOAD)
    assert stats["downstream"]["bytes_written"] == len(PAYLOAD)
    assert stats["upstream"]["bytes_dropped"] == 0


def test_blackhole_accepts_and_drops_everything(network: ProxyNetwork) -> None:
    network.blackhole()
    with _connect(network, timeout=0.3) as sock:
        sock.sendall(b"hello host")
        with pytest.raises(TimeoutError):
            sock.recv(10)
    stats = network.stats()
    assert stats["upstream"]["bytes_read"] == 10
    assert stats["upstream"]["bytes_dropped"] == 10
    assert stats["upstream"]["bytes_written"] == 0
    network.heal()
    with _connect(network) as sock:
        sock.sendall(b"again")
        assert _recv_exactly(sock, 5) == b"again"


def test_refuse_closes_the_port_and_heal_reopens_it(network: ProxyNetwork) -> None:
    network.refuse()
    with pytest.raises(ConnectionRefusedError):
        _connect(network)
    network.heal()
    with _connect(network) as sock:
        sock.sendall(b"x")
        assert _recv_exactly(sock, 1) == b"x"
    events = [e["event"] for e in network.timeline()]
    assert events.count("listening") == 1 and "fault set" in events and "healed" in events


def test_reset_mid_stream_sends_rst_after_n_bytes(network: ProxyNetwork) -> None:
    network.reset_mid_stream(after_bytes=100, direction="downstream")
    with _connect(network) as sock:
        sock.sendall(PAYLOAD[:300])
        got = bytearray()
        with pytest.raises(ConnectionResetError):
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
    assert bytes(got) == PAYLOAD[:100]
    stats = network.stats()
    assert stats["resets"] == 1
    assert stats["downstream"]["bytes_written"] == 100


# Timing under load: a delay the proxy adds can only grow when the machine is busy, so
# these tests bound real delays from below only, by 1 ms for the rounding of the stats
# (never for load). How much the proxy means to add, the upper side included, is
# checked without a clock in test_the_schedule_keeps_each_promise_exactly.


def test_latency_adds_the_delay_it_promises(network: ProxyNetwork) -> None:
    network.latency(80)
    with _connect(network) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert _recv_exactly(sock, 4) == b"ping"
        round_trip_ms = (time.monotonic() - started) * 1000
    stats = network.stats()
    for direction in ("upstream", "downstream"):
        # The proxy's own measure, from reading the chunk to writing it on.
        assert stats[direction]["chunks"] == 1, stats[direction]
        assert stats[direction]["delay_ms_min"] >= 80 - 1, stats[direction]
    # Both holds lie inside the client's round trip, one after the other.
    assert round_trip_ms >= 2 * 80 - 1


def test_jitter_stays_within_its_bounds_and_keeps_order(network: ProxyNetwork) -> None:
    network.latency(30, jitter_ms=20, direction="upstream")
    with _connect(network) as sock:
        for n in range(20):
            sock.sendall(bytes([n]))
            time.sleep(0.002)  # separate chunks on the wire, not synchronisation
        assert _recv_exactly(sock, 20) == bytes(range(20))  # order kept
    upstream = network.stats()["upstream"]
    assert upstream["bytes_written"] == 20
    assert upstream["delay_ms_min"] >= 30 - 20 - 1, upstream


def test_bandwidth_paces_the_transfer(network: ProxyNetwork) -> None:
    network.bandwidth(20_000, direction="downstream")  # 4096 bytes -> 204.8 ms at least
    with _connect(network) as sock:
        started = time.monotonic()
        sock.sendall(PAYLOAD)
        assert _recv_exactly(sock, len(PAYLOAD)) == PAYLOAD
        elapsed_ms = (time.monotonic() - started) * 1000
    # However the echo cut it into chunks, the last byte leaves no earlier than the
    # whole payload takes at 20 000 bytes/s after the first byte came in.
    assert elapsed_ms >= len(PAYLOAD) / 20_000 * 1000 - 1
    assert network.stats()["downstream"]["bytes_written"] == len(PAYLOAD)


class _NoClient:
    """What ``_Conn`` reads of a client connection, for scheduling without sockets."""

    number = 1
    closed = False


def test_the_schedule_keeps_each_promise_exactly() -> None:
    # The proxy's plan for each chunk it reads (FaultProxy._shape: what to deliver and
    # when), computed from a given "now": no clock, so exact bounds hold on any machine.
    # This is where "no more than promised" is checked, which a timed test cannot do.
    def plan(*faults: Fault, chunks: list[tuple[float, bytes]]) -> list[tuple[bytes, float]]:
        proxy = FaultProxy(("127.0.0.1", 9), seed=7)
        for fault in faults:
            proxy.add(fault)
        conn = _Conn(_NoClient())  # type: ignore[arg-type]
        return [
            piece for now, data in chunks for piece in proxy._shape(conn, "upstream", data, now)
        ]

    latency = Fault("latency", "upstream", {"ms": 80})
    jitter = Fault("latency", "upstream", {"ms": 30, "jitter_ms": 20})
    one_second_apart = [(float(k), bytes([k])) for k in range(200)]  # never queued

    held = [at - k for k, (_, at) in enumerate(plan(latency, chunks=one_second_apart))]
    assert held == pytest.approx([0.080] * 200)

    held = [at - k for k, (_, at) in enumerate(plan(jitter, chunks=one_second_apart))]
    float_slack = 1e-9
    assert all(0.010 - float_slack <= h <= 0.050 + float_slack for h in held), held
    assert max(held) - min(held) > 0.030  # it does jitter, over most of its range

    # Chunks 2 ms apart, jittered by more than that: never delivered out of order.
    close_together = [(k * 0.002, bytes([k])) for k in range(200)]
    times = [at for _, at in plan(jitter, chunks=close_together)]
    assert times == sorted(times)

    # Bandwidth: each chunk leaves when its bytes have had the time the rate allows.
    paced = plan(
        Fault("bandwidth", "upstream", {"bytes_per_s": 20_000}),
        chunks=[(0.0, PAYLOAD[:1000]), (0.0, PAYLOAD[1000:])],
    )
    assert [at for _, at in paced] == pytest.approx([1000 / 20_000, len(PAYLOAD) / 20_000])
    assert b"".join(piece for piece, _ in paced) == PAYLOAD


def test_slicer_delivers_small_segments_apart(network: ProxyNetwork) -> None:
    network.slicer(segment_bytes=64, delay_ms=2, direction="downstream")
    with _connect(network) as sock:
        sock.sendall(PAYLOAD[:1024])
        assert _recv_exactly(sock, 1024) == PAYLOAD[:1024]
    stats = network.stats()["downstream"]
    assert stats["chunks"] >= 16  # 1024 / 64, each written on its own
    assert stats["delay_ms_max"] >= 15 * 2


def test_limit_data_closes_after_exactly_n_bytes(network: ProxyNetwork) -> None:
    network.limit_data(500, direction="downstream")
    with _connect(network) as sock:
        sock.sendall(PAYLOAD[:2000])
        got = _recv_exactly(sock, 2000)
    assert got == PAYLOAD[:500]
    stats = network.stats()
    assert stats["cuts"] == 1 and stats["downstream"]["bytes_written"] == 500


def test_corrupt_flips_bytes_and_counts_them(network: ProxyNetwork) -> None:
    network.corrupt(0.05, direction="downstream")
    with _connect(network) as sock:
        sock.sendall(PAYLOAD)
        got = _recv_exactly(sock, len(PAYLOAD))
    differing = sum(1 for a, b in zip(got, PAYLOAD, strict=True) if a != b)
    stats = network.stats()["downstream"]
    assert differing == stats["bytes_corrupted"]
    assert 0.02 * len(PAYLOAD) < differing < 0.1 * len(PAYLOAD)


def test_context_manager_and_put_back_heal(network: ProxyNetwork) -> None:
    with network as faults:
        faults.blackhole()
        assert [f.kind for f in network.proxy.faults()] == ["blackhole"]
    assert network.proxy.faults() == []
    network.refuse()
    network.put_back()
    assert network.timeline() == []  # attached and cleared
    with _connect(network) as sock:
        sock.sendall(b"ok")
        assert _recv_exactly(sock, 2) == b"ok"


def test_bad_fault_arguments_are_refused(network: ProxyNetwork) -> None:
    with pytest.raises(ValueError, match="direction"):
        network.latency(10, direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        network.corrupt(0)
    with pytest.raises(ValueError, match="bytes_per_s"):
        network.bandwidth(0)


def test_unreachable_upstream_resets_the_client() -> None:
    # Bound but not listening: connects to it are refused, and the port stays ours
    # (a released port could be handed to the proxy itself).
    with socket.socket() as dead:
        dead.bind(("127.0.0.1", 0))
        proxy = FaultProxy(dead.getsockname())
        proxy.start()
        try:
            # The RST may even beat the end of connect() on a loaded machine.
            with (
                pytest.raises((ConnectionResetError, BrokenPipeError)),
                socket.create_connection(proxy.address, timeout=2) as sock,
            ):
                sock.sendall(b"x")
                if not sock.recv(1):
                    raise ConnectionResetError("closed")
            assert proxy.stats()["upstream_failures"] == 1
        finally:
            proxy.stop()
        with pytest.raises(RigError, match="not started"):
            _ = FaultProxy(dead.getsockname()).address
