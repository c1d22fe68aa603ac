"""The built-in fault proxy with no fault set vs a direct connection, same run.

Round trip: 4-byte request echoed back, median over N exchanges on one connection.
Throughput: one connection pushes SIZE bytes to an echo server and reads them back.
Both are measured direct to the echo server and through hil.faultproxy.FaultProxy,
all on loopback; prints medians and the ratios. Run with
`.venv/bin/python bench/bench_proxy.py` (a few seconds).
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import statistics
import threading
import time

from hil.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            return  # the proxy aborts its links when it stops


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(min(65536, n - got))
        if not chunk:
            raise ConnectionError("closed")
        got += len(chunk)


def round_trips(address: tuple[str, int], count: int) -> list[float]:
    samples = []
    with _connect(address) as sock:
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(b"ping")
            _recv_exactly(sock, 4)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def throughput(address: tuple[str, int], size: int) -> float:
    """MB/s for SIZE bytes out and back, writer and reader on separate threads."""
    block = b"\xa5" * 65536
    with _connect(address) as sock:
        started = time.perf_counter()

        def send() -> None:
            sent = 0
            while sent < size:
                sock.sendall(block[: min(len(block), size - sent)])
                sent += min(len(block), size - sent)

        writer = threading.Thread(target=send)
        writer.start()
        _recv_exactly(sock, size)
        writer.join()
        elapsed = time.perf_counter() - started
    return size / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000, help="round trips per path")
    parser.add_argument("--size-mb", type=int, default=32, help="MB for the throughput run")
    args = parser.parse_args()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    direct = (server.server_address[0], server.server_address[1])
    proxy = FaultProxy(direct)
    via_proxy = proxy.start()
    try:
        round_trips(direct, 100)  # warm-up, both paths
        round_trips(via_proxy, 100)
        rtt_direct = statistics.median(round_trips(direct, args.count))
        rtt_proxy = statistics.median(round_trips(via_proxy, args.count))
        size = args.size_mb * 1_000_000
        mbps_direct = throughput(direct, size)
        mbps_proxy = throughput(via_proxy, size)
    finally:
        proxy.stop()
        server.shutdown()
        server.server_close()
    print(f"round trip, median of {args.count}:")
    print(f"  direct        {rtt_direct:8.3f} ms")
    print(
        f"  through proxy {rtt_proxy:8.3f} ms   (+{rtt_proxy - rtt_direct:.3f} ms, "
        f"x{rtt_proxy / rtt_direct:.1f})"
    )
    print(f"throughput, {args.size_mb} MB out and back on one connection:")
    print(f"  direct        {mbps_direct:8.1f} MB/s")
    print(f"  through proxy {mbps_proxy:8.1f} MB/s   (ratio {mbps_proxy / mbps_direct:.2f})")


if __name__ == "__main__":
    main()
