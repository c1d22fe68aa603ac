"""The device under test: which terminal sits on the rig, and who starts it.

Every ``[dut]`` driver's options start with the identity the terminal must report
(``hil.config.DutConfig``). Drivers:

- ``sim``: pos-hil's simulated terminal (``python -m hil.sim``), started by the rig as
  a process behind a pty it creates (``hil.terminal_process``).
- ``command``: any terminal implementation started the same way
  (docs/test-port-protocol.md, "Running a terminal implementation").
- ``physical``: a real terminal on the bench; the rig never starts it, it only talks to
  it over the console the rig file names and switches it with the ``[power]`` driver.

A process terminal offers its test port to the console (``console.url = "dut:"``) and
its process to the ``sim`` power driver.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from hil.config import DutConfig, RigPath
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError
from hil.runtime import ProcessLedger
from hil.terminal_process import TerminalProcess


class ProcessDutConfig(DutConfig):
    """A terminal the rig runs as a local process."""

    time_scale: float = Field(
        default=1.0, gt=0, le=10, description="factor on the terminal's inherent delays"
    )
    state_dir: RigPath | None = Field(default=None, description="flash folder; default: per run")


class SimDutConfig(ProcessDutConfig):
    """The built-in simulated terminal."""

    flash_sync: bool = Field(
        default=False,
        description="fsync every flash write (the sim's power cut is a SIGKILL, which the "
        "page cache survives: syncing guards only against a crash of this machine)",
    )


class CommandDutConfig(ProcessDutConfig):
    """Any terminal implementation started as a process."""

    command: list[str] = Field(min_length=1)


class PhysicalDutConfig(DutConfig):
    """A real terminal on the bench."""


@runtime_checkable
class TestPortProvider(Protocol):
    """A dut that created the terminal's test port itself (``console.url = "dut:"``)."""

    @property
    def port_url(self) -> str: ...


@runtime_checkable
class FlashingStation(Protocol):
    """A dut the rig can re-flash: the next power-on installs ``image`` first (put
    back after a scenario that installed another firmware)."""

    def flash(self, image: Path) -> None: ...


class ProcessTerminal:
    """A terminal process the rig started, as a rig instrument."""

    def __init__(self, process: TerminalProcess, *, name: str = "dut") -> None:
        self.name = name
        self.process = process

    @property
    def port_url(self) -> str:
        return self.process.port_path

    def put_back(self) -> None:
        return None  # the terminal's own state is the scenario's business (power puts it back on)

    def flash(self, image: Path) -> None:
        self.process.flash(image)

    def preflight(self) -> str:
        process = self.process
        if not process.alive:
            raise RigError(
                f"terminal process not running (exit {process.exit_code()}): "
                f"{process.stderr_tail(300)}",
                instrument=self.name,
            )
        return f"pid {process.pid}, port {process.port_path}"

    def close(self) -> None:
        self.process.close()


class BenchTerminal:
    """A physical terminal: nothing to start or stop, the rig only talks to it."""

    def __init__(self, model: str, serial_number: str, *, name: str = "dut") -> None:
        self.name = name
        self.model = model
        self.serial_number = serial_number

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        return f"physical {self.model} SN {self.serial_number}, not started by the rig"

    def close(self) -> None:
        return None


def _process_terminal(command: list[str], config: ProcessDutConfig, context: BuildContext) -> Built:
    env = {
        "HIL_FACTORY_SERIAL": config.serial_number,
        "HIL_PROVISION_TID": config.terminal_id,
        "HIL_PROVISION_MID": config.merchant_id,
        "HIL_TIME_SCALE": repr(config.time_scale),
    }
    if isinstance(config, SimDutConfig):
        env["HIL_FLASH_SYNC"] = "1" if config.flash_sync else "0"
    process = TerminalProcess(
        command,
        state_dir=config.state_dir or context.work_dir / "flash",
        env=env,
        # Read when the terminal powers on, so it sees every instrument the rig wired.
        channels=context.channels,
        stderr_path=context.work_dir / "dut-stderr.log",
        # What a later run needs to stop this terminal if the rig dies without teardown.
        ledger=ProcessLedger(context.work_dir),
    )
    if context.firmware is not None:
        process.flash(context.firmware)
    return Built(ProcessTerminal(process))


@register("dut", "sim")
class SimDutDriver(Driver):
    config_model = SimDutConfig

    @classmethod
    def build(cls, config: SimDutConfig, context: BuildContext) -> Built:
        return _process_terminal([sys.executable, "-m", "hil.sim"], config, context)


@register("dut", "command")
class CommandDutDriver(Driver):
    config_model = CommandDutConfig

    @classmethod
    def build(cls, config: CommandDutConfig, context: BuildContext) -> Built:
        return _process_terminal(list(config.command), config, context)


@register("dut", "physical")
class PhysicalDutDriver(Driver):
    config_model = PhysicalDutConfig

    @classmethod
    def build(cls, config: PhysicalDutConfig, context: BuildContext) -> Built:
        return Built(BenchTerminal(config.model, config.serial_number))


def runs_as_process(sections: Mapping[str, DriverConfig]) -> bool:
    """Whether the rig file's terminal is a process the rig starts (sim, command)."""
    return isinstance(sections.get("dut"), ProcessDutConfig)


def time_scale_of(dut: Any) -> float:
    """The dut's time scale: its option for process terminals, 1 for real ones."""
    return float(dut.time_scale) if isinstance(dut, ProcessDutConfig) else 1.0
