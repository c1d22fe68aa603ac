"""The toxiproxy driver against a stand-in speaking Toxiproxy's documented API, and
the netem driver where this machine allows it (it does not here: FACTS.md)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from hil.errors import RigError
from hil.instruments.network.netem import NetemNetwork, netem_unavailable
from hil.instruments.network.toxiproxy import ToxiproxyNetwork
from tests.integration.test_network_proxy import _Echo, _recv_exactly
from tests.integration.toxiproxy_standin import ToxiproxyStandIn

pytestmark = pytest.mark.integration


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    import socketserver
    import threading

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def standin() -> Iterator[ToxiproxyStandIn]:
    server = ToxiproxyStandIn()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def toxi(standin: ToxiproxyStandIn, echo: tuple[str, int]) -> Iterator[ToxiproxyNetwork]:
    host, port = standin.server.server_address[:2]
    network = ToxiproxyNetwork(
        f"http://{host!s}:{port}",
        proxy_name="pos-hil-host",
        listen="127.0.0.1:0",
        upstream=f"{echo[0]}:{echo[1]}",
    )
    yield network
    network.close()


def _round_trip(network: ToxiproxyNetwork, data: bytes = b"ping") -> float:
    with socket.create_connection(network.address, timeout=2) as sock:
        started = time.monotonic()
        sock.sendall(data)
        assert _recv_exactly(sock, len(data)) == data
        return (time.monotonic() - started) * 1000


def test_creates_the_proxy_and_passes_traffic(
    toxi: ToxiproxyNetwork, standin: ToxiproxyStandIn
) -> None:
    assert ("POST", "/proxies", {"name": "pos-hil-host", "listen": "127.0.0.1:0",
            "upstream": toxi.upstream, "enabled": True}) in standin.calls  # fmt: skip
    assert toxi.address[1] != 0  # the listen address the server bound, read back
    _round_trip(toxi)
    assert "2.x-standin" in toxi.preflight()


def test_latency_toxic_on_both_streams(toxi: ToxiproxyNetwork, standin: ToxiproxyStandIn) -> None:
    toxi.latency(60, jitter_ms=5)
    toxics = standin.proxies["pos-hil-host"].toxics
    assert set(toxics) == {"hil_latency_upstream", "hil_latency_downstream"}
    assert toxics["hil_latency_upstream"]["attributes"] == {"latency": 60, "jitter": 5}
    assert toxics["hil_latency_upstream"]["type"] == "latency"
    assert _round_trip(toxi) >= 2 * 55
    toxi.heal()
    assert standin.proxies["pos-hil-host"].toxics == {}
    assert _round_trip(toxi) < 50


def test_refuse_disables_the_proxy(toxi: ToxiproxyNetwork, standin: ToxiproxyStandIn) -> None:
    toxi.refuse()
    assert standin.proxies["pos-hil-host"].enabled is False
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(toxi.address, timeout=2)
    toxi.heal()
    _round_trip(toxi)


def test_blackhole_limit_slicer_bandwidth_map_to_toxics(
    toxi: ToxiproxyNetwork, standin: ToxiproxyStandIn
) -> None:
    toxi.limit_data(3, direction="downstream")
    with socket.create_connection(toxi.address, timeout=2) as sock:
        sock.sendall(b"abcdef")
        assert _recv_exactly(sock, 6) == b"abc"
    toxi.heal()
    toxi.blackhole()
    with socket.create_connection(toxi.address, timeout=0.3) as sock:
        sock.sendall(b"x")
        with pytest.raises(TimeoutError):
            sock.recv(1)
    toxi.heal()
    toxi.slicer(16, 1.5)
    toxi.bandwidth(50_000, direction="downstream")
    toxics = standin.proxies["pos-hil-host"].toxics
    assert toxics["hil_slicer_upstream"]["attributes"] == {
        "average_size": 16, "size_variation": 0, "delay": 1500,
    }  # fmt: skip
    assert toxics["hil_bandwidth_downstream"]["attributes"] == {"rate": 50}
    _round_trip(toxi, b"y" * 200)


def test_gaps_in_toxiproxy_are_rig_errors(toxi: ToxiproxyNetwork) -> None:
    with pytest.raises(RigError, match="no byte-corruption toxic"):
        toxi.corrupt(0.1)
    with pytest.raises(RigError, match="resets by time"):
        toxi.reset_mid_stream(after_bytes=10)
    toxi.reset_mid_stream(0)  # reset_peer with timeout 0 is modelled


def test_unreachable_api_is_a_rig_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RigError, match="unreachable"):
        ToxiproxyNetwork(
            f"http://127.0.0.1:{port}", proxy_name="x", listen="127.0.0.1:0",
            upstream="127.0.0.1:1",
        )  # fmt: skip


def test_netem_driver_or_a_clear_reason() -> None:
    reason = netem_unavailable("lo")
    if reason is not None:
        with pytest.raises(RigError, match="netem driver unavailable"):
            NetemNetwork("lo")
        pytest.skip(f"netem not usable here: {reason}")
    network = NetemNetwork("lo")
    try:
        network.latency(20)
        with pytest.raises(RigError, match="netem cannot refuse"):
            network.refuse()
    finally:
        network.close()
