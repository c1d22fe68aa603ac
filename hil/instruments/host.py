"""The acquirer host as a rig instrument.

``AcquirerHost`` is what steps see: script how the host answers, bind TIDs to devices,
change the parameter set it downloads, and read back every message it saw (masked).
The ``sim`` driver starts hil's ISO 8583 host simulator (``hil.host``) on loopback and
wires its address into the terminal as channel ``host=ADDRESS:PORT`` (a ``[network]``
section, built after this one, re-wires the channel through its fault path).
``put_back`` attaches the scenario's message log and returns the host to the rig
file's state: normal answers, registry and parameters as configured.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import Field, field_validator

from hil import reporting
from hil.config import RigFile, check_tid
from hil.drivers import BuildContext, Built, Driver, DriverConfig, StrictOptions, register
from hil.errors import ConfigError
from hil.host import (
    Behaviour,
    HostSimulator,
    MessageRecord,
    ParameterSet,
    TerminalRegistry,
    load_key_set,
    load_parameter_set,
)
from hil.host.simulator import Sale
from hil.suite import FIXTURES

DEFAULT_PARAMETERS = FIXTURES / "host" / "params-v1.json"


@runtime_checkable
class AcquirerHost(Protocol):
    """The host the terminal talks to, as steps see it."""

    name: str

    @property
    def address(self) -> tuple[str, int]: ...

    def behave(
        self, transaction: str, behaviour: Behaviour, *, skip: int = 0, times: int | None = None
    ) -> None:
        """Answer ``transaction`` (or "any") this way from now on."""

    def bind_terminal(self, terminal_id: str, serial_number: str) -> None:
        """Register ``terminal_id`` as belonging to the device ``serial_number``."""

    def use_parameters(self, parameters: ParameterSet) -> None:
        """Download this parameter set from now on."""

    def parameter_set(self, name: str) -> ParameterSet:
        """A parameter set by file name, from the folder of the rig file's parameters."""

    @property
    def parameters(self) -> ParameterSet: ...

    def records(self) -> list[MessageRecord]: ...

    def wait_for(
        self, predicate: Callable[[list[MessageRecord]], bool], timeout: float
    ) -> list[MessageRecord]: ...

    def journal(self) -> list[Sale]: ...

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class SimHost:
    """hil's host simulator as an instrument."""

    def __init__(
        self, simulator: HostSimulator, *, parameters_folder: Path, name: str = "host"
    ) -> None:
        self.name = name
        self.simulator = simulator
        self.parameters_folder = parameters_folder

    @property
    def address(self) -> tuple[str, int]:
        return self.simulator.address

    def behave(
        self, transaction: str, behaviour: Behaviour, *, skip: int = 0, times: int | None = None
    ) -> None:
        with reporting.action(
            f"{self.name}: {transaction} -> {behaviour.describe()}", skip=skip, times=times
        ):
            self.simulator.behave(transaction, behaviour, skip=skip, times=times)

    def bind_terminal(self, terminal_id: str, serial_number: str) -> None:
        with reporting.action(f"{self.name}: bind TID {terminal_id} to {serial_number}"):
            self.simulator.registry.bind(terminal_id, serial_number)

    def use_parameters(self, parameters: ParameterSet) -> None:
        with reporting.action(
            f"{self.name}: parameters {parameters.version}", digest=parameters.digest
        ):
            self.simulator.set_parameters(parameters)

    def parameter_set(self, name: str) -> ParameterSet:
        return load_parameter_set(self.parameters_folder / name)

    @property
    def parameters(self) -> ParameterSet:
        return self.simulator.parameters

    def records(self) -> list[MessageRecord]:
        return self.simulator.records()

    def wait_for(
        self, predicate: Callable[[list[MessageRecord]], bool], timeout: float
    ) -> list[MessageRecord]:
        return self.simulator.wait_for(predicate, timeout)

    def journal(self) -> list[Sale]:
        return self.simulator.journal()

    def put_back(self) -> None:
        records = self.simulator.records()
        if records:
            reporting.attach_json("ISO 8583 message log (masked)", [r.as_dict() for r in records])
        self.simulator.clear_records()
        self.simulator.reset()

    def preflight(self) -> str:
        host, port = self.simulator.address
        params = self.simulator.parameters
        bindings = len(self.simulator.registry.bindings())
        return (
            f"ISO 8583 host simulator on {host}:{port}, parameters {params.version} "
            f"({params.digest[:12]}), {bindings} terminal binding(s)"
        )

    def close(self) -> None:
        self.simulator.stop()


class TerminalBinding(StrictOptions):
    """One TID the host knows, bound to the serial number of the device that owns it."""

    terminal_id: str
    serial_number: str = Field(min_length=1)

    _tid = field_validator("terminal_id")(check_tid)


class SimHostConfig(DriverConfig):
    address: str = Field(default="127.0.0.1", description="listen address (loopback)")
    port: int = Field(default=0, ge=0, le=65535, description="0 = ephemeral")
    parameters: RigFile = Field(
        default=DEFAULT_PARAMETERS, description="parameter set the host downloads"
    )
    keys: RigFile | None = Field(default=None, description="key set; default the test keys")
    enrol_unknown: bool = Field(default=True, description="bind an unknown TID on sign-on")
    terminals: list[TerminalBinding] = Field(default_factory=list)


@register("host", "sim")
class SimHostDriver(Driver):
    """hil's ISO 8583 host simulator on loopback; wires channel ``host=ADDRESS:PORT``."""

    config_model = SimHostConfig

    @classmethod
    def build(cls, config: SimHostConfig, context: BuildContext) -> Built:
        try:
            parameters = load_parameter_set(config.parameters)
        except ConfigError as e:
            raise context.error("parameters", str(e)) from None
        try:
            keys = load_key_set(config.keys) if config.keys is not None else None
        except ConfigError as e:
            raise context.error("keys", str(e)) from None
        registry = TerminalRegistry(
            {t.terminal_id: t.serial_number for t in config.terminals},
            enrol_unknown=config.enrol_unknown,
        )
        simulator = HostSimulator(
            parameters, keys=keys, registry=registry, address=config.address, port=config.port
        )
        host, port = simulator.start()
        instrument = SimHost(simulator, parameters_folder=config.parameters.parent)
        return Built(instrument, {"host": f"{host}:{port}"})
