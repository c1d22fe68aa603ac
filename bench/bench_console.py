"""Test-port round trip: the framework's session vs raw pyserial, same pty, one run.

Raw: the rig writes a small request over pyserial, a responder on the pty master
echoes it back, the rig reads it. Framework: ConsoleSession.request("sys.ping") to a
TerminalEndpoint on the master (framing, CRC, ACK both ways, JSON, correlation).

Both are set up once and then run in alternating blocks (raw, framework, raw, ...),
so a machine whose load changes during the run slows both alike and the ratio stays
fair. Prints the median round trip of each and the ratio; run with
`.venv/bin/python bench/bench_console.py` (`--blocks 10 --rounds 200` by default).

`--floor` adds a third side, the structure floor: hil's threads and writes (request;
ACK + response in one write; the rig reader's ACK and hand-off to the caller) with
none of its Python, so the gap between the floor and hil is what the Python costs.

By default both far ends (the echo, the endpoint) are threads of this process, so
they share its interpreter lock with the rig's side. `--far-end process` runs each
in a child process instead, as a rig runs the sim terminal: same pty, same code.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

import serial

from hil.protocol.endpoint import TerminalEndpoint
from hil.protocol.framing import ACK, encode_frame
from hil.protocol.session import ConsoleSession
from hil.protocol.transcript import Transcript
from hil.protocol.transport import FdPort, open_serial

REQUEST = b'{"type":"req","id":1,"cmd":"sys.ping","args":{}}'


def _pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


# The far ends as child processes, given the master's descriptor (argv[1]).
ECHO_PROCESS = """
import sys
from hil.protocol.transport import FdPort
device = FdPort(int(sys.argv[1]), timeout=0.05)
while True:
    data = device.read(4096)
    if data:
        device.write(data)
"""

ENDPOINT_PROCESS = """
import sys
import threading
from hil.protocol.endpoint import TerminalEndpoint
from hil.protocol.framing import ACK, encode_frame
from hil.protocol.transport import FdPort
port = FdPort(int(sys.argv[1]))
endpoint = TerminalEndpoint(
    port, lambda cmd, args: {"uptime_ms": 1}, name="bench-terminal", quick={"sys.ping"}
)
endpoint.start()
threading.Event().wait()
"""


def _far_end(code: str, master: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, str(master)], pass_fds=(master,))


class RawEcho:
    """pyserial on the slave, a thread (or process) echoing on the master: the floor."""

    def __init__(self, far_end: str = "thread") -> None:
        self.master, self.slave, path = _pty()
        self.port = serial.Serial(path, 115200, timeout=1.0)
        self._stop = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._respond, daemon=True)
        if far_end == "process":
            self._process = _far_end(ECHO_PROCESS, self.master)
        else:
            self._thread.start()

    def _respond(self) -> None:
        device = FdPort(self.master, timeout=0.05)
        while not self._stop.is_set():
            data = device.read(4096)
            if data:
                device.write(data)

    def round_trip(self) -> None:
        self.port.write(REQUEST)
        got = b""
        while len(got) < len(REQUEST):
            got += self.port.read(len(REQUEST) - len(got))

    def close(self) -> None:
        self._stop.set()
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        else:
            self._thread.join()
        self.port.close()
        os.close(self.master)
        os.close(self.slave)


class Framework:
    """ConsoleSession on the slave, TerminalEndpoint on the master."""

    def __init__(self, far_end: str = "thread", transcript: bool = False) -> None:
        self.master, self.slave, path = _pty()
        # A rig's console records every chunk (hil.instruments.console: 10 ms window).
        recorder = Transcript(coalesce_window=0.01) if transcript else None
        self.session = ConsoleSession(open_serial(path), name="bench", transcript=recorder)
        self.session.start()
        self.process: subprocess.Popen[bytes] | None = None
        if far_end == "process":
            self.process = _far_end(ENDPOINT_PROCESS, self.master)
            return

        def handler(cmd: str, args: dict[str, Any]) -> dict[str, Any]:
            return {"uptime_ms": 1}

        port = FdPort(self.master)
        try:
            # sys.ping only reads state, as on the sim: answered with its ACK in one write.
            self.endpoint = TerminalEndpoint(
                port, handler, name="bench-terminal", quick={"sys.ping"}
            )
        except TypeError:  # a pos-hil from before quick commands, to measure "before"
            self.endpoint = TerminalEndpoint(port, handler, name="bench-terminal")
        self.endpoint.start()

    def round_trip(self) -> None:
        self.session.request("sys.ping", timeout=5.0)

    def close(self) -> None:
        self.session.close()
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        else:
            self.endpoint.close()
        os.close(self.master)
        os.close(self.slave)


# The structure floor's far end: reads whatever comes, answers a frame (not a lone ACK)
# with an ACK and a ready-made response in one write, as the endpoint does for sys.ping.
FLOOR_FAR_END = """
import os, select, sys
fd = int(sys.argv[1])
os.set_blocking(fd, False)
poller = select.poll()
poller.register(fd, select.POLLIN)
answer = bytes.fromhex(sys.argv[2])
while True:
    poller.poll(50)
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        continue
    if len(data) > 1:
        os.write(fd, answer)
