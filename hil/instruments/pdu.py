"""Power through one outlet of a network PDU, switched over SNMP v2c (pysnmp).

Driver ``snmp-pdu`` (``[power]``), extra ``pos-hil[snmp]``. The terminal's supply is
plugged into one outlet; the rig writes the outlet's control object with SET and reads
its state object back with GET after every switch (a PDU that says "done" but did not
switch is a rig fault, never a terminal that would not boot).

Presets (``model``), from the vendors' published MIBs; ``N`` is the outlet number:

- ``apc-rpdu`` (APC PowerNet-MIB, switched rack PDUs AP79xx/AP86xx): control
  ``rPDUOutletControlOutletCommand`` ``1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.N`` (SET
  INTEGER immediateOn(1), immediateOff(2)); state ``rPDUOutletStatusOutletState``
  ``1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.N`` (outletStatusOn(1), outletStatusOff(2)).
- ``apc-masterswitch`` (APC PowerNet-MIB, MasterSwitch AP92xx): ``sPDUOutletCtl``
  ``1.3.6.1.4.1.318.1.1.4.4.2.1.3.N``, SET outletOn(1) / outletOff(2), and the same
  object read back as the state.
- ``custom``: ``control_oid`` + ``.N`` set to ``on_value``, ``off_value``,
  ``cut_value`` (default ``off_value``); ``state_oid`` + ``.N`` read as ``state_on``
  or ``state_off``.

A Raritan PX2/PX3 (PDU2-MIB) is a ``custom`` PDU: ``control_oid =
"1.3.6.1.4.1.13742.6.4.1.2.1.2.1.1"`` (``switchingOperation``, on(1), off(0)) with the
state read from the outlet's ``onOff`` sensor; check the OIDs against the MIB of the
firmware you run (docs/bench-setup.md).

Graceful off and hard cut: a PDU opens the mains to the outlet either way; no MIB above
offers an off that lets the terminal save its state first (APC's ``delayedOff`` only
waits before the same cut). So ``off`` sends ``off_value`` and ``cut`` sends
``cut_value``, both ``immediateOff`` in the presets: on a PDU a graceful off is as
hard as a cut, and the report says so. A ``custom`` PDU whose MIB has a real soft off
sets ``off_value`` to it.

SNMPv3 is not supported: use a v2c community with write access on a bench network.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutletMib:
    """Where one PDU family keeps an outlet's control and state, and their values."""

    control_oid: str
    state_oid: str
    on_value: int
    off_value: int
    cut_value: int
    state_on: int
    state_off: int


PRESETS: dict[str, OutletMib] = {
    "apc-rpdu": OutletMib(
        control_oid="1.3.6.1.4.1.318.1.1.12.3.3.1.1.4",
        state_oid="1.3.6.1.4.1.318.1.1.12.3.5.1.1.4",
        on_value=1,
        off_value=2,
        cut_value=2,
        state_on=1,
        state_off=2,
    ),
    "apc-masterswitch": OutletMib(
        control_oid="1.3.6.1.4.1.318.1.1.4.4.2.1.3",
        state_oid="1.3.6.1.4.1.318.1.1.4.4.2.1.3",
        on_value=1,
        off_value=2,
        cut_value=2,
        state_on=1,
        state_off=2,
    ),
}


