"""Test-port round trip: the framework's session vs raw pyserial, same pty, one run.

Raw: the rig writes a small request over pyserial, a responder on the pty master
echoes it back, the rig reads it. Framework: ConsoleSession.request("sys.ping") to a
TerminalEndpoint on the master (framing, CRC, ACK both ways, JSON, correlation).
Prints medians and the ratio; run with `.venv/bin/python bench/bench_console.py`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import tty
from typing import Any

import serial

from hil.protocol.endpoint import TerminalEndpoint
from hil.protocol.session import ConsoleSession
from hil.protocol.transport import FdPort, open_serial


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def bench_raw(rounds: int) -> list[float]:
    master, slave, path = _pty()
    port = serial.Serial(path, 115200, timeout=1.0)
    stop = threading.Event()
    request = b'{"type":"req","id":1,"cmd":"sys.ping","args":{}}'

    def responder() -> None:
        device = FdPort(master, timeout=0.05)
        while not stop.is_set():
            data = device.read(4096)
            if data:
                device.write(data)

    thread = threading.Thread(target=responder, daemon=True)
    thread.start()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        port.write(request)
        got = b""
        while len(got) < len(request):
            got += port.read(len(request) - len(got))
        times.append(time.perf_counter() - started)
    stop.set()
    thread.join()
    port.close()
    os.close(master)
    os.close(slave)
    return times


def bench_framework(rounds: int) -> list[float]:
    master, slave, path = _pty()
    session = ConsoleSession(open_serial(path), name="bench")
    session.start()

    def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"uptime_ms": 1}

    endpoint = TerminalEndpoint(FdPort(master), handler, name="bench-terminal")
    endpoint.start()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        session.request("sys.ping", timeout=5.0)
        times.append(time.perf_counter() - started)
    session.close()
    endpoint.close()
    os.close(master)
    os.close(slave)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=500)
    rounds = parser.parse_args().rounds
    raw = statistics.median(bench_raw(rounds)) * 1000
    framework = statistics.median(bench_framework(rounds)) * 1000
    print(f"rounds per side:           {rounds}")
    print(f"raw pyserial echo median:  {raw:.3f} ms")
    print(f"hil request/response:      {framework:.3f} ms (framing, CRC, ACK x2, JSON)")
    print(f"ratio framework / raw:     {framework / raw:.1f}x")


if __name__ == "__main__":
    main()
