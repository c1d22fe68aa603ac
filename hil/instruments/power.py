"""Power: switch the terminal on, off gracefully, or cut it hard.

Driver ``sim`` (``[power]``): the supply of a process terminal (dut ``sim`` or
``command``): power on starts the process, graceful off is SIGTERM, a cut is SIGKILL.
Power drivers for hardware (relay boards, PDUs, a lab's own switch) are registered
from outside pos-hil the same way (docs/writing-a-driver.md; examples/ ships an
``exec`` driver that runs a command for each action).

Every power instrument is put back *on* after a scenario, and switched off
(gracefully) when the rig closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError
from hil.instruments.dut import ProcessTerminal, runs_as_process
from hil.terminal_process import TerminalProcess


@runtime_checkable
class Power(Protocol):
    """A terminal's power supply as steps and the rig see it."""

    name: str

    def on(self) -> None: ...

    def off(self) -> None:
        """Graceful power-off: the terminal may save its state."""

    def cut(self) -> None:
        """Hard power cut: the supply vanishes mid-whatever."""

    @property
    def is_on(self) -> bool: ...

    def put_back(self) -> None:
        """Powered on again if a scenario left the terminal off."""

    def preflight(self) -> str: ...

    def close(self) -> None:
        """Switch off gracefully if on; never raise."""


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

    def put_back(self) -> None:
        if not self.is_on:
            self.on()

    def preflight(self) -> str:
        if not self.is_on:
            raise RigError("the terminal is not powered", instrument=self.name)
        return "on"

    def close(self) -> None:
        if self.is_on:
            self.off()


class SimPowerConfig(DriverConfig):
    off_timeout_s: float = Field(default=5.0, gt=0, description="graceful off, then a cut")


@register("power", "sim")
class SimPowerDriver(Driver):
    config_model = SimPowerConfig
    needs = ("dut",)

    @classmethod
    def check(cls, config: SimPowerConfig, sections: Mapping[str, DriverConfig]) -> None:
        if not runs_as_process(sections):
            raise ValueError("driver: 'sim' needs dut.driver 'sim' or 'command'")

    @classmethod
    def build(cls, config: SimPowerConfig, context: BuildContext) -> Built:
        terminal = context.instrument("dut", ProcessTerminal)
        return Built(SimPower(terminal.process, off_timeout=config.off_timeout_s))
