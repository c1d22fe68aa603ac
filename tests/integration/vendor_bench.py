"""A vendor's terminal on a lab bench, for tests: started outside the rig, as hardware is.

The "terminal" is pos-hil's simulated one, run here with no ``HIL_CHANNELS`` at all (it
knows nothing of the rig: its wiring must come over its test port). Around it, what a
lab has on the bench:

- its test port served on TCP, as ser2net serves a USB-serial port (``socket://``);
- its supply through relay 1 of a Devantech USB-RLY16, scripted on a pty: the board
  answers the data sheet's command bytes, energising relay 1 powers the terminal on,
  releasing it cuts the supply (SIGKILL: a relay has no graceful off);
- a flashing station (``flash``, like a vendor's flashing tool): the next power-on
  installs the image first.

    python vendor_bench.py serve --folder DIR --firmware IMAGE --serial SN [--console pty]
        prints "console socket://127.0.0.1:P", "relay /dev/pts/N", "control DIR/bench.sock"
        (with ``--console pty``: "console /dev/pts/M", the test port's own serial device,
        for a test that puts Debian's ser2net in front of it itself)
    python vendor_bench.py flash DIR/bench.sock IMAGE      exit 0 once staged

Every byte the relay board received is appended to DIR/relay.bin, every flash to
DIR/flashes.log, so a test can check what the rig's drivers did.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import sys
import threading
import tty
from pathlib import Path

import serial

from hil.terminal_process import TerminalProcess

SUPPLY_RELAY = 1


class PortOverTcp:
    """ser2net in miniature: one TCP client at a time, bytes to and from the port."""

    def __init__(self, port_path: str) -> None:
        self.port = serial.Serial(port_path, 115200, timeout=0)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with client:
                self._pump(client)

    def _pump(self, client: socket.socket) -> None:
        fd = self.port.fileno()
        while True:
            ready, _, _ = select.select([client, fd], [], [], 0.5)
            if client in ready:
                data = client.recv(4096)
                if not data:
                    return
                self.port.write(data)
            if fd in ready:
                data = self.port.read(4096)
                if data:
                    client.sendall(data)


class ScriptedRelayBoard:
    """A Devantech USB-RLY16 (module ID 9, version 3) on the master end of a pty."""

    def __init__(self, terminal: TerminalProcess, log: Path) -> None:
        self.terminal = terminal
        self.states = 0
        self.log = log.open("ab")
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data = os.read(self.master, 64)
            except OSError:
                return
            self.log.write(data)
            self.log.flush()
            for byte in data:
                answer = self._handle(byte)
                if answer:
                    os.write(self.master, answer)

    def _handle(self, byte: int) -> bytes:
        if byte == 0x5A:
            return bytes([9, 3])
        if byte == 0x5B:
            return bytes([self.states])
        if 0x65 <= byte <= 0x6C:
            self.states |= 1 << (byte - 0x65)
        elif 0x6F <= byte <= 0x76:
            self.states &= ~(1 << (byte - 0x6F))
        elif byte == 0x64:
            self.states = 0xFF
        elif byte == 0x6E:
            self.states = 0
        supplied = bool(self.states & (1 << (SUPPLY_RELAY - 1)))
        if supplied and not self.terminal.alive:
            self.terminal.start()
        elif not supplied and self.terminal.alive:
            self.terminal.kill()  # the supply is gone: no graceful anything
        return b""


def serve(
    folder: Path, firmware: Path, serial_number: str, time_scale: float, console: str = "tcp"
) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    terminal = TerminalProcess(
        [sys.executable, "-m", "hil.sim"],
        state_dir=folder / "flash",
        env={
            "HIL_FACTORY_SERIAL": serial_number,
            "HIL_PROVISION_TID": "T0000001",
            "HIL_PROVISION_MID": "898310058120001",
            "HIL_TIME_SCALE": repr(time_scale),
        },
        stderr_path=folder / "terminal-stderr.log",
    )
    terminal.flash(firmware)  # the factory image
    bridge = PortOverTcp(terminal.port_path) if console == "tcp" else None
    board = ScriptedRelayBoard(terminal, folder / "relay.bin")
    control_path = folder / "bench.sock"
    control_path.unlink(missing_ok=True)
    control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    control.bind(str(control_path))
    control.listen()
    control.settimeout(0.2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if bridge is not None:
        host, port = bridge.address
        print(f"console socket://{host}:{port}", flush=True)
    else:
        print(f"console {terminal.port_path}", flush=True)
    print(f"relay {board.path}", flush=True)
    print(f"control {control_path}", flush=True)
    flashes = (folder / "flashes.log").open("a", encoding="utf-8")
    try:
        while not stop.is_set():
            try:
                conn, _ = control.accept()
            except TimeoutError:
                continue
            with conn:
                words = conn.recv(4096).decode().split(maxsplit=1)
                if len(words) == 2 and words[0] == "flash" and Path(words[1]).is_file():
                    terminal.flash(Path(words[1]))
                    flashes.write(words[1] + "\n")
                    flashes.flush()
                    conn.sendall(b"staged\n")
                else:
                    conn.sendall(b"error: flash IMAGE (an existing file)\n")
    finally:
        flashes.close()
        terminal.close()
        control.close()
        control_path.unlink(missing_ok=True)
    return 0


def flash(control: Path, image: Path) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(control))
        conn.sendall(f"flash {image.resolve()}".encode())
        answer = conn.recv(256).decode().strip()
    print(f"flashing station: {answer}")
    return 0 if answer == "staged" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_args = commands.add_parser("serve")
    serve_args.add_argument("--folder", type=Path, required=True)
    serve_args.add_argument("--firmware", type=Path, required=True)
    serve_args.add_argument("--serial", required=True)
    serve_args.add_argument("--time-scale", type=float, default=0.05)
    serve_args.add_argument("--console", choices=("tcp", "pty"), default="tcp")
    flash_args = commands.add_parser("flash")
    flash_args.add_argument("control", type=Path)
    flash_args.add_argument("image", type=Path)
    args = parser.parse_args()
    if args.command == "serve":
        return serve(args.folder, args.firmware, args.serial, args.time_scale, args.console)
    with contextlib.suppress(BrokenPipeError):
        return flash(args.control, args.image)
    return 2


if __name__ == "__main__":
    sys.exit(main())
