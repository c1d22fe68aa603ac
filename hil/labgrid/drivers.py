"""The ``labgrid`` drivers: a rig that is a labgrid place (docs/labgrid.md).

- ``[place] driver = "labgrid"``: ``coordinator`` (host:port of labgrid-coordinator),
  ``name`` (the place). The place is acquired when the rig starts and released when it
  closes, also after a failure or Ctrl-C; a place held by someone else stops the run as
  a rig fault naming the holder. ``acquire = false``: the lab reserves the place itself
  (``labgrid-client acquire``) and the rig only checks that this user holds it.
- ``[console] driver = "labgrid"``: the test port is the place's ``NetworkSerialPort``
  (an exporter's ``RawSerialPort`` or ``USBSerialPort``, served by ser2net over
  RFC 2217), opened by labgrid's own ``SerialDriver``.
- ``[power] driver = "labgrid"``: the supply is the place's ``NetworkPowerPort``,
  switched by labgrid's own ``NetworkPowerDriver`` (any model labgrid ships: ``rest``,
  ``simplerest``, ``gude``, ``netio``...). The state is read back after every switch.

labgrid is imported only when one of these is built (hil.labgrid.place), so a rig
without them never needs the extra.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError
from hil.labgrid.place import LabgridPlace, LabgridPowerSwitch
from hil.protocol.session import ConsoleSession, EventLog
from hil.protocol.transcript import Transcript, withhold_args
from hil.protocol.transport import SerialLike

#: How long a read on the test port waits before the session's reader looks around
#: (shutdown, stalls); labgrid opens the port with none set.
READ_TIMEOUT_S = 0.05


class PlaceInstrument:
    """The rig's hold on its labgrid place."""

    def __init__(self, place: LabgridPlace) -> None:
        self.name = "place"
        self.place = place

    def put_back(self) -> None:
        return None  # held for the whole run

    def preflight(self) -> str:
        holder = self.place.holder()
        if holder != self.place.me:
            raise RigError(
                f"place: {self.place.place} is no longer held by {self.place.me} "
                f"(now: {holder or 'free'})",
                instrument="place",
            )
        resources = ", ".join(f"{r.cls} '{r.name}'" for r in self.place.resources())
        return (
            f"labgrid place {self.place.place} held by {holder} via "
            f"{self.place.coordinator}; resources: {resources or 'none'}"
        )

    def close(self) -> None:
        self.place.close()


class LabgridPlaceConfig(DriverConfig):
    coordinator: str = Field(
        default="127.0.0.1:20408",
        pattern=r"^[^\s:]+:\d+$",
        description="labgrid-coordinator's address, host:port",
    )
    name: str = Field(min_length=1, description="the labgrid place this rig is")
    acquire: bool = Field(
        default=True,
        description="acquire and release the place; false: it must already be held by "
        "this user (labgrid-client acquire)",
    )


@register("place", "labgrid")
class LabgridPlaceDriver(Driver):
    config_model = LabgridPlaceConfig

    @classmethod
    def build(cls, config: LabgridPlaceConfig, context: BuildContext) -> Built:
        place = LabgridPlace(config.coordinator, config.name, acquire=config.acquire)
        try:
            place.reserve()
        except BaseException:
            place.close()
            raise
        return Built(PlaceInstrument(place))


