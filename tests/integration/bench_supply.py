"""A bench for tests: a simulated terminal behind a switchable supply, as a lab has it.

``serve`` keeps a pty pair (the terminal's test port, like a USB-serial cable that
stays plugged in) and a terminal process that exists only while the supply is on. A
person, or a power driver, switches it with ``ctl``::

    python bench_supply.py serve --folder DIR --firmware IMAGE --serial SN
        prints "port /dev/pts/N" and "control DIR/supply.sock", then serves until SIGTERM
    python bench_supply.py ctl DIR/supply.sock on|off|cut|status
        on, off (SIGTERM), cut (SIGKILL): exit 0; status: exit 0 when on, 1 when off

Every action is appended to DIR/actions.log so a test can check which ones a driver
used. Nothing here is pos-hil's rig code: the rig sees a physical terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
from pathlib import Path

from hil.terminal_process import TerminalProcess


def serve(folder: Path, firmware: Path, serial: str, time_scale: float) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    terminal = TerminalProcess(
        [sys.executable, "-m", "hil.sim"],
        state_dir=folder / "flash",
        env={
            "HIL_FACTORY_SERIAL": serial,
            "HIL_PROVISION_TID": "T0000001",
            "HIL_PROVISION_MID": "898310058120001",
            "HIL_TIME_SCALE": repr(time_scale),
        },
        stderr_path=folder / "terminal-stderr.log",
    )
    terminal.flash(firmware)  # the factory image, installed at the first power-on
    control_path = folder / "supply.sock"
    control_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(control_path))
    server.listen()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"port {terminal.port_path}", flush=True)
    print(f"control {control_path}", flush=True)
    actions = (folder / "actions.log").open("a", encoding="utf-8")
    server.settimeout(0.2)
    try:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                action = conn.recv(64).decode().strip()
                if action == "on":
                    terminal.start()
                elif action == "off":
                    terminal.terminate(5.0)
                elif action == "cut":
                    terminal.kill()
                elif action != "status":
                    conn.sendall(b"error unknown action\n")
                    continue
                if action != "status":
                    actions.write(action + "\n")
                    actions.flush()
                conn.sendall(b"on\n" if terminal.alive else b"off\n")
    finally:
        actions.close()
        terminal.close()
        server.close()
        control_path.unlink(missing_ok=True)
    return 0


def ctl(control: Path, action: str) -> int:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(control))
        conn.sendall(action.encode() + b"\n")
        answer = conn.recv(64).decode().strip()
    if answer.startswith("error"):
        print(answer, file=sys.stderr)
        return 2
    if action == "status":
        return 0 if answer == "on" else 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_args = commands.add_parser("serve")
    serve_args.add_argument("--folder", type=Path, required=True)
    serve_args.add_argument("--firmware", type=Path, required=True)
    serve_args.add_argument("--serial", required=True)
    serve_args.add_argument("--time-scale", type=float, default=0.05)
    ctl_args = commands.add_parser("ctl")
    ctl_args.add_argument("control", type=Path)
    ctl_args.add_argument("action", choices=("on", "off", "cut", "status"))
    args = parser.parse_args()
    if args.command == "serve":
        return serve(args.folder, args.firmware, args.serial, args.time_scale)
    with contextlib.suppress(BrokenPipeError):
        return ctl(args.control, args.action)
    return 2


if __name__ == "__main__":
    sys.exit(main())
