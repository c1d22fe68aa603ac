"""Hardware fault lines: relays a lab wires to the terminal's reader supply, main
supply monitor and tamper switch.

``FaultLines.set(line)`` asserts a fault, ``clear(line)`` releases it, ``put_back``
releases all. Lines: ``reader_power`` (card reader supply cut), ``supply_low`` (main
supply below its limit), ``tamper`` (tamper switch open). What each provokes in the
terminal is documented in docs/test-port-protocol.md and hil/contract/selfcheck.py.

Driver ``sim``: the sim terminal's fault-line channel (``faultlines=127.0.0.1:PORT``).
The rig sends the level of every line on each change and at each terminal
(re)connect; ``set``/``clear`` return once the terminal acknowledged the new levels.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, DutError
from hil.jsonlines.rig_end import RigEndServer

FAULT_LINES = ("reader_power", "supply_low", "tamper")


@runtime_checkable
class FaultLines(Protocol):
    name: str

    def set(self, line: str) -> None:
        """Assert the fault on ``line``."""

    def clear(self, line: str) -> None:
        """Release the fault on ``line``."""

    def state(self) -> dict[str, bool]: ...

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class SimFaultLines:
    def __init__(self, *, ack_timeout: float, name: str = "faultlines") -> None:
        self.name = name
        self.ack_timeout = ack_timeout
        self._lock = threading.Lock()
        self._levels = dict.fromkeys(FAULT_LINES, False)
        self._versions = itertools.count(1)
        self._version = 0
        self.server = RigEndServer("faultlines", greeting=self._greeting)

    @property
    def address(self) -> str:
        return self.server.address

    def _message(self) -> dict[str, Any]:
        return {"type": "lines", "version": self._version, "lines": dict(self._levels)}

    def _greeting(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._message()]

    def _apply(self, line: str, level: bool) -> None:
        if line not in FAULT_LINES:
            raise ConfigError(f"unknown fault line '{line}' (known: {', '.join(FAULT_LINES)})")
        with self._lock:
            self._levels[line] = level
            self._version = next(self._versions)
            message = self._message()
        if not self.server.connected:
            return  # a level waits on the wire: the terminal reads it when it comes up
        if self.server.request(message, key="version", timeout=self.ack_timeout) is None:
            raise DutError(
                f"{self.name}: the terminal did not acknowledge fault line {line}="
                f"{'on' if level else 'off'} within {self.ack_timeout} s"
            )

    def set(self, line: str) -> None:
        with reporting.action(f"{self.name}: assert {line}"):
            self._apply(line, True)

    def clear(self, line: str) -> None:
        with reporting.action(f"{self.name}: release {line}"):
            self._apply(line, False)

    def state(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._levels)

    def put_back(self) -> None:
        """Release every asserted line."""
        for line, level in self.state().items():
            if level:
                self._apply(line, False)

    def preflight(self) -> str:
        asserted = [line for line, level in self.state().items() if level] or ["none"]
        state = "terminal connected" if self.server.connected else "terminal not connected"
        return f"fault-line channel {self.server.address}: {state}; asserted: {', '.join(asserted)}"

    def close(self) -> None:
        self.server.close()


class SimFaultLinesConfig(DriverConfig):
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)


@register("faultlines", "sim")
class SimFaultLinesDriver(Driver):
    """Fault lines into the sim terminal's channel (``faultlines``)."""

    config_model = SimFaultLinesConfig

    @classmethod
    def build(cls, config: SimFaultLinesConfig, context: BuildContext) -> Built:
        lines = SimFaultLines(ack_timeout=config.ack_timeout_s)
        return Built(lines, {"faultlines": lines.address})