class SnmpClient:
    """SNMP v2c GET and SET of one INTEGER object at a time, synchronous."""

    def __init__(
        self, host: str, port: int, community: str, *, timeout: float, retries: int, name: str
    ) -> None:
        self.host = host
        self.port = port
        self.community = community
        self.timeout = timeout
        self.retries = retries
        self.name = name

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def get(self, oid: str) -> int:
        return asyncio.run(self._request("GET", oid, None))

    def set(self, oid: str, value: int) -> int:
        return asyncio.run(self._request("SET", oid, value))

    async def _request(self, kind: str, oid: str, value: int | None) -> int:
        from pysnmp.hlapi.v3arch.asyncio import (
            CommunityData,
            ContextData,
            Integer,
            ObjectIdentity,
            ObjectType,
            SnmpEngine,
            UdpTransportTarget,
            get_cmd,
            set_cmd,
        )

        engine = SnmpEngine()
        try:
            target = await UdpTransportTarget.create(
                (self.host, self.port), timeout=self.timeout, retries=self.retries
            )
            auth = CommunityData(self.community, mpModel=1)  # v2c
            if value is None:
                bind = ObjectType(ObjectIdentity(oid))
                answer = await get_cmd(engine, auth, target, ContextData(), bind)
            else:
                bind = ObjectType(ObjectIdentity(oid), Integer(value))
                answer = await set_cmd(engine, auth, target, ContextData(), bind)
        except Exception as e:  # pysnmp raises its own errors for a bad address
            raise RigError(
                f"{self.name}: SNMP {kind} {oid} to {self.where} failed: {e}",
                instrument=self.name,
                last_io=f"{kind} {oid}",
            ) from None
        finally:
            engine.close_dispatcher()
        return self._value(kind, oid, answer)

    def _value(self, kind: str, oid: str, answer: Any) -> int:
        error_indication, error_status, _error_index, binds = answer
        if error_indication:
            waited = self.timeout * (self.retries + 1)
            raise RigError(
                f"{self.name}: no SNMP answer from the PDU at {self.where} to {kind} {oid} "
                f"within {waited:g} s ({error_indication}): check its address, that SNMP v2c "
                "is enabled and that the community has write access",
                instrument=self.name,
                last_io=f"{kind} {oid}",
            )
        if int(error_status):
            raise RigError(
                f"{self.name}: the PDU at {self.where} refused {kind} {oid}: "
                f"{error_status.prettyPrint()} (is the outlet number right, and the "
                "community allowed to write?)",
                instrument=self.name,
                last_io=f"{kind} {oid}",
            )
        try:
            return int(binds[0][1])
        except (IndexError, TypeError, ValueError):
            raise RigError(
                f"{self.name}: the PDU at {self.where} answered {kind} {oid} with "
                f"{binds[0][1].prettyPrint() if binds else 'nothing'}, not an integer: "
                "is this OID right for this PDU?",
                instrument=self.name,
                last_io=f"{kind} {oid}",
            ) from None


class PduOutletPower:
    """A terminal supply on one PDU outlet (hil.instruments.power.Power)."""

    def __init__(
        self,
        client: SnmpClient,
        outlet: int,
        mib: OutletMib,
        *,
        switch_timeout: float,
        settle_s: float,
        name: str = "power",
    ) -> None:
        self.name = name
        self.client = client
        self.outlet = outlet
        self.mib = mib
        self.switch_timeout = switch_timeout
        self.settle_s = settle_s

    @property
    def control(self) -> str:
        return f"{self.mib.control_oid}.{self.outlet}"

    @property
    def state(self) -> str:
        return f"{self.mib.state_oid}.{self.outlet}"

    def _switch(self, value: int, on: bool) -> None:
        self.client.set(self.control, value)
        wanted = self.mib.state_on if on else self.mib.state_off
        # A PDU reports the new state once its relay moved: poll, bounded.
        deadline = time.monotonic() + self.switch_timeout
        while True:
            state = self.client.get(self.state)
            if state == wanted:
                break
            if time.monotonic() >= deadline:
                raise RigError(
                    f"{self.name}: PDU outlet {self.outlet} at {self.client.where} still reads "
                    f"state {state} (wanted {wanted}) {self.switch_timeout:g} s after the switch",
                    instrument=self.name,
                )
            time.sleep(0.1)
        if not on and self.settle_s:
            time.sleep(self.settle_s)  # let the terminal's supply drain

    def on(self) -> None:
        with reporting.action(f"{self.name}: on", outlet=self.outlet):
            self._switch(self.mib.on_value, True)

    def off(self) -> None:
        hard = self.mib.off_value == self.mib.cut_value
        what = "off (PDU: as hard as a cut)" if hard else "off (graceful)"
        with reporting.action(f"{self.name}: {what}", outlet=self.outlet):
            self._switch(self.mib.off_value, False)

    def cut(self) -> None:
        with reporting.action(f"{self.name}: cut (hard)", outlet=self.outlet):
            self._switch(self.mib.cut_value, False)

    @property
    def is_on(self) -> bool:
        state = self.client.get(self.state)
        if state not in (self.mib.state_on, self.mib.state_off):
            raise RigError(
                f"{self.name}: PDU outlet {self.outlet} reads state {state}, neither on "
                f"({self.mib.state_on}) nor off ({self.mib.state_off})",
                instrument=self.name,
            )
        return state == self.mib.state_on

    def put_back(self) -> None:
        if not self.is_on:
            self.on()

    def preflight(self) -> str:
        state = "on" if self.is_on else "off"
        return f"SNMP PDU {self.client.where}, outlet {self.outlet}: supply {state}"

    def close(self) -> None:
        try:
            if self.is_on:
                self.off()
        except RigError as e:  # never raise: the rest of the rig still goes down
            log.warning("%s: could not switch the outlet off at the end: %s", self.name, e)


