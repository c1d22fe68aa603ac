"""Hardware fault lines through relays of a Devantech USB-RLY board.

Driver ``devantech-relay`` (``[faultlines]``): each fault line a lab has wired is one
relay channel, mapped in the rig file::

    [faultlines]
    driver = "devantech-relay"
    url = "/dev/ttyACM0"                 # may be the board [power] uses: it is shared
    lines = { reader_power = 2, supply_low = 3, tamper = 4 }

Asserting a line energises its relay (``energised_asserts = false``: releases it, for
a jig wired through the normally closed contact); every switch is read back from the
board (command set in hil/instruments/relayboard.py). Typical wiring: ``reader_power``
opens the card reader's supply, ``supply_low`` switches the terminal's supply to a
bench supply set below its limit (or a series resistor), ``tamper`` opens the tamper
loop. A line the rig file does not map is not wired on this bench: a scenario that
needs it is a rig fault naming the line, never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator

from hil import reporting
from hil.contract.selfcheck import FAULT_LINES
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, RigError
from hil.instruments.relayboard import BOARDS, MODULES, RELAYS, RelayBoard


class RelayFaultLines:
    """Fault lines on relay channels (hil.instruments.faultlines.FaultLines)."""

    def __init__(
        self,
        board: RelayBoard,
        lines: dict[str, int],
        *,
        energised_asserts: bool,
        name: str = "faultlines",
    ) -> None:
        self.name = name
        self.board = board
        self.lines = dict(lines)
        self.energised_asserts = energised_asserts

    def _relay(self, line: str) -> int:
        if line not in FAULT_LINES:
            raise ConfigError(f"unknown fault line '{line}' (known: {', '.join(FAULT_LINES)})")
        relay = self.lines.get(line)
        if relay is None:
            wired = ", ".join(f"{k}={v}" for k, v in self.lines.items()) or "none"
            raise RigError(
                f"{self.name}: fault line '{line}' is not wired on this bench (faultlines.lines "
                f"maps {wired}): wire a relay to it and map it in the rig file",
                instrument=self.name,
            )
        return relay

    def _apply(self, line: str, asserted: bool) -> None:
        self.board.set(self._relay(line), asserted == self.energised_asserts)

    def set(self, line: str) -> None:
        with reporting.action(f"{self.name}: assert {line}", relay=self.lines.get(line)):
            self._apply(line, True)

    def clear(self, line: str) -> None:
        with reporting.action(f"{self.name}: release {line}", relay=self.lines.get(line)):
            self._apply(line, False)

    def state(self) -> dict[str, bool]:
        states = self.board.states()
        levels = dict.fromkeys(FAULT_LINES, False)
        for line, relay in self.lines.items():
            energised = bool(states & (1 << (relay - 1)))
            levels[line] = energised == self.energised_asserts
        return levels

    def put_back(self) -> None:
        for line, asserted in self.state().items():
            if asserted:
                self.clear(line)

    def preflight(self) -> str:
        module, version = self.board.version()
        model = MODULES.get(module, f"module ID {module}")
        asserted = [line for line, level in self.state().items() if level] or ["none"]
        wired = ", ".join(f"{line} on relay {relay}" for line, relay in self.lines.items())
        return f"{model} v{version} on {self.board.url}: {wired}; asserted: {', '.join(asserted)}"

    def close(self) -> None:
        try:
            self.put_back()
        finally:
            BOARDS.release(self.board)


class RelayFaultLinesConfig(DriverConfig):
    url: str = Field(min_length=1, description="pyserial URL of the board, e.g. /dev/ttyACM0")
    lines: dict[str, int] = Field(min_length=1, description="fault line -> relay channel 1-8")
    energised_asserts: bool = Field(
        default=True, description="false when the jigs are wired through the NC contacts"
    )
    timeout_s: float = Field(default=1.0, gt=0, le=10, description="answer timeout")

    @field_validator("lines")
    @classmethod
    def _known_lines_on_distinct_relays(cls, lines: dict[str, int]) -> dict[str, int]:
        for line, relay in lines.items():
            if line not in FAULT_LINES:
                raise ValueError(f"unknown fault line '{line}' (known: {', '.join(FAULT_LINES)})")
            if not 1 <= relay <= RELAYS:
                raise ValueError(f"{line}: relay {relay} is not 1 to {RELAYS}")
        if len(set(lines.values())) != len(lines):
            raise ValueError("two fault lines on one relay")
        return lines


@register("faultlines", "devantech-relay")
class RelayFaultLinesDriver(Driver):
    """Fault lines on relays of a Devantech USB-RLY board (shared with [power])."""

    config_model = RelayFaultLinesConfig
    after = ("power",)

    @classmethod
    def check(cls, config: RelayFaultLinesConfig, sections: Mapping[str, DriverConfig]) -> None:
        power = sections.get("power")
        if getattr(power, "url", None) == config.url and getattr(power, "relay", None) in set(
            config.lines.values()
        ):
            raise ValueError(f"lines: relay {getattr(power, 'relay', 0)} carries [power]'s supply")

    @classmethod
    def build(cls, config: RelayFaultLinesConfig, context: BuildContext) -> Built:
        board = BOARDS.open(config.url, timeout=config.timeout_s)
        lines = RelayFaultLines(board, config.lines, energised_asserts=config.energised_asserts)
        try:
            lines.put_back()  # every line released before the first scenario
        except RigError:
            BOARDS.release(board)
            raise
        return Built(lines)
