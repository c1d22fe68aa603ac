"""A terminal implementation running as a local process behind a pty test port.

Used by the ``sim`` and ``command`` dut drivers. The rig creates the pty pair and
keeps both ends open for the whole session, the way a lab's USB-serial cable stays
plugged in while the terminal loses power: the terminal process gets the master
end (``HIL_CONSOLE_FD``), the console instrument opens the slave path with pyserial.
Killing the process is therefore a real power cut seen from the port: silence,
not a vanished device.

The terminal must not outlive its rig, however the rig ends:

- it is the leader of its own session and process group, so a power cut takes
  whatever it started with it;
- it gets a **watchdog pipe**: the read end as ``HIL_RIG_ALIVE_FD``, while only the
  rig holds the write end. When the rig's process ends, by any signal including
  SIGKILL, the kernel closes the write end and the terminal reads end-of-file: it then
  powers off as on SIGTERM (docs/test-port-protocol.md);
- each process started is recorded in the rig's work folder (``hil.runtime``), so a
  later run stops a terminal that ignored the watchdog.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import termios
import tty
from collections.abc import Mapping, Sequence
from pathlib import Path

from hil.errors import RigError
from hil.lifecycle import interruptions_held
from hil.runinfo import RUN_ID_ENV, run_id
from hil.runtime import ProcessLedger

#: the inherited descriptor that reads end-of-file once the rig is gone
RIG_ALIVE_FD_ENV = "HIL_RIG_ALIVE_FD"


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
        ledger: ProcessLedger | None = None,
        cwd: Path | None = None,
        name: str = "dut",
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.state_dir = state_dir
        self.name = name
        self._env = dict(env)
        # A live view: read at each power-on, so channels wired after this object was
        # made (by instruments built later) reach the terminal.
        self._channels: Mapping[str, str] = channels if channels is not None else {}
        self._stderr_path = stderr_path
        self._process: subprocess.Popen[bytes] | None = None
        self._pending_firmware: Path | None = None
        self._ledger = ledger
        # Only this process ever holds the write end (it is not inherited: O_CLOEXEC),
        # so the terminal's read end sees end-of-file exactly when the rig is gone.
        self._rig_alive_read, self._rig_alive_write = os.pipe()
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
        env[RUN_ID_ENV] = run_id()  # how a later run recognises it if this one dies
        env["HIL_CONSOLE_FD"] = str(self._master)
        env[RIG_ALIVE_FD_ENV] = str(self._rig_alive_read)
        env["HIL_STATE_DIR"] = str(self.state_dir)
        env["HIL_CHANNELS"] = format_channels(self._channels)
        env.pop("HIL_FIRMWARE", None)
        if self._pending_firmware is not None:
            env["HIL_FIRMWARE"] = str(self._pending_firmware)
        self._stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self._forget_ended()
        # A Ctrl-C or SIGTERM landing inside Popen (after the fork, before ``_process``
        # is set) would leave a powered terminal nobody can switch off: hold it until
        # the handle is stored and recorded, so the rig's teardown finds the process.
        with interruptions_held(), self._stderr_path.open("ab") as stderr:
            try:
                self._process = subprocess.Popen(
                    self.command,
                    env=env,
                    pass_fds=(self._master, self._rig_alive_read),
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    # Own session and process group: Ctrl-C in the runner must not reach
                    # the terminal (the rig powers it down in order), and a power cut
                    # takes everything the terminal started.
                    start_new_session=True,
                )
            except OSError as e:
                raise RigError(
                    f"cannot start terminal command {self.command[0]!r}: {e}",
                    instrument=self.name,
                ) from e
            if self._ledger is not None:
                self._ledger.record(self._process.pid, self.command)
        self._pending_firmware = None

    def terminate(self, timeout: float) -> int | None:
        """Graceful power-off (SIGTERM). Returns the exit code, or None if it had to be cut."""
        if self._process is None or not self.alive:
            return None if self._process is None else self._process.returncode
        self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self._end_group()
        return code

    def kill(self) -> None:
        """Hard power cut (SIGKILL): no chance to flush anything."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5)
        self._end_group()

    def _end_group(self) -> None:
        """The power is off: nothing the terminal started keeps running."""
        if self._process is None or self._process.poll() is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._forget_ended()

    def _forget_ended(self) -> None:
        process = self._process
        if self._ledger is not None and process is not None and process.poll() is not None:
            self._ledger.forget(process.pid)

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
        fds = (self._master, self._slave, self._rig_alive_read, self._rig_alive_write)
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = self._rig_alive_read = self._rig_alive_write = -1


def format_channels(channels: Mapping[str, str]) -> str:
    """``HIL_CHANNELS``: comma-separated ``name`` or ``name=value`` items, sorted."""
    return ",".join(
        f"{name}={value}" if value else name for name, value in sorted(channels.items())
    )
