"""The driver seam: every rig-file section is built by a driver registered under
``(section, name)``, from pos-hil itself or from a lab's own package.

A driver is a class that owns its options (a pydantic model, ``config_model``) and
builds one instrument from them::

    from hil.drivers import BuildContext, Built, Driver, DriverConfig, register

    class RelayPowerConfig(DriverConfig):
        port: str
        channel: int = 1

    @register("power", "relay")
    class RelayPowerDriver(Driver):
        config_model = RelayPowerConfig

        @classmethod
        def build(cls, config: RelayPowerConfig, context: BuildContext) -> Built:
            return Built(RelayPower(config.port, config.channel))

The rig file then says ``[power] driver = "relay"`` and the options beside it. A
section's options are the union of its registered drivers, told apart by ``driver``;
the registry adds that field to each model, so the author never repeats the name.

Drivers reach the registry three ways: pos-hil's own (imported by
``DriverRegistry.load_builtin``), installed packages that declare an entry point in
the group ``pos_hil.drivers`` (loaded once per process), and modules a rig file lists
in ``[rig] plugins``. A plug-in that fails to import, or registers a name that is
taken, is a ``ConfigError`` that names the plug-in (exit 2).

Build order comes from declarations, never from which module loaded first: each
driver lists the sections it ``needs`` (built before it, and required to exist) and
those it comes ``after`` when they are present. ``plan`` turns that into an order; a
missing dependency or a cycle is a rig-file error.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    Protocol,
    TypeVar,
    cast,
    runtime_checkable,
)

from pydantic import BaseModel, ConfigDict, create_model

from hil.errors import ConfigError

if TYPE_CHECKING:
    from hil.config import DutConfig

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pos_hil.drivers"

#: pos-hil's own driver modules; importing one registers its drivers.
BUILTIN_DRIVER_MODULES = (
    "hil.instruments.dut",
    "hil.instruments.console",
    "hil.instruments.power",
    "hil.instruments.relayboard",
    "hil.instruments.pdu",
    "hil.instruments.relayfaults",
    "hil.instruments.swipecoil",
    "hil.instruments.host",
    "hil.instruments.network.proxy",
    "hil.instruments.network.toxiproxy",
    "hil.instruments.network.netem",
    "hil.instruments.qrscreen",
    "hil.instruments.cards",
    "hil.instruments.magstripe",
    "hil.instruments.faultlines",
    "hil.instruments.updates",
    "hil.instruments.biometrics",
    "hil.instruments.camera",
    "hil.instruments.keypad",
    "hil.instruments.manual",
    # imports labgrid only when a labgrid section is built (extra pos-hil[labgrid])
    "hil.labgrid.drivers",
)

#: Sections every rig file must have.
REQUIRED_SECTIONS = ("dut", "console")

#: Tie-break between sections that do not depend on each other: the terminal and its
#: port first, its supply next, then the instruments in front of it. Put back and
#: teardown run in reverse, so faults are cleared before the terminal is powered
#: again and the instruments go down before the terminal loses power.
SECTION_RANK = ("dut", "console", "power")


@runtime_checkable
class RigInstrument(Protocol):
    """The rig's handle on one built section, whatever its kind.

    Each kind also has its own Protocol that steps use (``Power``, ``CardSlot``...);
    this one is what the rig needs: put back after a scenario, answer a preflight,
    close at the end.
    """

    name: str

    def put_back(self) -> None:
        """Return to the known state after a scenario (card out, screen blank...)."""

    def preflight(self) -> str:
        """One line saying the instrument answers; raise a HilError if it does not."""

    def close(self) -> None:
        """Release everything; must not raise."""


class StrictOptions(BaseModel):
    """Options as a rig file holds them: strict (TOML already types its values), no
    unknown keys, immutable. Use it for tables nested in a driver's options."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DriverConfig(StrictOptions):
    """Base of every driver's options. The registry adds the ``driver`` field itself,
    as the name the driver was registered under."""

    driver: str = ""


@dataclass
class Built:
    """What a driver's ``build`` returns: the instrument and the channels it wires
    into the terminal (``name -> value``, passed to a process terminal in
    ``HIL_CHANNELS``; a later driver may re-wire a channel, e.g. the network fault
    proxy puts itself in front of the host)."""

    instrument: RigInstrument
    channels: Mapping[str, str] = field(default_factory=dict)


InstrumentT = TypeVar("InstrumentT")


