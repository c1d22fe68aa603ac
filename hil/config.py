"""The rig file: what is wired to what, as validated data with no I/O.

A rig file is TOML. ``[rig]`` names the rig (and may list plug-in modules), ``[limits]``
holds time budgets, and every other section is built by a driver: ``[power] driver =
"sim"`` picks the driver registered as ``("power", "sim")`` (hil.drivers), whose own
pydantic model checks the options beside it, strictly. Every mistake is a
``ConfigError`` whose one line names the file and the field path, e.g.
``rigs/x.toml: console.baud: expected integer``, or the plug-in that failed.

Relative paths in a rig file are relative to the rig file's own folder, so a rig
file can be moved together with its fixtures. They are resolved once, here, while
the file is validated (``RigPath``, ``RigFile``, ``RigFolder``); drivers only ever see
absolute paths.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
)
from pydantic.functional_validators import AfterValidator

from hil.drivers import (
    REGISTRY,
    DriverConfig,
    DriverRegistry,
    StrictOptions,
    display_path,
    plan,
)
from hil.errors import ConfigError

#: Sections that are not built by a driver.
PLAIN_SECTIONS = ("rig", "limits", "report")


# --- paths relative to the rig file ------------------------------------------------


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("rig_folder")
    if value.is_absolute() or base is None:
        return value
    # normpath, not resolve: "../fixtures" reads better in errors, and symlinks stay
    return Path(os.path.normpath(Path(base) / value))


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    resolved = _resolve(value, info)
    if not resolved.is_file():
        raise ValueError(f"file not found: {value}")
    return resolved


def _existing_folder(value: Path, info: ValidationInfo) -> Path:
    resolved = _resolve(value, info)
    if not resolved.is_dir():
        raise ValueError(f"folder not found: {value}")
    return resolved


# TOML has no path type, so a path is the one place where a string is converted.
RigPath = Annotated[Path, Strict(False), AfterValidator(_resolve)]
"""A path in a rig file, resolved against the rig file's folder."""
RigFile = Annotated[Path, Strict(False), AfterValidator(_existing_file)]
"""A file that must exist, resolved against the rig file's folder."""
RigFolder = Annotated[Path, Strict(False), AfterValidator(_existing_folder)]
"""A folder that must exist, resolved against the rig file's folder."""


# --- identity checks shared by the dut section and the host's bindings ----------------


def check_tid(value: str) -> str:
    if len(value) != 8 or not value.isprintable() or not value.isascii():
        raise ValueError("terminal ID must be 8 printable ASCII characters")
    return value


def check_mid(value: str) -> str:
    if len(value) != 15 or not value.isascii() or not value.isprintable():
        raise ValueError("merchant ID must be 15 printable ASCII characters")
    return value


class RigInfo(StrictOptions):
    name: str
    description: str = ""
    plugins: list[str] = Field(
        default_factory=list, description="modules to import before the rig is built"
    )
    bench_addresses: list[str] = Field(
        default_factory=list,
        description="non-loopback addresses the host simulator and fault path may bind",
    )
    lock_wait_s: float = Field(
        default=0.0,
        ge=0,
        le=86400,
        description="how long a run waits for a bench terminal another run drives (hil.riglock)",
    )


class Limits(StrictOptions):
    """Time budgets, in seconds of wall time on this rig."""

    boot_selfcheck_s: float = Field(default=20.0, gt=0)


#: The Gherkin tags a ``[report] links`` pattern can turn into links (docs/rig-files.md).
LINK_KINDS = ("issue", "tms", "req")


class ReportOptions(StrictOptions):
    """How the report links tags: ``links = { issue = "https://tracker/browse/{}" }``,
    ``{}`` standing for the ID written after ``@issue:``, ``@tms:`` or ``@req:``."""

    links: dict[str, str] = Field(default_factory=dict)

    @field_validator("links")
    @classmethod
    def _patterns(cls, links: dict[str, str]) -> dict[str, str]:
        for kind, pattern in links.items():
            if kind not in LINK_KINDS:
                raise ValueError(f"{kind}: not a link kind (known: {', '.join(LINK_KINDS)})")
            if "{}" not in pattern:
                raise ValueError(f"{kind}: {pattern!r} has no {{}} where the ID goes")
        return links


