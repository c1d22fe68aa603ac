"""Hardware fault lines: relays and jigs a lab wires to the terminal to provoke faults.

``FaultLines.set(line)`` asserts a fault, ``clear(line)`` releases it, ``put_back``
releases all. Lines (``FAULT_LINES``): ``reader_power`` (card reader supply cut),
``supply_low`` (main supply below its limit), ``tamper`` (tamper switch open),
``battery_low`` (battery gauge low), ``flash_corrupt`` (flash reads come back with a bit
flipped), ``flash_full`` (flash partition filled), ``ram_pressure`` (memory filled),
``cpu_load`` (a load generator on the terminal's CPU), ``system_load`` (the load
monitor reads an overloaded system), ``log_io`` (log partition I/O errors), ``log_full``
(log partition full), ``secure_element`` (the secure element does not answer), and the
edge-triggered ``app_crash``, ``app_hang`` (each rising edge fails the terminal's payment
application once: assert, then release). What
each provokes in the terminal is documented in docs/test-port-protocol.md ("Channel
faultlines") and restated for the rig in hil/contract/selfcheck.py.

A rig whose fault-line harness can be unplugged also offers ``FaultLineHarness``: with
the harness out the terminal's fault-line inputs read nothing, which its power and
tamper items must report as unverified, never as a pass.

Driver ``sim``: the sim terminal's fault-line channel (``faultlines=127.0.0.1:PORT``).
The rig sends the level of every line on each change and at each terminal
(re)connect; ``set``/``clear`` return once the terminal acknowledged the new levels.
The harness is a switchable TCP path (``hil.faultproxy``) between the terminal and the
rig's channel end: unplugged, it resets the terminal's connection and refuses new ones.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.contract.selfcheck import FAULT_LINES
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, DutError, RigError
from hil.faultproxy import Fault, FaultProxy
from hil.jsonlines.rig_end import RigEndServer

#: A terminal retries its fault-line channel every second (docs); plugging the harness
#: back waits this much longer than that for it to reconnect.
RECONNECT_GRACE_S = 3.0


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


@runtime_checkable
class FaultLineHarness(Protocol):
    """The cable between the rig's fault-line relays and the terminal's inputs."""

    @property
    def plugged(self) -> bool: ...

    def unplug(self) -> None:
        """Pull the harness: the terminal's fault-line inputs read nothing from now on."""

    def plug(self) -> None:
        """Plug it back; returns once the terminal reads the lines again."""


class SimFaultLines:
    def __init__(self, *, ack_timeout: float, port: int = 0, name: str = "faultlines") -> None:
        self.name = name
        self.ack_timeout = ack_timeout
        self._lock = threading.Lock()
        self._levels = dict.fromkeys(FAULT_LINES, False)
        self._versions = itertools.count(1)
        self._version = 0
        self._plugged = True
        self.server = RigEndServer("faultlines", greeting=self._greeting)
        host, _, upstream_port = self.server.address.rpartition(":")
        # The terminal dials the harness, so a fixed port is the harness's.
        self.harness = FaultProxy(
            (host, int(upstream_port)), listen=("127.0.0.1", port), name=f"{name}-harness"
        )
        try:
            self._harness_address = self.harness.start()
        except RigError:
            self.server.close()
            raise

    @property
    def address(self) -> str:
        """Where the terminal connects: the harness in front of the rig's channel end."""
        host, port = self._harness_address
        return f"{host}:{port}"

    def _message(self) -> dict[str, Any]:
        return {"type": "lines", "version": self._version, "lines": dict(self._levels)}

    def _greeting(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._message()]

    def _send_state(self, what: str) -> None:
        """Send every level under a new version; wait for the terminal's ack."""
        with self._lock:
            self._version = next(self._versions)
            message = self._message()
        if not self.server.connected:
            return  # a level waits on the wire: the terminal reads it when it comes up
        if self.server.request(message, key="version", timeout=self.ack_timeout) is None:
            raise DutError(
                f"{self.name}: the terminal did not acknowledge {what} within {self.ack_timeout} s"
            )

    def _apply(self, line: str, level: bool) -> None:
        if line not in FAULT_LINES:
            raise ConfigError(f"unknown fault line '{line}' (known: {', '.join(FAULT_LINES)})")
        with self._lock:
            self._levels[line] = level
        self._send_state(f"fault line {line}={'on' if level else 'off'}")

    def set(self, line: str) -> None:
        with reporting.action(f"{self.name}: assert {line}"):
            self._apply(line, True)

    def clear(self, line: str) -> None:
        with reporting.action(f"{self.name}: release {line}"):
            self._apply(line, False)

    def state(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._levels)

    # --- the harness --------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self._plugged

    def unplug(self) -> None:
        with reporting.action(f"{self.name}: unplug the fault-line harness"):
            self._plugged = False
            self.harness.add(Fault("refuse"))
            # The next byte either way resets the connection the terminal holds.
            self.harness.add(Fault("reset", "both", {"after_bytes": 0}))
            self.server.send(self._greeting()[0])
            deadline = time.monotonic() + self.ack_timeout
            while self.server.connected and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.server.connected:
                raise RigError(
                    f"{self.name}: the harness did not cut the terminal's connection",
                    instrument=self.name,
                )

    def plug(self) -> None:
        with reporting.action(f"{self.name}: plug the fault-line harness back"):
            self.harness.clear()
            self._plugged = True
            if not self.server.wait_connected(self.ack_timeout + RECONNECT_GRACE_S):
                raise DutError(
                    f"{self.name}: the terminal did not reconnect its fault-line inputs within "
                    f"{self.ack_timeout + RECONNECT_GRACE_S:g} s of the harness going back in"
                )
            self._send_state("the fault-line state after the harness went back in")

    # --- rig instrument -----------------------------------------------------------

    def put_back(self) -> None:
        """Harness in, every asserted line released."""
        if not self._plugged:
            self.plug()
        if any(self.state().values()):
            with self._lock:
                self._levels = dict.fromkeys(FAULT_LINES, False)
            self._send_state("every fault line released")

    def preflight(self) -> str:
        asserted = [line for line, level in self.state().items() if level] or ["none"]
        state = "terminal connected" if self.server.connected else "terminal not connected"
        harness = "" if self._plugged else ", harness unplugged"
        return (
            f"fault-line channel {self.address}: {state}{harness}; asserted: {', '.join(asserted)}"
        )

    def close(self) -> None:
        self.harness.stop()
        self.server.close()


class SimFaultLinesConfig(DriverConfig):
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)
    port: int = Field(default=0, ge=0, le=65535, description="loopback port; 0 = ephemeral")


@register("faultlines", "sim")
class SimFaultLinesDriver(Driver):
    """Fault lines into the sim terminal's channel (``faultlines``)."""

    config_model = SimFaultLinesConfig

    @classmethod
    def build(cls, config: SimFaultLinesConfig, context: BuildContext) -> Built:
        lines = SimFaultLines(ack_timeout=config.ack_timeout_s, port=config.port)
        return Built(lines, {"faultlines": lines.address})