@dataclass
class BuildContext:
    """What a driver sees while it builds: no more than it needs.

    ``source`` is the rig file (paths in driver options are already resolved against
    its folder); ``dut`` the identity the terminal must report; ``built`` holds the
    sections built so far, which include every section the driver ``needs``;
    ``channels`` the channels wired so far (a live view).
    """

    rig_name: str
    source: Path
    section: str
    dut: DutConfig
    work_dir: Path
    firmware: Path | None
    built: Mapping[str, RigInstrument]
    channels: Mapping[str, str]

    @property
    def folder(self) -> Path:
        return self.source.parent

    def error(self, field_path: str, message: str) -> ConfigError:
        """A rig-file error naming this section's field: ``rigs/x.toml: power.port: ...``."""
        where = f"{self.section}.{field_path}" if field_path else self.section
        return ConfigError(f"{display_path(self.source)}: {where}: {message}")

    def instrument(self, section: str, kind: Callable[..., InstrumentT]) -> InstrumentT:
        """The instrument built from ``section``, checked to be a ``kind`` (a runtime
        checkable Protocol or a class); a rig-file error if it is absent or another kind.
        (``kind`` is typed as a callable because mypy refuses Protocols as ``type[T]``.)"""
        built = self.built.get(section)
        if built is None:
            raise self.error("driver", f"needs a [{section}] section, built before it")
        if not isinstance(built, cast(type, kind)):
            raise self.error(
                "driver",
                f"needs [{section}] to be a {getattr(kind, '__name__', kind)}; its driver "
                f"built a {type(built).__name__}",
            )
        return cast(InstrumentT, built)

    def optional(self, section: str, kind: Callable[..., InstrumentT]) -> InstrumentT | None:
        """Like ``instrument`` but None when the rig has no such section."""
        return None if section not in self.built else self.instrument(section, kind)


class Driver:
    """Base of every driver class. Subclass it, set ``config_model``, write ``build``.

    ``needs``: sections that must exist and are built first. ``after``: sections built
    first when the rig has them. Override ``requires`` when what is needed depends on
    the options (the network proxy needs the host only when no upstream is given), and
    ``check`` for rules that span sections (raise ``ValueError("field: why")``).
    """

    config_model: ClassVar[type[DriverConfig]] = DriverConfig
    needs: ClassVar[tuple[str, ...]] = ()
    after: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def requires(cls, config: Any) -> tuple[str, ...]:
        """Sections this driver needs for these options (default: ``needs``)."""
        return cls.needs

    @classmethod
    def check(cls, config: Any, sections: Mapping[str, DriverConfig]) -> None:
        """Rules that span sections, checked when the rig file loads."""
        return None

    @classmethod
    def build(cls, config: Any, context: BuildContext) -> Built:
        raise NotImplementedError(f"{cls.__qualname__} does not implement build()")


DriverT = TypeVar("DriverT", bound=type[Driver])


@dataclass(frozen=True)
class Registration:
    section: str
    name: str
    driver: type[Driver]
    #: the author's model with the ``driver`` field added as ``Literal[name]``
    config_model: type[DriverConfig]
    origin: str