class DutConfig(DriverConfig):
    """What every ``[dut]`` driver's options start with: the identity the terminal must
    report, the image it must run, and how long it may take."""

    model: str = Field(description="model the terminal must report")
    serial_number: str = Field(min_length=1, description="serial number burned at the factory")
    terminal_id: str
    merchant_id: str
    firmware: RigFile | None = Field(
        default=None, description="the image the terminal runs; --firmware overrides"
    )
    boot_timeout_s: float = Field(default=30.0, gt=0)
    command_timeout_s: float = Field(default=10.0, gt=0)

    _tid = field_validator("terminal_id")(check_tid)
    _mid = field_validator("merchant_id")(check_mid)


@dataclass(frozen=True)
class RigConfig:
    """A validated rig file: the plain sections, each driver section's options (in the
    file's order) and the order they are built in."""

    rig: RigInfo
    sections: Mapping[str, DriverConfig]
    build_order: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    source: Path = Path("<memory>")
    report: ReportOptions = field(default_factory=ReportOptions)

    @property
    def name(self) -> str:
        return self.rig.name

    @property
    def dut(self) -> DutConfig:
        dut = self.sections["dut"]
        assert isinstance(dut, DutConfig)  # checked when the rig file was validated
        return dut

    def section(self, name: str) -> DriverConfig | None:
        return self.sections.get(name)

    def instruments(self) -> dict[str, str]:
        """Section -> driver name, in build order (preflight, report environment)."""
        return {name: self.sections[name].driver for name in self.build_order}


# --- validation -----------------------------------------------------------------------

_TYPE_WORDS = {
    "int_type": "expected integer",
    "int_parsing": "expected integer",
    "int_from_float": "expected integer",
    "float_type": "expected number",
    "float_parsing": "expected number",
    "string_type": "expected string",
    "bool_type": "expected boolean",
    "bool_parsing": "expected boolean",
    "list_type": "expected array",
    "model_type": "expected table",
    "model_attributes_type": "expected table",
    "dict_type": "expected table",
    "missing": "required field missing",
    "extra_forbidden": "unknown key",
    "path_type": "expected path string",
}

_models: dict[tuple[int, int], type[BaseModel]] = {}


def _rig_model(registry: DriverRegistry) -> type[BaseModel]:
    """The pydantic model of a whole rig file for the drivers registered right now."""
    key = (id(registry), registry.version)
    model = _models.get(key)
    if model is not None:
        return model
    fields: dict[str, Any] = {
        "rig": (RigInfo, ...),
        "limits": (Limits, Limits()),
        "report": (ReportOptions, ReportOptions()),
    }
    for section in registry.sections():
        members = tuple(r.config_model for r in registry.drivers(section))
        if not members:
            continue
        union = Annotated[Union[members], Field(discriminator="driver")]  # type: ignore[valid-type]  # noqa: UP007
        required = section in ("dut", "console")
        fields[section] = (union, ...) if required else (union | None, None)
    model = create_model(
        "RigFile",
        __config__=ConfigDict(extra="forbid", frozen=True, strict=True),
        **fields,
    )
    _models[key] = model
    return model


