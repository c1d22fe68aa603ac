"""Test-port round trip over RFC 2217 through ser2net vs over the pty directly, one run.

Two ptys, each with a TerminalEndpoint answering ``sys.ping`` on its master end. The
console driver (PyserialConsole, as a rig builds it) talks to one over its pty path and
to the other as ``rfc2217://127.0.0.1:PORT?ign_set_control`` through Debian's ser2net
started here on loopback (tests/integration/ser2net.py). Blocks alternate (direct,
rfc2217, direct, ...) so load changes slow both alike. Prints the medians and the ratio:

    .venv/bin/python bench/bench_rfc2217.py          # --blocks 10 --rounds 100
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.integration.ser2net

from hil.instruments.console import PyserialConsole
from hil.protocol.endpoint import TerminalEndpoint
from hil.protocol.transport import FdPort
from tests.integration.ser2net import Ser2net


class PingingTerminal:
    """A pty whose master end answers sys.ping through the terminal's endpoint."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

        def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
            return {"uptime_ms": 1}

        port = FdPort(self.master)
        try:
            self.endpoint = TerminalEndpoint(port, handler, name="bench", quick={"sys.ping"})
        except TypeError:  # an endpoint without quick commands
            self.endpoint = TerminalEndpoint(port, handler, name="bench")
        self.endpoint.start()

    def close(self) -> None:
        self.endpoint.close()
        os.close(self.master)
        os.close(self.slave)


def block(console: PyserialConsole, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        console.request("sys.ping", timeout=5.0)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10, help="blocks per side (alternating)")
    parser.add_argument("--rounds", type=int, default=100, help="round trips per block")
    parser.add_argument(
        "--coalesce-ms", type=int, default=10, help="console.transcript_coalesce_ms (0: off)"
    )
    options = parser.parse_args()
    direct_terminal, remote_terminal = PingingTerminal(), PingingTerminal()
    with tempfile.TemporaryDirectory(prefix="bench-rfc2217-") as folder:
        server = Ser2net(remote_terminal.path, Path(folder))
        server.start()
        direct = PyserialConsole(direct_terminal.path)
        remote = PyserialConsole(server.url, coalesce_window=options.coalesce_ms / 1000)
        times: dict[str, list[float]] = {"direct": [], "rfc2217": []}
        sides: list[tuple[str, Callable[[int], list[float]]]] = [
            ("direct", lambda n: block(direct, n)),
            ("rfc2217", lambda n: block(remote, n)),
        ]
        try:
            for _, run in sides:  # warm up: threads, caches, the telnet negotiation
                run(20)
            for _ in range(options.blocks):
                for name, run in sides:
                    times[name] += run(options.rounds)
            requests = 20 + options.blocks * options.rounds
            entries = len(remote.transcript)
        finally:
            direct.close()
            remote.close()
            server.stop()
            direct_terminal.close()
            remote_terminal.close()
    direct_us = statistics.median(times["direct"]) * 1e6
    remote_us = statistics.median(times["rfc2217"]) * 1e6
    print(f"blocks x rounds per side:   {options.blocks} x {options.rounds} (alternating)")
    print(f"pty direct, median:         {direct_us:.0f} us")
    print(f"rfc2217 via ser2net, median: {remote_us:.0f} us")
    print(f"ratio rfc2217 / direct:     {remote_us / direct_us:.1f}x")
    print(
        f"rfc2217 transcript:         {entries / requests:.2f} lines a request "
        f"(coalescing {options.coalesce_ms} ms)"
    )


if __name__ == "__main__":
    main()