"""


class StructureFloor:
    """A hil round trip's structure without its Python: the same pty, threads and writes
    (the caller writes a request frame and sleeps on a lock; the far end answers with
    ACK + response in one write; the rig's reader thread reads them, writes the ACK and
    wakes the caller; the far end reads that ACK), but no decoding, CRC, JSON, session
    or link logic. What the framework costs above this is its Python."""

    def __init__(self, far_end: str = "thread") -> None:
        self.master, self.slave, path = _pty()
        self.port = serial.Serial(path, 115200, timeout=0.05)
        self._stop = threading.Event()
        self._waiter: threading.Lock | None = None
        self._request = encode_frame({"type": "req", "id": 1, "cmd": "sys.ping", "args": {}})
        answer = bytes([ACK]) + encode_frame(
            {"type": "res", "id": 1, "ok": True, "result": {"uptime_ms": 1}}
        )
        argv = [str(self.master), answer.hex()]
        self._process: subprocess.Popen[bytes] | None = None
        self._far: threading.Thread | None = None
        if far_end == "process":
            self._process = subprocess.Popen(
                [sys.executable, "-c", FLOOR_FAR_END, *argv], pass_fds=(self.master,)
            )
        else:
            code = FLOOR_FAR_END.replace("sys.argv[1]", argv[0]).replace(
                "sys.argv[2]", repr(argv[1])
            )
            code = code.replace("while True:", "while not stop.is_set():")
            self._far = threading.Thread(
                target=exec, args=(code, {"stop": self._stop}), daemon=True
            )
            self._far.start()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        fd = self.port.fd
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(50):
                continue
            if len(os.read(fd, 65536)) > 1:
                os.write(fd, bytes([ACK]))
                waiter, self._waiter = self._waiter, None
                if waiter is not None:
                    waiter.release()

    def round_trip(self) -> None:
        waiter = threading.Lock()
        waiter.acquire()
        self._waiter = waiter
        os.write(self.port.fd, self._request)  # type: ignore[arg-type]
        waiter.acquire(timeout=5.0)

    def close(self) -> None:
        self._stop.set()
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        elif self._far is not None:
            self._far.join()
        self._reader.join()
        self.port.close()
        os.close(self.master)
        os.close(self.slave)


def _block(round_trip: Callable[[], None], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        round_trip()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=10, help="blocks per side (alternating)")
    parser.add_argument("--rounds", type=int, default=200, help="round trips per block")
    parser.add_argument(
        "--far-end",
        choices=("thread", "process"),
        default="thread",
        help="the echo and the endpoint as threads here, or as child processes",
    )
    parser.add_argument(
        "--transcript",
        action="store_true",
        help="the rig's session records a transcript, as a rig's console does",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time the structure floor: hil's threads and writes without its Python",
    )
    options = parser.parse_args()
    raw, framework = RawEcho(options.far_end), Framework(options.far_end, options.transcript)
    floor = StructureFloor(options.far_end) if options.floor else None
    raw_times: list[float] = []
    framework_times: list[float] = []
    floor_times: list[float] = []
    try:
        for _ in range(20):  # warm both up (threads, caches, child start) before measuring
            raw.round_trip()
            framework.round_trip()
            if floor is not None:
                floor.round_trip()
        for _ in range(options.blocks):
            raw_times += _block(raw.round_trip, options.rounds)
            framework_times += _block(framework.round_trip, options.rounds)
            if floor is not None:
                floor_times += _block(floor.round_trip, options.rounds)
    finally:
        raw.close()
        framework.close()
        if floor is not None:
            floor.close()
    raw_ms = statistics.median(raw_times) * 1000
    framework_ms = statistics.median(framework_times) * 1000
    print(f"blocks x rounds per side:  {options.blocks} x {options.rounds} (alternating)")
    print(f"far ends (echo, endpoint): {options.far_end}")
    print(f"transcript on the rig:     {'yes' if options.transcript else 'no'}")
    print(f"raw pyserial echo median:  {raw_ms * 1000:.0f} us")
    print(f"hil request/response:      {framework_ms * 1000:.0f} us (framing, CRC, ACK x2, JSON)")
    print(f"ratio framework / raw:     {framework_ms / raw_ms:.1f}x")
    if floor_times:
        floor_ms = statistics.median(floor_times) * 1000
        print(f"structure floor median:    {floor_ms * 1000:.0f} us (same threads and writes)")
        print(f"ratio floor / raw:         {floor_ms / raw_ms:.1f}x")


if __name__ == "__main__":
    main()