class _Describe:
    """Turns one pydantic error into ``field.path: reason`` in the rig file's words."""

    def __init__(self, raw: Mapping[str, Any], registry: DriverRegistry) -> None:
        self.raw = raw
        self.registry = registry

    def field_path(self, loc: tuple[int | str, ...]) -> str:
        items = list(loc)
        # pydantic puts the union member's tag (the driver name) after the section;
        # the rig file never wrote it there.
        if len(items) >= 2 and isinstance(items[0], str):
            table = self.raw.get(items[0])
            if isinstance(table, Mapping) and items[1] == table.get("driver"):
                del items[1]
        parts: list[str] = []
        for item in items:
            parts.append(f"[{item}]" if isinstance(item, int) else ("." if parts else "") + item)
        return "".join(parts) or "<root>"

    def known_drivers(self, section: str) -> str:
        return ", ".join(repr(r.name) for r in self.registry.drivers(section)) or "none"

    def __call__(self, error: Any) -> tuple[str, str]:
        loc = tuple(error["loc"])
        kind = error["type"]
        section = str(loc[0]) if loc else ""
        if kind == "union_tag_invalid":
            tag = error.get("ctx", {}).get("tag")
            return (
                self.field_path((*loc, "driver")),
                f"unknown driver '{tag}' (known: {self.known_drivers(section)})",
            )
        if kind == "union_tag_not_found":
            return (
                self.field_path((*loc, "driver")),
                f"required field missing: names the driver (known: {self.known_drivers(section)})",
            )
        if kind == "extra_forbidden" and len(loc) >= 2:
            other = self._other_driver_option(section, str(loc[-1]))
            if other:
                return self.field_path(loc), other
        if kind in _TYPE_WORDS:
            return self.field_path(loc), _TYPE_WORDS[kind]
        message = str(error.get("msg", kind)).removeprefix("Value error, ")
        return self.field_path(loc), message

    def _other_driver_option(self, section: str, key: str) -> str:
        table = self.raw.get(section)
        chosen = table.get("driver") if isinstance(table, Mapping) else None
        owners = [
            r.name
            for r in self.registry.drivers(section)
            if r.name != chosen and key in r.config_model.model_fields
        ]
        if not owners:
            return ""
        named = " and ".join(repr(name) for name in owners)
        return f"an option of driver {named}, not of '{chosen}'"


def parse_rig(text: str, source: Path, *, registry: DriverRegistry = REGISTRY) -> RigConfig:
    """Validate rig TOML text; ``source`` names the file in errors and anchors relative
    paths. Imports the plug-ins the file lists before its driver sections are read."""
    shown = display_path(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{shown}: invalid TOML: {e}") from e
    rig_table = raw.get("rig")
    if not isinstance(rig_table, dict):
        raise ConfigError(f"{shown}: rig: required table missing ([rig] with a name)")
    describe = _Describe(raw, registry)
    try:
        info = RigInfo.model_validate(rig_table)
    except ValidationError as e:
        field_path, message = describe(e.errors()[0])
        raise ConfigError(f"{shown}: rig.{field_path}: {message}") from None
    registry.load_builtin()
    registry.load_entry_points()
    registry.load_plugins(info.plugins, where=f"{shown}: rig.plugins")
    known = registry.sections()
    for key in raw:
        if key not in PLAIN_SECTIONS and key not in known:
            names = ", ".join([*PLAIN_SECTIONS, *known])
            raise ConfigError(
                f"{shown}: {key}: unknown section (known: {names}; a plug-in adds new ones)"
            )
    folder = source.resolve().parent
    try:
        validated = _rig_model(registry).model_validate(raw, context={"rig_folder": folder})
    except ValidationError as e:
        errors = e.errors()
        field_path, message = describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{shown}: {field_path}: {message}{more}") from None
    sections: dict[str, DriverConfig] = {}
    for key in raw:
        value = getattr(validated, key, None)
        if isinstance(value, DriverConfig):
            sections[key] = value
    if not isinstance(sections.get("dut"), DutConfig):
        raise ConfigError(
            f"{shown}: dut.driver: driver '{sections['dut'].driver}' does not describe a "
            "terminal (its options must subclass hil.config.DutConfig)"
        )
    for name, config in sections.items():
        try:
            registry.driver_of(config).driver.check(config, sections)
        except ValueError as e:
            raise ConfigError(f"{shown}: {name}.{e}") from None
    from hil.wiring import check_bench_addresses

    refused = check_bench_addresses(sections, info.bench_addresses)
    if refused is not None:
        raise ConfigError(f"{shown}: {refused[0]}: {refused[1]}")
    order = plan(sections, registry, where=shown)
    limits = validated.limits  # type: ignore[attr-defined]
    assert isinstance(limits, Limits)
    report = validated.report  # type: ignore[attr-defined]
    assert isinstance(report, ReportOptions)
    return RigConfig(
        rig=info,
        sections=sections,
        build_order=tuple(order),
        limits=limits,
        source=source.resolve(),
        report=report,
    )


def load_rig(path: Path | str, *, registry: DriverRegistry = REGISTRY) -> RigConfig:
    """Read and validate a rig file. Raises ConfigError naming the file and field."""
    rig_path = Path(path)
    try:
        text = rig_path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{display_path(rig_path)}: rig file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{display_path(rig_path)}: cannot read rig file: {e}") from e
    return parse_rig(text, rig_path, registry=registry)
