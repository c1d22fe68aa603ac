"""A terminal implementation running as a local process behind a pty test port.

Used by the ``sim`` and ``command`` dut drivers. The rig creates the pty pair and
keeps both ends open for the whole session, the way a lab's USB-serial cable stays
plugged in while the terminal loses power: the terminal process gets the master
end (``HIL_CONSOLE_FD``), the console instrument opens the slave path with pyserial.
Killing the process is therefore a real power cut seen from the port: silence,
not a vanished device.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import termios
import threading
import tty
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from hil.errors import RigError


class TerminalProcess:
    """Owns the pty pair, the state folder ("flash") and the terminal's process."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        state_dir: Path,
        env: Mapping[str, str],
        stderr_path: Path,
        channels: Mapping[str, str] | None = None,
        name: str = "dut",
    ) -> None:
        self.command = list(command)
        self.state_dir = state_dir
        self.name = name
        self._env = dict(env)
        # A live view: read at each power-on, so channels wired after this object was
        # made (by instruments built later) reach the terminal.
        self._channels: Mapping[str, str] = channels if channels is not None else {}
        self._stderr_path = stderr_path
        self._process: subprocess.Popen[bytes] | None = None
        self._pending_firmware: Path | None = None
        master, slave = os.openpty()
        # Raw before anyone talks: no echo, no CR/LF translation, binary safe.
        tty.setraw(slave)
        self._master = master
        # Held open so the line discipline (and its settings) survive pyserial
        # reopening the port and the terminal process dying.
        self._slave = slave
        self.port_path = os.ttyname(slave)
        state_dir.mkdir(parents=True, exist_ok=True)

    def flash(self, image: Path) -> None:
        """Have the next power-on install ``image`` first, like a flashing station."""
        self._pending_firmware = image

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.alive and self._process is not None else None

    def start(self) -> None:
        if self.alive:
            return
        # Bytes the rig wrote while the terminal was off would reach the new process
        # as garbage; a real UART loses them too.
        termios.tcflush(self._master, termios.TCIOFLUSH)
        env = {**os.environ, **self._env}
        env["HIL_CONSOLE_FD"] = str(self._master)
        env["HIL_STATE_DIR"] = str(self.state_dir)
        env["HIL_CHANNELS"] = format_channels(self._channels)
        env.pop("HIL_FIRMWARE", None)
        if self._pending_firmware is not None:
            env["HIL_FIRMWARE"] = str(self._pending_firmware)
        self._stderr_path.parent.mkdir(parents=True, exist_ok=True)
        # A Ctrl-C landing inside Popen (after the fork, before ``_process`` is set)
        # would leave a powered terminal nobody can switch off: hold it until the
        # handle is stored, so the rig's teardown finds the process.
        with _ctrl_c_held(), self._stderr_path.open("ab") as stderr:
            try:
                self._process = subprocess.Popen(
                    self.command,
                    env=env,
                    pass_fds=(self._master,),
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    # Own session: Ctrl-C in the runner must not reach the terminal;
                    # the rig powers it down in order.
                    start_new_session=True,
                )
            except OSError as e:
                raise RigError(
                    f"cannot start terminal command {self.command[0]!r}: {e}",
                    instrument=self.name,
                ) from e
        self._pending_firmware = None

    def terminate(self, timeout: float) -> int | None:
        """Graceful power-off (SIGTERM). Returns the exit code, or None if it had to be cut."""
        if self._process is None or not self.alive:
            return None if self._process is None else self._process.returncode
        self._process.send_signal(signal.SIGTERM)
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """Hard power cut (SIGKILL): no chance to flush anything."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5)

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stderr_tail(self, limit: int = 4000) -> str:
        try:
            data = self._stderr_path.read_bytes()
        except OSError:
            return ""
        return data[-limit:].decode("utf-8", "replace")

    def close(self) -> None:
        self.kill()
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) that arrives inside the block; raise it when it ends.

    Blocking SIGINT with a signal mask is not enough: the mask is per thread, the
    kernel hands the signal to any thread that does not block it, and Python then
    raises KeyboardInterrupt in the main thread at its next bytecode, which may be
    inside Popen. A handler that only records the signal leaves no such gap.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread, which gets them
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def format_channels(channels: Mapping[str, str]) -> str:
    """``HIL_CHANNELS``: comma-separated ``name`` or ``name=value`` items, sorted."""
    return ",".join(
        f"{name}={value}" if value else name for name, value in sorted(channels.items())
    )