class SnmpPduConfig(DriverConfig):
    host: str = Field(min_length=1, description="the PDU's address")
    port: int = Field(default=161, ge=1, le=65535)
    community: str = Field(default="private", min_length=1, description="v2c write community")
    outlet: int = Field(ge=1, le=255, description="the outlet the terminal is plugged into")
    model: Literal["apc-rpdu", "apc-masterswitch", "custom"] = "apc-rpdu"
    control_oid: str | None = Field(default=None, pattern=r"^\d+(\.\d+)+$")
    state_oid: str | None = Field(default=None, pattern=r"^\d+(\.\d+)+$")
    on_value: int | None = None
    off_value: int | None = None
    cut_value: int | None = None
    state_on: int | None = None
    state_off: int | None = None
    timeout_s: float = Field(default=1.0, gt=0, le=30, description="per SNMP request")
    retries: int = Field(default=1, ge=0, le=5)
    switch_timeout_s: float = Field(default=5.0, gt=0, le=60)
    settle_s: float = Field(default=1.0, ge=0, le=30)

    @model_validator(mode="after")
    def _custom_needs_its_objects(self) -> SnmpPduConfig:
        custom = ("control_oid", "state_oid", "on_value", "off_value", "state_on", "state_off")
        if self.model == "custom":
            missing = [name for name in custom if getattr(self, name) is None]
            if missing:
                raise ValueError(f"model 'custom' needs {', '.join(missing)}")
        else:
            given = [name for name in (*custom, "cut_value") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{given[0]}: only for model 'custom' ({self.model} is a preset)")
        return self

    def mib(self) -> OutletMib:
        if self.model != "custom":
            return PRESETS[self.model]
        assert self.control_oid and self.state_oid  # checked above
        assert self.on_value is not None and self.off_value is not None
        assert self.state_on is not None and self.state_off is not None
        return OutletMib(
            control_oid=self.control_oid,
            state_oid=self.state_oid,
            on_value=self.on_value,
            off_value=self.off_value,
            cut_value=self.off_value if self.cut_value is None else self.cut_value,
            state_on=self.state_on,
            state_off=self.state_off,
        )


@register("power", "snmp-pdu")
class SnmpPduDriver(Driver):
    """The terminal's supply on one outlet of a network PDU, over SNMP v2c."""

    config_model = SnmpPduConfig

    @classmethod
    def build(cls, config: SnmpPduConfig, context: BuildContext) -> Built:
        try:
            import pysnmp  # noqa: F401
        except ImportError:
            raise context.error(
                "driver", "'snmp-pdu' needs pysnmp: pip install 'pos-hil[snmp]'"
            ) from None
        client = SnmpClient(
            config.host,
            config.port,
            config.community,
            timeout=config.timeout_s,
            retries=config.retries,
            name="power",
        )
        power = PduOutletPower(
            client,
            config.outlet,
            config.mib(),
            switch_timeout=config.switch_timeout_s,
            settle_s=config.settle_s,
        )
        return Built(power)
