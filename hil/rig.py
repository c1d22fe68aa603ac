"""The rig: built from a validated rig file, owns its instruments and their lifetime.

``Rig.start()`` brings the instruments up in dependency order (terminal process and
its port, console, power) and powers the terminal on; ``put_back()`` returns the rig
to a known state after a scenario; ``close()`` tears everything down, each part under
its own guard so one failing teardown never leaves the others running.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.config import CommandDut, Limits, PhysicalDut, RigConfig, SimDut, load_rig
from hil.errors import ConfigError, HilError, RigError
from hil.firmware import image_sha256, load_image
from hil.instruments.base import BUILD_ORDER, BUILDERS, RigInstrument
from hil.instruments.console import Console, PyserialConsole
from hil.instruments.power import Power, SimPower
from hil.terminal import Terminal, port_for
from hil.terminal_process import TerminalProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreflightLine:
    """One instrument's answer to ``hil rig check``."""

    instrument: str
    driver: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ExpectedIdentity:
    """What the terminal must report, from the rig file and the firmware image."""

    model: str
    serial_number: str
    terminal_id: str
    merchant_id: str
    firmware_version: str | None
    firmware_model: str | None
    firmware_sha256: str | None


class Rig:
    """One test rig: a terminal and the instruments wired to it."""

    def __init__(
        self, config: RigConfig, *, firmware: Path | None = None, work_dir: Path | None = None
    ) -> None:
        self.config = config
        self.firmware = firmware if firmware is not None else config.dut.firmware
        if self.firmware is not None and not self.firmware.is_file():
            raise ConfigError(f"--firmware: file not found: {self.firmware}")
        self._image = load_image(self.firmware) if self.firmware is not None else None
        # Hashed once: every scenario's identity check and the report environment use it.
        self._image_sha256 = image_sha256(self.firmware) if self.firmware is not None else None
        self._own_work_dir = work_dir is None
        self.work_dir = work_dir or Path(tempfile.mkdtemp(prefix="hil-rig-"))
        self.process: TerminalProcess | None = None
        self.console: Console | None = None
        self.power: Power | None = None
        self.terminal: Terminal | None = None
        self.broken: str | None = None
        #: optional instruments by rig-file section (cards, host, network, ...)
        self.instruments: dict[str, RigInstrument] = {}
        #: channels wired into the terminal besides the test port: name -> value
        self.wired: dict[str, str] = {}

    @classmethod
    def from_file(
        cls, path: Path | str, *, firmware: Path | None = None, work_dir: Path | None = None
    ) -> Rig:
        return cls(load_rig(path), firmware=firmware, work_dir=work_dir)

    # --- what the rig offers ------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.rig.name

    @property
    def limits(self) -> Limits:
        """Time budgets of this rig (``[limits]``)."""
        return self.config.limits

    @property
    def time_scale(self) -> float:
        """Factor on the terminal's inherent delays (sim and command terminals; else 1)."""
        return float(getattr(self.config.dut, "time_scale", 1.0))

    @property
    def channels(self) -> frozenset[str]:
        """Channels wired to the terminal besides the test port (host, pcsc, camera...).

        A self-check item whose channel is absent must report its documented
        "absent" code, never a pass.
        """
        return frozenset(self.wired)

    @property
    def capabilities(self) -> frozenset[str]:
        """Instrument kinds and channels this rig has, for ``hil_requires`` skips."""
        kinds = {"console", *self.instruments}
        if self.config.power is not None:
            kinds.add("power")
        return frozenset(kinds | self.channels)

    def instrument(self, section: str) -> RigInstrument:
        """The instrument built from rig-file section ``section``; RigError if absent."""
        try:
            return self.instruments[section]
        except KeyError:
            raise RigError(
                f"rig '{self.name}' has no '{section}' instrument (add [{section}] to "
                f"{self.config.source.name})",
                instrument=section,
            ) from None

    def build_instruments(self) -> None:
        """Build every optional instrument of the rig file (before the terminal starts)."""
        import hil.instruments.registry  # noqa: F401  (registers the builders)

        for section in BUILD_ORDER:
            section_config = getattr(self.config, section, None)
            if section_config is None:
                continue
            built = BUILDERS[section](self, section_config)
            self.instruments[section] = built.instrument
            self.wired.update(built.channels)

    def expected_identity(self) -> ExpectedIdentity:
        dut = self.config.dut
        return ExpectedIdentity(
            model=dut.model,
            serial_number=dut.serial_number,
            terminal_id=dut.terminal_id,
            merchant_id=dut.merchant_id,
            firmware_version=None if self._image is None else self._image.version,
            firmware_model=None if self._image is None else self._image.model,
            firmware_sha256=self._image_sha256,
        )

    # --- lifetime -----------------------------------------------------------------

    def spawn_terminal(self) -> TerminalProcess:
        """The terminal process alone, not started (``hil sim``)."""
        dut = self.config.dut
        if not isinstance(dut, SimDut | CommandDut):
            raise ConfigError(
                f"{self.config.source}: dut.driver: 'hil sim' needs 'sim' or 'command'"
            )
        process = self._make_process(dut)
        if self.firmware is not None:
            process.flash(self.firmware)
        return process

    def start(self) -> Terminal:
        """Bring the instruments up and switch the terminal on (not waiting for ready)."""
        dut = self.config.dut
        try:
            self.build_instruments()
            if isinstance(dut, SimDut | CommandDut):
                self.process = self.spawn_terminal()
            url = self.config.console.url
            if url == "dut:":
                if self.process is None:
                    raise ConfigError(
                        f"{self.config.source}: console.url: 'dut:' needs a process dut"
                    )
                url = self.process.port_path
            self.console = PyserialConsole(
                url,
                baudrate=self.config.console.baud,
                ack_timeout=self.config.console.ack_timeout_ms / 1000,
                default_timeout=dut.command_timeout_s,
            )
            if self.config.power is not None and self.process is not None:
                self.power = SimPower(self.process, off_timeout=self.config.power.off_timeout_s)
            self.terminal = Terminal(
                port_for(self.console), self.power, boot_timeout=dut.boot_timeout_s
            )
            if self.power is not None:
                self.power.on()
        except HilError:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise RigError(f"rig '{self.name}' failed to start: {e}") from e
        return self.terminal

    def _make_process(self, dut: SimDut | CommandDut) -> TerminalProcess:
        command = (
            [sys.executable, "-m", "hil.sim"] if isinstance(dut, SimDut) else list(dut.command)
        )
        state_dir = dut.state_dir or self.work_dir / "flash"
        env = {
            "HIL_FACTORY_SERIAL": dut.serial_number,
            "HIL_PROVISION_TID": dut.terminal_id,
            "HIL_PROVISION_MID": dut.merchant_id,
            "HIL_TIME_SCALE": repr(dut.time_scale),
            "HIL_CHANNELS": ",".join(
                f"{name}={value}" if value else name for name, value in sorted(self.wired.items())
            ),
        }
        return TerminalProcess(
            command, state_dir=state_dir, env=env, stderr_path=self.work_dir / "dut-stderr.log"
        )

    def put_back(self) -> None:
        """Return to a known state after a scenario: every instrument put back (cards
        out, screen blank, faults cleared, network healed), terminal powered. Each part
        is tried even if another fails; a failure marks the rig broken for the rest."""
        problems: list[str] = []
        for section, instrument in self.instruments.items():
            try:
                instrument.put_back()
            except Exception as e:  # one instrument must not stop the others
                log.exception("put back %s failed", section)
                problems.append(f"{section}: {e}")
        if self.power is not None and not self.power.is_on:
            try:
                self.power.on()
            except HilError as e:
                problems.append(f"could not power the terminal back on: {e}")
        if problems:
            self.broken = "; ".join(problems)

    def preflight(self) -> list[PreflightLine]:
        """Ask each instrument to answer; one line each. Never raises for a bad answer."""
        lines: list[PreflightLine] = []
        dut = self.config.dut
        if self.process is not None:
            alive = self.process.alive
            exit_code = self.process.exit_code()
            detail = (
                f"pid {self.process.pid}, port {self.process.port_path}"
                if alive
                else f"not running (exit {exit_code}): {self.process.stderr_tail(300)}"
            )
            lines.append(PreflightLine("dut", dut.driver, alive, detail))
        elif isinstance(dut, PhysicalDut):
            detail = "physical terminal, not started by the rig"
            lines.append(PreflightLine("dut", dut.driver, True, detail))
        if self.console is not None:
            driver = self.config.console.driver
            port = self.process.port_path if self.process is not None else self.config.console.url
            started = time.perf_counter()
            try:
                info = port_for(self.console).device_info(timeout=5.0)
            except HilError as e:
                lines.append(PreflightLine("console", driver, False, f"{port}: {e}"))
            else:
                elapsed_ms = (time.perf_counter() - started) * 1000
                detail = (
                    f"{port}: device info in {elapsed_ms:.1f} ms: {info.model} "
                    f"SN {info.serial_number} firmware {info.firmware_version} "
                    f"state {info.state}"
                )
                lines.append(PreflightLine("console", driver, True, detail))
        for section, instrument in self.instruments.items():
            try:
                detail = instrument.preflight()
            except Exception as e:  # preflight reports, it does not stop
                lines.append(
                    PreflightLine(section, _driver_of(self.config, section), False, str(e))
                )
            else:
                lines.append(PreflightLine(section, _driver_of(self.config, section), True, detail))
        if self.config.power is not None:
            ok = self.power is not None and self.power.is_on
            lines.append(
                PreflightLine("power", self.config.power.driver, ok, "on" if ok else "off")
            )
        return lines

    def environment(self) -> dict[str, str]:
        """Facts for the report's environment panel."""
        expected = self.expected_identity()
        env = {
            "rig": self.name,
            "rig_file": str(self.config.source),
            "terminal_model": expected.model,
            "terminal_serial": expected.serial_number,
            "terminal_id": expected.terminal_id,
        }
        if expected.firmware_version is not None:
            env["firmware_version"] = expected.firmware_version
        if expected.firmware_sha256 is not None:
            env["firmware_sha256"] = expected.firmware_sha256
        if self.firmware is not None:
            env["firmware_image"] = self.firmware.name
        for kind, driver in self.config.instruments().items():
            env[f"instrument.{kind}"] = driver
        return env

    def dut_stderr(self) -> str:
        return "" if self.process is None else self.process.stderr_tail()

    def close(self) -> None:
        """Tear down every part; log, never raise, so the rest still goes down."""
        steps: list[tuple[str, Any]] = []
        if self.power is not None and self.power.is_on and self.config.power is not None:
            steps.append(("power off", self.power.off))
        if self.console is not None:
            steps.append(("console close", self.console.close))
        if self.process is not None:
            steps.append(("terminal process", self.process.close))
        for section, instrument in reversed(self.instruments.items()):
            steps.append((section, instrument.close))
        for what, step in steps:
            try:
                step()
            except Exception:  # teardown must go on whatever one part does
                log.exception("rig teardown: %s failed", what)
        self.console = None
        self.power = None
        self.process = None
        self.instruments = {}
        self.wired = {}
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def _driver_of(config: RigConfig, section: str) -> str:
    return str(getattr(getattr(config, section, None), "driver", "?"))


def default_rig_path() -> Path:
    """rigs/sim.toml next to the working directory, else the one shipped with hil."""
    here = Path.cwd() / "rigs" / "sim.toml"
    if here.is_file():
        return here
    from hil.suite import DEFAULT_RIG

    return DEFAULT_RIG
