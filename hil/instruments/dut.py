"""The device under test: which terminal sits on the rig, and who starts it.

Every ``[dut]`` driver's options start with the identity the terminal must report
(``hil.config.DutConfig``). Drivers:

- ``sim``: pos-hil's simulated terminal (``python -m hil.sim``), started by the rig as
  a process behind a pty it creates (``hil.terminal_process``).
- ``command``: any terminal implementation started the same way
  (docs/test-port-protocol.md, "Running a terminal implementation").
- ``physical``: a real terminal on the bench; the rig never starts it, it only talks to
  it over the console the rig file names and switches it with the ``[power]`` driver.
  Its channels are wired by hand to fixed addresses or pushed over the test port
  (``wiring``, hil/wiring.py); its expected firmware may be stated without a pos-hil
  image (``firmware_version``, ``firmware_sha256``) and a vendor flashing command
  (``flash_command``) installs ``--firmware`` before the session, its exit code and
  output kept for the report.

A process terminal offers its test port to the console (``console.url = "dut:"``) and
its process to the ``sim`` power driver.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, ValidationInfo, field_validator

from hil.config import DutConfig, RigPath
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError
from hil.masking import mask_text
from hil.runtime import ProcessLedger
from hil.terminal_process import TerminalProcess
from hil.wiring import WiringMode, ephemeral_channel_ports

log = logging.getLogger(__name__)


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

    @field_validator("command")
    @classmethod
    def _program_beside_the_rig_file(cls, command: list[str], info: ValidationInfo) -> list[str]:
        """A program named by a relative path (``./my-terminal``, ``bin/term``) is found
        from the rig file's folder, like every path in a rig file; a bare name
        (``python3``) is looked up on PATH."""
        base = (info.context or {}).get("rig_folder")
        program = command[0]
        if base is not None and "/" in program and not os.path.isabs(program):
            return [os.path.normpath(os.path.join(base, program)), *command[1:]]
        return command


class PhysicalDutConfig(DutConfig):
    """A real terminal on the bench."""

    wiring: WiringMode = Field(
        default="fixed",
        description="'fixed': wired by the lab to fixed addresses in this file; "
        "'config': the rig pushes each channel over the test port at session start",
    )
    firmware_version: str | None = Field(
        default=None, min_length=1, description="version the terminal must report"
    )
    firmware_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="SHA-256, lower-case hex"
    )
    flash_command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="vendor flashing command for --firmware; {image} is the image's path",
    )
    flash_timeout_s: float = Field(default=600.0, gt=0, le=3600)


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


@dataclass(frozen=True)
class FlashRecord:
    """What the vendor flashing command did: kept for the report's environment."""

    command: list[str]
    exit_code: int
    output: str
    seconds: float

    def last_line(self) -> str:
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return mask_text(lines[-1])[:200] if lines else "no output"


class BenchTerminal:
    """A physical terminal: nothing to start or stop, the rig only talks to it."""

    def __init__(
        self,
        model: str,
        serial_number: str,
        *,
        wiring: WiringMode = "fixed",
        flashed: FlashRecord | None = None,
        name: str = "dut",
    ) -> None:
        self.name = name
        self.model = model
        self.serial_number = serial_number
        self.wiring = wiring
        self.flashed = flashed

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        flashed = (
            ""
            if self.flashed is None
            else f"; flashed (exit {self.flashed.exit_code}, {self.flashed.seconds:.1f} s)"
        )
        return (
            f"physical {self.model} SN {self.serial_number}, not started by the rig, "
            f"wiring {self.wiring}{flashed}"
        )

    def close(self) -> None:
        return None


def _process_terminal(
    command: list[str],
    config: ProcessDutConfig,
    context: BuildContext,
    *,
    cwd: Path | None = None,
) -> Built:
    env = {
        "HIL_FACTORY_SERIAL": config.serial_number,
        "HIL_PROVISION_TID": config.terminal_id,
        "HIL_PROVISION_MID": config.merchant_id,
        "HIL_TIME_SCALE": repr(config.time_scale),
    }
    if isinstance(config, SimDutConfig):
        env["HIL_FLASH_SYNC"] = "1" if config.flash_sync else "0"
        # What the sim's camera decoded, kept for its next power-on in this rig session:
        # the calibration target is the same frame at every boot (hil.sim.scanner).
        env["HIL_DECODE_MEMO"] = str(context.work_dir / "decode-memo")
    process = TerminalProcess(
        command,
        state_dir=config.state_dir or context.work_dir / "flash",
        env=env,
        # Read when the terminal powers on, so it sees every instrument the rig wired.
        channels=context.channels,
        stderr_path=context.work_dir / "dut-stderr.log",
        # What a later run needs to stop this terminal if the rig dies without teardown.
        ledger=ProcessLedger(context.work_dir),
        cwd=cwd,
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
        # Run in the rig file's folder, so its relative arguments mean what they say there.
        return _process_terminal(list(config.command), config, context, cwd=context.folder)


def run_flash_command(config: PhysicalDutConfig, image: Path, context: BuildContext) -> FlashRecord:
    """Run the vendor flashing command for ``image`` in the rig file's folder; a
    non-zero exit is a rig fault (the terminal was never given the build)."""
    assert config.flash_command is not None
    command = [word.replace("{image}", str(image)) for word in config.flash_command]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=context.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=config.flash_timeout_s,
            check=False,
        )
    except FileNotFoundError:
        raise context.error("flash_command", f"command not found: {command[0]}") from None
    except subprocess.TimeoutExpired:
        raise RigError(
            f"dut: flash command did not finish within {config.flash_timeout_s:g} s: "
            f"{' '.join(command)} (is the terminal in its flashing mode?)",
            instrument="dut",
        ) from None
    except OSError as e:
        raise RigError(
            f"dut: cannot run flash command {command[0]!r}: {e.strerror or e}", instrument="dut"
        ) from None
    record = FlashRecord(command, done.returncode, done.stdout, time.monotonic() - started)
    log.info("flash command exited %d: %s", done.returncode, mask_text(done.stdout[-2000:]))
    if done.returncode != 0:
        raise RigError(
            f"dut: flash command exited {done.returncode}: {record.last_line()} "
            f"(command: {' '.join(command)})",
            instrument="dut",
            last_io=record.last_line(),
        )
    return record


@register("dut", "physical")
class PhysicalDutDriver(Driver):
    config_model = PhysicalDutConfig

    @classmethod
    def check(cls, config: PhysicalDutConfig, sections: Mapping[str, DriverConfig]) -> None:
        if config.wiring == "fixed":
            ephemeral = ephemeral_channel_ports(sections)
            if ephemeral:
                raise ValueError(
                    f"wiring: 'fixed' needs a fixed port in [{ephemeral[0]}] (port = 0 picks "
                    "one the terminal cannot know); set its port, or wiring = 'config'"
                )

    @classmethod
    def build(cls, config: PhysicalDutConfig, context: BuildContext) -> Built:
        flashed = None
        if config.flash_command is not None and context.firmware is not None:
            flashed = run_flash_command(config, context.firmware, context)
        return Built(
            BenchTerminal(config.model, config.serial_number, wiring=config.wiring, flashed=flashed)
        )


def runs_as_process(sections: Mapping[str, DriverConfig]) -> bool:
    """Whether the rig file's terminal is a process the rig starts (sim, command)."""
    return isinstance(sections.get("dut"), ProcessDutConfig)


def time_scale_of(dut: Any) -> float:
    """The dut's time scale: its option for process terminals, 1 for real ones."""
    return float(dut.time_scale) if isinstance(dut, ProcessDutConfig) else 1.0