class DriverRegistry:
    """Every known driver by (section, name), and the plug-ins they came from."""

    def __init__(self) -> None:
        self._drivers: dict[tuple[str, str], Registration] = {}
        self._lock = threading.RLock()
        self._loading: str = ""
        self._builtin_loaded = False
        self._entry_points_loaded = False
        self._imported_plugins: set[str] = set()
        #: bumped on every registration, so cached rig-file models are rebuilt
        self.version = 0

    # --- registering ---------------------------------------------------------------

    def add(self, section: str, name: str, driver: type[Driver]) -> None:
        if not section.isidentifier():
            raise ConfigError(f"driver {section}.{name}: a section is a word (letters, digits, _)")
        if not name or any(c.isspace() for c in name):
            raise ConfigError(f"driver {section}.{name!r}: a driver name has no spaces")
        if not (isinstance(driver, type) and issubclass(driver, Driver)):
            raise ConfigError(
                f"driver {section}.{name}: {driver!r} is not a subclass of hil.drivers.Driver"
            )
        model = driver.config_model
        if not (isinstance(model, type) and issubclass(model, DriverConfig)):
            raise ConfigError(
                f"driver {section}.{name}: config_model must subclass hil.drivers.DriverConfig"
            )
        origin = self._loading or driver.__module__
        with self._lock:
            existing = self._drivers.get((section, name))
            if existing is not None:
                if existing.driver is driver:
                    return
                raise ConfigError(
                    f"driver {section}.{name} registered twice: by {existing.origin} "
                    f"({existing.driver.__qualname__}) and by {origin} ({driver.__qualname__})"
                )
            tagged = create_model(
                f"{model.__name__}[{section}.{name}]",
                __base__=model,
                __module__=model.__module__,
                driver=(cast(Any, Literal)[name], ...),
            )
            self._drivers[(section, name)] = Registration(section, name, driver, tagged, origin)
            self.version += 1

    def register(self, section: str, name: str) -> Callable[[DriverT], DriverT]:
        """Class decorator: ``@register("power", "relay")``."""

        def decorate(driver: DriverT) -> DriverT:
            self.add(section, name, driver)
            return driver

        return decorate

    # --- what is known ---------------------------------------------------------------

    def sections(self) -> list[str]:
        with self._lock:
            names = {section for section, _ in self._drivers}
        return sorted(names | set(REQUIRED_SECTIONS), key=section_order_key)

    def drivers(self, section: str) -> list[Registration]:
        with self._lock:
            return sorted(
                (r for (s, _), r in self._drivers.items() if s == section), key=lambda r: r.name
            )

    def get(self, section: str, name: str) -> Registration | None:
        with self._lock:
            return self._drivers.get((section, name))

    def driver_of(self, config: DriverConfig) -> Registration:
        """The registration a validated section config came from."""
        with self._lock:
            for registration in self._drivers.values():
                if type(config) is registration.config_model:
                    return registration
        raise ConfigError(f"no driver registered for options {type(config).__name__}")

    # --- for tests: undo what a test registered --------------------------------------

    def snapshot(self) -> tuple[dict[tuple[str, str], Registration], set[str], bool]:
        with self._lock:
            return dict(self._drivers), set(self._imported_plugins), self._entry_points_loaded

    def restore(self, saved: tuple[dict[tuple[str, str], Registration], set[str], bool]) -> None:
        with self._lock:
            self._drivers, self._imported_plugins, self._entry_points_loaded = (
                dict(saved[0]),
                set(saved[1]),
                saved[2],
            )
            self.version += 1

    # --- loading -----------------------------------------------------------------------

    def load_builtin(self) -> None:
        if self._builtin_loaded:
            return
        with self._lock:
            if self._builtin_loaded:
                return
            for module in BUILTIN_DRIVER_MODULES:
                importlib.import_module(module)
            self._builtin_loaded = True

    def load_entry_points(self) -> None:
        """Every installed package's ``pos_hil.drivers`` entry points, once."""
        if self._entry_points_loaded:
            return
        with self._lock:
            if self._entry_points_loaded:
                return
            self._entry_points_loaded = True
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                label = (
                    f"plug-in '{entry_point.name}' (entry point {ENTRY_POINT_GROUP} = "
                    f"{entry_point.value}"
                    + (f", package {entry_point.dist.name}" if entry_point.dist else "")
                    + ")"
                )
                self._run_plugin(label, entry_point.load)

    def load_plugins(self, modules: Iterable[str], *, where: str) -> None:
        """Import the modules a rig file lists in ``[rig] plugins``."""
        for module in modules:
            if module in self._imported_plugins:
                continue
            label = f"{where}: plug-in '{module}'"
            self._run_plugin(label, functools.partial(importlib.import_module, module))
            self._imported_plugins.add(module)

    def _run_plugin(self, label: str, load: Callable[[], object]) -> None:
        previous, self._loading = self._loading, label
        try:
            loaded = load()
            # An entry point may name a function instead of a module: call it.
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        except ConfigError as e:
            raise ConfigError(f"{label}: {e}") from None
        except Exception as e:
            reason = f"{type(e).__name__}: {e}".strip()
            raise ConfigError(f"{label}: cannot load: {reason}") from e
        finally:
            self._loading = previous


REGISTRY = DriverRegistry()


def register(section: str, name: str) -> Callable[[DriverT], DriverT]:
    """Register a driver class under ``(section, name)`` in pos-hil's registry."""
    return REGISTRY.register(section, name)


def section_order_key(section: str) -> tuple[int, str]:
    rank = SECTION_RANK.index(section) if section in SECTION_RANK else len(SECTION_RANK)
    return rank, section


def plan(
    sections: Mapping[str, DriverConfig], registry: DriverRegistry, *, where: str
) -> list[str]:
    """The order to build ``sections`` in, from what each driver declares it needs.

    ``where`` prefixes errors (the rig file). A needed section that the rig lacks, or
    a cycle, is a ConfigError.
    """
    edges: dict[str, set[str]] = {}
    for section, config in sections.items():
        driver = registry.driver_of(config).driver
        required = set(driver.requires(config))
        for needed in sorted(required):
            if needed not in sections:
                raise ConfigError(
                    f"{where}: {section}.driver: '{config.driver}' needs a [{needed}] section"
                )
        edges[section] = required | {s for s in driver.after if s in sections}
        edges[section].discard(section)
    order: list[str] = []
    remaining = dict(edges)
    while remaining:
        ready = sorted(
            (s for s, deps in remaining.items() if not deps - set(order)), key=section_order_key
        )
        if not ready:
            cycle = " -> ".join(sorted(remaining, key=section_order_key))
            raise ConfigError(f"{where}: sections need each other in a cycle: {cycle}")
        order.append(ready[0])
        del remaining[ready[0]]
    return order


def display_path(path: Path) -> str:
    """A path as a person would type it: relative to the current folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
