"""Power: switch the terminal on, off gracefully, or cut it hard."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from hil import reporting
from hil.terminal_process import TerminalProcess


@runtime_checkable
class Power(Protocol):
    """A terminal's power supply as steps see it."""

    name: str

    def on(self) -> None: ...

    def off(self) -> None:
        """Graceful power-off: the terminal may save its state."""

    def cut(self) -> None:
        """Hard power cut: the supply vanishes mid-whatever."""

    @property
    def is_on(self) -> bool: ...


class SimPower:
    """Power of a process terminal: start, SIGTERM, SIGKILL."""

    def __init__(
        self, process: TerminalProcess, *, off_timeout: float, name: str = "power"
    ) -> None:
        self.name = name
        self._process = process
        self._off_timeout = off_timeout

    def on(self) -> None:
        with reporting.action(f"{self.name}: on"):
            self._process.start()

    def off(self) -> None:
        with reporting.action(f"{self.name}: off (graceful)"):
            self._process.terminate(self._off_timeout)

    def cut(self) -> None:
        with reporting.action(f"{self.name}: cut (hard)"):
            self._process.kill()

    @property
    def is_on(self) -> bool:
        return self._process.alive