class LabgridConsole:
    """The test port on a labgrid place's NetworkSerialPort (hil.instruments.console)."""

    def __init__(
        self,
        place: LabgridPlace,
        *,
        resource: str | None,
        ack_timeout: float,
        default_timeout: float,
        name: str = "console",
    ) -> None:
        self.name = name
        self.default_timeout = default_timeout
        self.transcript = Transcript()
        self._place = place
        self._driver, self.url = place.serial_console(resource)
        port: SerialLike = self._driver.serial
        port.timeout = READ_TIMEOUT_S
        self._session = ConsoleSession(
            port, name=name, transcript=self.transcript, ack_timeout=ack_timeout
        )
        self._session.start()

    @property
    def events(self) -> EventLog:
        return self._session.events

    def request(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        with reporting.action(f"{self.name}: {cmd}", **withhold_args(cmd, args or {})):
            return self._session.request(
                cmd, args, timeout=self.default_timeout if timeout is None else timeout
            )

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        return f"{self.url} (labgrid place {self._place.place}): open"

    def close(self) -> None:
        try:
            self._session.close()
        finally:
            self._place.deactivate(self._driver)


class LabgridConsoleConfig(DriverConfig):
    resource: str | None = Field(
        default=None,
        min_length=1,
        description="which NetworkSerialPort of the place, when it has several",
    )
    ack_timeout_ms: int = Field(default=500, gt=0)


def _place_of(context: BuildContext) -> LabgridPlace:
    held = context.instrument("place", PlaceInstrument)
    return held.place


@register("console", "labgrid")
class LabgridConsoleDriver(Driver):
    config_model = LabgridConsoleConfig
    needs = ("place",)

    @classmethod
    def check(cls, config: LabgridConsoleConfig, sections: Mapping[str, DriverConfig]) -> None:
        if not isinstance(sections.get("place"), LabgridPlaceConfig):
            raise ValueError("driver: 'labgrid' needs [place] driver = \"labgrid\"")

    @classmethod
    def build(cls, config: LabgridConsoleConfig, context: BuildContext) -> Built:
        console = LabgridConsole(
            _place_of(context),
            resource=config.resource,
            ack_timeout=config.ack_timeout_ms / 1000,
            default_timeout=context.dut.command_timeout_s,
        )
        return Built(console)


class LabgridPower:
    """A terminal supply on a labgrid place's NetworkPowerPort (hil.instruments.power).

    A network power switch opens the supply whichever way it is asked, so a graceful
    off is as hard as a cut here, and the report says so (as for a relay or a PDU).
    """

    def __init__(self, switch: LabgridPowerSwitch, *, settle_s: float, name: str = "power"):
        self.name = name
        self.switch = switch
        self.settle_s = settle_s

    def _supply(self, on: bool) -> None:
        self.switch.set(on)
        state = self.switch.get()
        if state != on:
            raise RigError(
                f"power: {self.switch.where} was switched {'on' if on else 'off'} but "
                f"reads {'on' if state else 'off'}",
                instrument=self.name,
                last_io="on" if on else "off",
            )
        if not on and self.settle_s:
            time.sleep(self.settle_s)  # a cut shorter than the supply's drain is none

    def on(self) -> None:
        with reporting.action(f"{self.name}: on", via=self.switch.where):
            self._supply(True)

    def off(self) -> None:
        with reporting.action(f"{self.name}: off (network switch: as hard as a cut)"):
            self._supply(False)

    def cut(self) -> None:
        with reporting.action(f"{self.name}: cut (hard)"):
            self._supply(False)

    @property
    def is_on(self) -> bool:
        return self.switch.get()

    def put_back(self) -> None:
        if not self.is_on:
            self.on()

    def preflight(self) -> str:
        return f"labgrid NetworkPowerPort {self.switch.where}: {'on' if self.is_on else 'off'}"

    def close(self) -> None:
        if self.is_on:
            self.off()


class LabgridPowerConfig(DriverConfig):
    resource: str | None = Field(
        default=None,
        min_length=1,
        description="which NetworkPowerPort of the place, when it has several",
    )
    settle_s: float = Field(default=0.0, ge=0, le=60, description="wait after switching off")


@register("power", "labgrid")
class LabgridPowerDriver(Driver):
    config_model = LabgridPowerConfig
    needs = ("place",)
    # built after the console, so the terminal's first words after power-on are heard
    after = ("console",)

    @classmethod
    def check(cls, config: LabgridPowerConfig, sections: Mapping[str, DriverConfig]) -> None:
        if not isinstance(sections.get("place"), LabgridPlaceConfig):
            raise ValueError("driver: 'labgrid' needs [place] driver = \"labgrid\"")

    @classmethod
    def build(cls, config: LabgridPowerConfig, context: BuildContext) -> Built:
        switch = _place_of(context).power_switch(config.resource)
        return Built(LabgridPower(switch, settle_s=config.settle_s))
