"""Debian's ser2net in front of a serial device, for tests and benches: a lab's RFC 2217
server, started and stopped here, listening on loopback only.

    server = Ser2net("/dev/pts/5", folder)
    server.start()              # returns once it listens on 127.0.0.1:server.port
    server.url                  # rfc2217://127.0.0.1:PORT?ign_set_control
    server.kill(); server.start()   # a dropped link: same port, a new process
    server.stop()

ser2net is a system package (scripts/setup.sh installs it); when it is missing this
raises ``Ser2netMissing`` naming the fix, so a test fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

INSTALL_HINT = "install Debian's ser2net (scripts/setup.sh does: sudo apt-get install ser2net)"
READY_TIMEOUT_S = 10.0


class Ser2netMissing(RuntimeError):
    """The ser2net program is not installed."""


def ser2net_program() -> str:
    """The ser2net executable; Ser2netMissing if there is none."""
    found = shutil.which("ser2net") or next(
        (p for p in ("/usr/sbin/ser2net", "/usr/local/sbin/ser2net") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        raise Ser2netMissing(f"ser2net not found on PATH or in /usr/sbin: {INSTALL_HINT}")
    return found


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_yaml(device: str, port: int, *, baud: int = 115200, options: str = "") -> str:
    """The ser2net 4 configuration serving ``device`` as RFC 2217 on 127.0.0.1:port.

    ``local``: ignore modem control lines (a pty, or a 3-wire test-port cable has
    none); ``kickolduser``: a rig that reconnects replaces its own stale connection
    instead of being refused while ser2net has not noticed the old one gone.
    ``tcp(nodelay)`` and ``chardelay: false``: a request/response protocol waits on
    every small frame; with Nagle's algorithm on ser2net's socket a round trip settles
    at the peer's 40 ms delayed ACK after about a hundred requests, and ser2net's
    character delay (it waits for more bytes before sending) adds milliseconds more
    (measured: 44 ms, then 4 ms, then 0.5 ms a round trip; docs/bench-setup.md).
    """
    return (
        "%YAML 1.1\n"
        "---\n"
        "connection: &testport\n"
        f"  accepter: telnet(rfc2217),tcp(nodelay),127.0.0.1,{port}\n"
        f"  connector: serialdev,{device},{baud}n81,local\n"
        "  options:\n"
        "    kickolduser: true\n"
        "    chardelay: false\n" + options
    )


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (from /proc: connecting to ser2net
    to find out would open the device behind it)."""
    wanted = f"0100007F:{port:04X}"
    try:
        table = Path("/proc/net/tcp").read_text()
    except OSError:
        return False
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
            return True
    return False


class Ser2net:
    """One ser2net process serving one device as RFC 2217 on loopback."""

    def __init__(self, device: str, folder: Path, *, port: int | None = None) -> None:
        self.program = ser2net_program()
        self.device = device
        self.folder = folder
        self.port = port if port is not None else free_loopback_port()
        self.config = folder / f"ser2net-{self.port}.yaml"
        self.log = folder / f"ser2net-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.port}?ign_set_control"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start ser2net in the foreground and wait until it listens."""
        if self.running:
            return
        self.config.write_text(config_yaml(self.device, self.port), encoding="utf-8")
        with self.log.open("ab") as log:
            # -n: no daemon; -d: log to stdout; -u: no UUCP lock files (no /var/lock
            # needed); -P: a pid file of our own, not /run/ser2net.pid.
            self._process = subprocess.Popen(
                [
                    self.program,
                    "-n",
                    "-d",
                    "-u",
                    "-c",
                    str(self.config),
                    "-P",
                    str(self.folder / f"ser2net-{self.port}.pid"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not listening(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"ser2net did not listen on 127.0.0.1:{self.port}: "
                    f"{self.log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the network link drops with no goodbye, as when a server dies."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(how)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        # Gone once its port no longer listens: a restart then binds it afresh.
        deadline = time.monotonic() + 5
        while listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)
