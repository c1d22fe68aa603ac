"""The rig: built from a validated rig file, owns its instruments and their lifetime.

Every section of the rig file (dut, console, power and the instruments in front of
the terminal) is built by its registered driver (hil.drivers), in the order their
declared needs give. ``Rig.start()`` builds them and powers the terminal on;
``put_back()`` returns the rig to a known state after a scenario; ``close()`` tears
everything down. Both walk the sections in reverse build order, each part under its
own guard, so one failing part never leaves the others running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from hil.config import Limits, RigConfig, load_rig
from hil.drivers import REGISTRY, BuildContext, DriverRegistry, RigInstrument, display_path
from hil.errors import ConfigError, HilError, RigError
from hil.firmware import image_named, image_sha256
from hil.instruments.console import Console
from hil.instruments.dut import (
    BenchTerminal,
    FlashRecord,
    PhysicalDutConfig,
    ProcessTerminal,
    time_scale_of,
)
from hil.instruments.power import Power
from hil.lifecycle import interruptions_held
from hil.masking import mask_text
from hil.riglock import TerminalLock
from hil.runtime import WorkFolder
from hil.terminal import Terminal, port_for
from hil.terminal_process import TerminalProcess
from hil.wiring import config_for_channels

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
        self,
        config: RigConfig,
        *,
        firmware: Path | None = None,
        work_dir: Path | None = None,
        registry: DriverRegistry = REGISTRY,
    ) -> None:
        self.config = config
        self.registry = registry
        chosen = chosen_firmware(config, firmware)
        self.firmware = None if chosen is None else chosen[0]
        # A terminal flashed by its vendor's command takes the vendor's image format:
        # pos-hil never parses it; the version it must report comes from the rig file.
        vendor_image = isinstance(config.dut, PhysicalDutConfig) and bool(config.dut.flash_command)
        if chosen is not None and vendor_image and not chosen[0].is_file():
            raise ConfigError(f"{chosen[1]}: file not found: {chosen[0]}")
        self._image = None if chosen is None or vendor_image else image_named(*chosen)
        # Hashed once: every scenario's identity check and the report environment use it.
        self._image_sha256 = image_sha256(self.firmware) if self.firmware is not None else None
        # Our own folder under the private runtime folder (hil.runtime), unless the caller
        # gave one; making it first removes what dead runs left behind.
        self._work_folder: WorkFolder | None = None
        if work_dir is None:
            self._work_folder = WorkFolder.create()
            work_dir = self._work_folder.path
        self.work_dir = work_dir
        self.terminal: Terminal | None = None
        self.broken: str | None = None
        #: every built section (dut, console, power, instruments), in build order
        self.instruments: dict[str, RigInstrument] = {}
        #: channels wired into the terminal besides the test port: name -> value
        self.wired: dict[str, str] = {}
        #: what the vendor flashing command did this run (dut ``flash_command``)
        self.flashed: FlashRecord | None = None
        #: a bench terminal's lock while this rig drives it (hil.riglock)
        self._terminal_lock: TerminalLock | None = None

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
        return time_scale_of(self.config.dut)

    @property
    def channels(self) -> frozenset[str]:
        """Channels wired to the terminal besides the test port (host, pcsc, camera...).

        A self-check item whose channel is absent must report its documented
        "absent" code, never a pass.
        """
        return frozenset(self.wired)

    @property
    def capabilities(self) -> frozenset[str]:
        """Sections and channels this rig has, for ``hil_requires`` skips."""
        return frozenset(self.config.sections) | self.channels

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

    @property
    def console(self) -> Console | None:
        console = self.instruments.get("console")
        return console if isinstance(console, Console) else None

    @property
    def power(self) -> Power | None:
        power = self.instruments.get("power")
        return power if isinstance(power, Power) else None

    @property
    def process(self) -> TerminalProcess | None:
        """The terminal's process when the rig runs it (dut ``sim`` or ``command``)."""
        dut = self.instruments.get("dut")
        return dut.process if isinstance(dut, ProcessTerminal) else None

    def expected_identity(self) -> ExpectedIdentity:
        dut = self.config.dut
        # Stated in the rig file for a terminal without a pos-hil image; an image the
        # run flashes (or names) wins, as it is what the terminal was given.
        stated_version = getattr(dut, "firmware_version", None)
        stated_sha256 = getattr(dut, "firmware_sha256", None)
        return ExpectedIdentity(
            model=dut.model,
            serial_number=dut.serial_number,
            terminal_id=dut.terminal_id,
            merchant_id=dut.merchant_id,
            firmware_version=stated_version if self._image is None else self._image.version,
            firmware_model=None if self._image is None else self._image.model,
            firmware_sha256=self._image_sha256 or stated_sha256,
        )

    # --- lifetime -----------------------------------------------------------------

    def build(self, sections: Collection[str] | None = None) -> None:
        """Build the rig file's sections in plan order: all of them, or only
        ``sections`` (leaving out any that needs a section not built)."""
        wanted = set(self.config.build_order if sections is None else sections)
        for section in self.config.build_order:
            config = self.config.sections[section]
            registration = self.registry.driver_of(config)
            needed = registration.driver.requires(config)
            if section not in wanted or section in self.instruments:
                continue
            if any(need not in self.instruments for need in needed):
                continue
            context = BuildContext(
                rig_name=self.name,
                source=self.config.source,
                section=section,
                dut=self.config.dut,
                work_dir=self.work_dir,
                firmware=self.firmware,
                built=self.instruments,
                channels=self.wired,
            )
            built = registration.driver.build(config, context)
            if not isinstance(built.instrument, RigInstrument):
                raise ConfigError(
                    f"{display_path(self.config.source)}: {section}.driver: "
                    f"'{config.driver}' built a {type(built.instrument).__name__}, which "
                    "lacks name, put_back, preflight or close"
                )
            self.instruments[section] = built.instrument
            self.wired.update(built.channels)
            if isinstance(built.instrument, BenchTerminal) and built.instrument.flashed:
                # kept past teardown: the report's environment is written last
                self.flashed = built.instrument.flashed

    def start(self) -> Terminal:
        """Build every section and switch the terminal on (not waiting for ready)."""
        try:
            self._lock_terminal()
            self.build()
            console = self.instruments["console"]
            try:
                # pos-hil's test-port console, or a console driver's own TerminalPort
                port = port_for(console)
            except TypeError:
                raise ConfigError(
                    f"{display_path(self.config.source)}: console.driver: "
                    f"'{self.config.sections['console'].driver}' built a "
                    f"{type(console).__name__}: neither a test-port Console nor a TerminalPort"
                ) from None
            self.terminal = Terminal(port, self.power, boot_timeout=self.config.dut.boot_timeout_s)
            dut = self.instruments.get("dut")
            if isinstance(dut, BenchTerminal) and dut.wiring == "config":
                # Pushed once the terminal is up (Terminal.apply_wiring), before any
                # scenario looks at it.
                self.terminal.wiring = config_for_channels(self.wired)
            if self.process is not None:
                # A terminal that dies is then reported as what it is, not as the
                # symptom (an event that never came, a command never answered).
                self.terminal.watch_process(self.process.exit_code, self.process.stderr_tail)
            if self.power is not None:
                self.power.on()
        except HilError:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise RigError(f"rig '{self.name}' failed to start: {e}") from e
        return self.terminal

    def _lock_terminal(self) -> None:
        """A bench terminal is driven by one run at a time: its lock before anything is
        built or switched (a RigError naming the holder when it is taken)."""
        dut = self.config.dut
        if isinstance(dut, PhysicalDutConfig) and self._terminal_lock is None:
            self._terminal_lock = TerminalLock.acquire(
                dut.model,
                dut.serial_number,
                rig_name=self.name,
                rig_file=display_path(self.config.source),
                wait_s=self.config.rig.lock_wait_s,
            )

    def build_for_check(self) -> list[PreflightLine]:
        """Build every section for ``hil rig check``, going on past a section whose
        hardware does not answer: one failed line per such section (and per section
        that needed it), so a lab sees every missing device at once. A rig-file
        mistake (ConfigError) still stops at once; so does a bench terminal another run
        drives (its instruments are not touched)."""
        self._lock_terminal()
        failed: list[PreflightLine] = []
        broken: set[str] = set()
        for section in self.config.build_order:
            config = self.config.sections[section]
            needed = self.registry.driver_of(config).driver.requires(config)
            missing = [need for need in needed if need in broken]
            if missing:
                broken.add(section)
                failed.append(
                    PreflightLine(section, config.driver, False, f"not built: needs [{missing[0]}]")
                )
                continue
            try:
                self.build([section])
            except ConfigError:
                raise
            except (HilError, OSError) as e:
                broken.add(section)
                failed.append(PreflightLine(section, config.driver, False, str(e)))
        return failed

    def put_back(self) -> None:
        """Return to a known state after a scenario: every instrument put back (cards
        out, screen blank, faults cleared, network healed), then the terminal powered.
        Each part is tried even if another fails; a failure marks the rig broken."""
        problems: list[str] = []
        for section, instrument in reversed(self.instruments.items()):
            try:
                instrument.put_back()
            except Exception as e:  # one instrument must not stop the others
                log.exception("put back %s failed", section)
                problems.append(f"{section}: {e}")
        if problems:
            self.broken = "; ".join(problems)

    def preflight(self) -> list[PreflightLine]:
        """Ask each instrument to answer, then the terminal; one line each. Never raises
        for a bad answer."""
        lines: list[PreflightLine] = []
        for section, instrument in self.instruments.items():
            driver = self.config.sections[section].driver
            try:
                detail = instrument.preflight()
            except Exception as e:  # preflight reports, it does not stop
                lines.append(PreflightLine(section, driver, False, str(e)))
            else:
                lines.append(PreflightLine(section, driver, True, detail))
        if self.terminal is not None:
            lines.append(self._terminal_answer())
        return lines

    def _terminal_answer(self) -> PreflightLine:
        assert self.terminal is not None
        driver = self.config.sections["console"].driver
        started = time.perf_counter()
        try:
            info = self.terminal.port.device_info(timeout=5.0)
        except HilError as e:
            return PreflightLine("terminal", driver, False, str(e))
        elapsed_ms = (time.perf_counter() - started) * 1000
        detail = (
            f"device info in {elapsed_ms:.1f} ms: {info.model} SN {info.serial_number} "
            f"firmware {info.firmware_version} state {info.state}"
        )
        return PreflightLine("terminal", driver, True, detail)

    def environment(self) -> dict[str, str]:
        """Facts for the report's environment panel."""
        expected = self.expected_identity()
        env = {
            "rig": self.name,
            "rig_file": str(self.config.source),
            "terminal_model": expected.model,
            "terminal_serial": expected.serial_number,
            "terminal_id": expected.terminal_id,
            "merchant_id": expected.merchant_id,
        }
        if expected.firmware_version is not None:
            env["firmware_version"] = expected.firmware_version
        if expected.firmware_sha256 is not None:
            env["firmware_sha256"] = expected.firmware_sha256
        if self.firmware is not None:
            env["firmware_image"] = self.firmware.name
        if self.flashed is not None:
            env["firmware_flash_command"] = " ".join(self.flashed.command)
            env["firmware_flash_exit"] = str(self.flashed.exit_code)
            env["firmware_flash_output"] = mask_text(self.flashed.output[-400:].strip())
        for kind, driver in self.config.instruments().items():
            env[f"instrument.{kind}"] = driver
        return env

    def dut_stderr(self) -> str:
        process = self.process
        return "" if process is None else process.stderr_tail()

    def close(self) -> None:
        """Tear down every part in reverse build order; log, never raise, so the rest
        still goes down. A Ctrl-C or SIGTERM arriving meanwhile is held until the end:
        half a teardown would leave the terminal running."""
        with interruptions_held():
            for section, instrument in reversed(self.instruments.items()):
                try:
                    instrument.close()
                except HilError as e:  # an instrument that does not answer: one line
                    log.warning("rig teardown: %s: %s", section, e)
                except Exception:  # teardown must go on whatever one part does
                    log.exception("rig teardown: %s failed", section)
            self.instruments = {}
            self.wired = {}
            self.terminal = None
            if self._terminal_lock is not None:
                self._terminal_lock.release()  # last: the terminal is off by now
                self._terminal_lock = None
            if self._work_folder is not None:
                self._work_folder.remove()


def chosen_firmware(config: RigConfig, override: Path | None) -> tuple[Path, str] | None:
    """The image this run uses and where it was named: ``--firmware`` over the rig
    file's ``dut.firmware``; None when neither names one."""
    if override is not None:
        return override, "--firmware"
    if config.dut.firmware is not None:
        return config.dut.firmware, f"{display_path(config.source)}: dut.firmware"
    return None


def default_rig_path() -> Path:
    """rigs/sim.toml next to the working directory, else the one shipped with hil."""
    here = Path.cwd() / "rigs" / "sim.toml"
    if here.is_file():
        return here
    from hil.suite import DEFAULT_RIG

    return DEFAULT_RIG
