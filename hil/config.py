"""The rig file: what is wired to what, as validated data with no I/O.

A rig file is TOML. Each instrument section names its ``driver``; the drivers' own
options are checked here, strictly: an unknown key, a wrong type, a missing file or
an unknown driver name is a ``ConfigError`` whose one line names the file and the
field path, e.g. ``rigs/x.toml: console.baud: expected integer``.

Relative paths in a rig file are relative to the rig file's own folder, so a rig
file can be moved together with its fixtures.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from hil.errors import ConfigError

DEFAULT_RIG = Path(__file__).resolve().parent.parent / "rigs" / "sim.toml"


# TOML already types its values, so fields are strict (no "5" -> 5); paths are the
# exception: TOML has no path type, a string is the only way to write one.
FilePath = Annotated[Path, Strict(False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RigInfo(_Strict):
    name: str
    description: str = ""


def _check_tid(value: str) -> str:
    if len(value) != 8 or not value.isprintable() or not value.isascii():
        raise ValueError("terminal ID must be 8 printable ASCII characters")
    return value


def _check_mid(value: str) -> str:
    if len(value) != 15 or not value.isascii() or not value.isprintable():
        raise ValueError("merchant ID must be 15 printable ASCII characters")
    return value


class _DutCommon(_Strict):
    model: str = Field(description="model the terminal must report")
    serial_number: str = Field(min_length=1, description="serial number burned at the factory")
    terminal_id: str
    merchant_id: str
    firmware: FilePath | None = Field(
        default=None, description="image flashed before the session; --firmware overrides"
    )
    boot_timeout_s: float = Field(default=30.0, gt=0)
    command_timeout_s: float = Field(default=10.0, gt=0)

    _tid = field_validator("terminal_id")(_check_tid)
    _mid = field_validator("merchant_id")(_check_mid)


class SimDut(_DutCommon):
    """The built-in simulated terminal (``python -m hil.sim``)."""

    driver: Literal["sim"]
    time_scale: float = Field(default=1.0, gt=0, le=10)
    state_dir: FilePath | None = Field(default=None, description="flash folder; default: per run")


class CommandDut(_DutCommon):
    """Any terminal implementation started as a process (see docs/test-port-protocol.md)."""

    driver: Literal["command"]
    command: list[str] = Field(min_length=1)
    time_scale: float = Field(default=1.0, gt=0, le=10)
    state_dir: FilePath | None = None


class PhysicalDut(_DutCommon):
    """A real terminal on the bench; the rig does not start it, only talks to it."""

    driver: Literal["physical"]


DutConfig = Annotated[SimDut | CommandDut | PhysicalDut, Field(discriminator="driver")]


class PyserialConsole(_Strict):
    """Test port over any pyserial URL; ``dut:`` means the port the dut driver created."""

    driver: Literal["pyserial"]
    url: str = "dut:"
    baud: int = Field(default=115200, gt=0)
    ack_timeout_ms: int = Field(default=500, gt=0)


ConsoleConfig = Annotated[PyserialConsole, Field(discriminator="driver")]


class SimPower(_Strict):
    """Power of a process terminal: start, SIGTERM (graceful), SIGKILL (cut)."""

    driver: Literal["sim"]
    off_timeout_s: float = Field(default=5.0, gt=0)


PowerConfig = Annotated[SimPower, Field(discriminator="driver")]


class Limits(_Strict):
    """Time budgets, in seconds of wall time on this rig."""

    boot_selfcheck_s: float = Field(default=20.0, gt=0)


class RigConfig(_Strict):
    rig: RigInfo
    dut: DutConfig
    console: ConsoleConfig
    power: PowerConfig | None = None
    limits: Limits = Limits()
    source: FilePath = Field(default=Path("<memory>"), exclude=True)

    def instruments(self) -> dict[str, str]:
        """Instrument kind -> driver name, for preflight and the report environment."""
        wired: dict[str, str] = {"dut": self.dut.driver, "console": self.console.driver}
        if self.power is not None:
            wired["power"] = self.power.driver
        return wired


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
    "dict_type": "expected table",
    "missing": "required field missing",
    "extra_forbidden": "unknown key",
    "path_type": "expected path string",
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("sim", "command", "physical", "pyserial") and parts:
            # pydantic inserts the union member's tag into the path; users never wrote it
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "<root>"


def _describe(error: Any) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return (
            _field_path((*loc, "driver")),
            f"unknown driver '{ctx.get('tag')!s}' (known: {ctx.get('expected_tags')})",
        )
    if kind == "union_tag_not_found":
        return _field_path((*loc, "driver")), "required field missing (names the driver)"
    if kind in _TYPE_WORDS:
        return _field_path(loc), _TYPE_WORDS[kind]
    message = str(error.get("msg", kind))
    message = message.removeprefix("Value error, ")
    return _field_path(loc), message


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_rig(text: str, source: Path) -> RigConfig:
    """Validate rig TOML text; ``source`` names the file in errors and anchors relative paths."""
    shown = _display_path(source)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{shown}: invalid TOML: {e}") from e
    try:
        config = RigConfig.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        field, message = _describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{shown}: {field}: {message}{more}") from None
    base = source.resolve().parent
    dut = config.dut
    updates: dict[str, Any] = {}
    if dut.firmware is not None:
        firmware = dut.firmware if dut.firmware.is_absolute() else base / dut.firmware
        if not firmware.is_file():
            raise ConfigError(f"{shown}: dut.firmware: file not found: {dut.firmware}")
        updates["firmware"] = firmware
    if isinstance(dut, SimDut | CommandDut) and dut.state_dir is not None:
        state_dir = dut.state_dir
        updates["state_dir"] = state_dir if state_dir.is_absolute() else base / state_dir
    if isinstance(dut, PhysicalDut) and config.console.url == "dut:":
        raise ConfigError(
            f"{shown}: console.url: a physical terminal needs a real port URL, not 'dut:'"
        )
    if config.power is not None and config.power.driver == "sim" and dut.driver == "physical":
        raise ConfigError(f"{shown}: power.driver: 'sim' needs dut.driver 'sim' or 'command'")
    new_dut = dut.model_copy(update=updates)
    return config.model_copy(update={"dut": new_dut, "source": source.resolve()})


def load_rig(path: Path | str) -> RigConfig:
    """Read and validate a rig file. Raises ConfigError naming the file and field."""
    rig_path = Path(path)
    try:
        text = rig_path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{_display_path(rig_path)}: rig file not found") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{_display_path(rig_path)}: cannot read rig file: {e}") from e
    return parse_rig(text, rig_path)
