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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from hil.errors import ConfigError
from hil.suite import FIXTURES

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


def _known_driver(known: tuple[str, ...]) -> Callable[[str], str]:
    """A ``driver`` field check for sections whose drivers are named in ``known``."""

    def check(value: str) -> str:
        if value not in known:
            names = ", ".join(repr(d) for d in known)
            raise ValueError(f"unknown driver '{value}' (known: {names})")
        return value

    return check


QR_SCREEN_DRIVERS = ("sim", "window", "file")


class QrScreenConfig(_Strict):
    """The QR display screen facing the terminal's scanner (docs/qr.md)."""

    driver: str
    module_px: int = Field(default=6, ge=1, le=64, description="screen pixels per QR module")
    ecc: Literal["L", "M", "Q", "H"] = "M"
    quiet_zone: int = Field(default=4, ge=0, le=16, description="white modules around the code")
    frame_width: int = Field(default=640, ge=64, le=8192)
    frame_height: int = Field(default=480, ge=64, le=8192)
    directory: FilePath | None = Field(default=None, description="file driver: PNG folder")
    display: str | None = Field(default=None, description="window driver: X display")

    _driver = field_validator("driver")(_known_driver(QR_SCREEN_DRIVERS))

    @model_validator(mode="after")
    def _driver_options(self) -> QrScreenConfig:
        if self.driver == "file" and self.directory is None:
            raise ValueError("directory: required by the file driver")
        if self.driver != "file" and self.directory is not None:
            raise ValueError(f"directory: only for the file driver, not '{self.driver}'")
        if self.driver != "window" and self.display is not None:
            raise ValueError(f"display: only for the window driver, not '{self.driver}'")
        if self.driver == "window" and {"frame_width", "frame_height"} & self.model_fields_set:
            raise ValueError("frame_width/frame_height: the window driver uses the display size")
        return self


class TerminalBinding(_Strict):
    """One TID the host knows, bound to the serial number of the device that owns it."""

    terminal_id: str
    serial_number: str = Field(min_length=1)

    _tid = field_validator("terminal_id")(_check_tid)


class HostConfig(_Strict):
    """The acquirer host (docs/host.md). ``sim``: hil's ISO 8583 host simulator."""

    driver: str
    address: str = Field(default="127.0.0.1", description="listen address (loopback)")
    port: int = Field(default=0, ge=0, le=65535, description="0 = ephemeral")
    parameters: FilePath = Field(
        default=FIXTURES / "host" / "params-v1.json",
        description="parameter set the host downloads (relative to the rig file)",
    )
    keys: FilePath | None = Field(default=None, description="key set; default the test keys")
    enrol_unknown: bool = Field(default=True, description="bind an unknown TID on sign-on")
    terminals: list[TerminalBinding] = Field(default_factory=list)

    _driver = field_validator("driver")(_known_driver(("sim",)))


NETWORK_DRIVERS = ("proxy", "toxiproxy", "netem")


class NetworkConfig(_Strict):
    """Fault injection between terminal and host (docs/network-faults.md)."""

    driver: str
    listen: str = Field(default="127.0.0.1", description="proxy/toxiproxy listen address")
    port: int = Field(default=0, ge=0, le=65535, description="listen port; 0 = ephemeral")
    upstream: str | None = Field(
        default=None, description="ADDRESS:PORT of the host; default the [host] simulator"
    )
    seed: int = Field(default=0, description="proxy: seed for jitter and corruption")
    api: str | None = Field(default=None, description="toxiproxy: API base URL")
    proxy_name: str = Field(default="pos-hil-host", min_length=1)
    interface: str | None = Field(default=None, description="netem: interface to shape")

    _driver = field_validator("driver")(_known_driver(NETWORK_DRIVERS))

    @model_validator(mode="after")
    def _driver_options(self) -> NetworkConfig:
        if self.driver == "toxiproxy" and self.api is None:
            raise ValueError("api: required by the toxiproxy driver (e.g. http://127.0.0.1:8474)")
        if self.driver != "toxiproxy" and self.api is not None:
            raise ValueError(f"api: only for the toxiproxy driver, not '{self.driver}'")
        if self.driver == "netem" and self.interface is None:
            raise ValueError("interface: required by the netem driver (e.g. lo)")
        if self.driver != "netem" and self.interface is not None:
            raise ValueError(f"interface: only for the netem driver, not '{self.driver}'")
        return self


CARD_DRIVERS = ("vpcd", "serial-mux")


class CardsConfig(_Strict):
    """Card slots (docs/cards.md): ``vpcd`` serves virtual cards to pcscd (sim rig);
    ``serial-mux`` drives a card multiplexer that routes real test cards."""

    driver: str
    profiles: FilePath | None = Field(default=None, description="card profile folder")
    reader: str = Field(default="HIL Virtual Card", min_length=1, description="vpcd reader name")
    port: int = Field(default=35990, ge=1024, le=65000, description="vpcd port of reader 1")
    readers: int = Field(default=4, ge=1, le=16, description="vpcd readers in the pool")
    tap_hold_s: float = Field(default=3.0, gt=0, le=60)
    url: str | None = Field(default=None, description="serial-mux: pyserial URL")
    baud: int = Field(default=9600, gt=0)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    positions: dict[str, int] = Field(default_factory=dict, description="profile -> position")

    _driver = field_validator("driver")(_known_driver(CARD_DRIVERS))

    @model_validator(mode="after")
    def _card_driver_options(self) -> CardsConfig:
        if self.driver == "serial-mux" and not self.url:
            raise ValueError("url: required by the serial-mux driver")
        if self.driver == "vpcd" and (self.url is not None or self.positions):
            raise ValueError("url: only for the serial-mux driver, not 'vpcd'")
        if any(not 1 <= n <= 99 for n in self.positions.values()):
            raise ValueError("positions: card positions are 1 to 99")
        return self


class MagstripeConfig(_Strict):
    """Swipe emulation: ``sim`` drives the sim terminal's mag-head channel."""

    driver: Literal["sim"]
    profiles: FilePath | None = None
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)


class FaultLinesConfig(_Strict):
    """Hardware fault lines (reader power, supply, tamper): ``sim`` = channel into the sim."""

    driver: Literal["sim"]
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)


class Limits(_Strict):
    """Time budgets, in seconds of wall time on this rig."""

    boot_selfcheck_s: float = Field(default=20.0, gt=0)


class RigConfig(_Strict):
    rig: RigInfo
    dut: DutConfig
    console: ConsoleConfig
    power: PowerConfig | None = None
    qr_screen: QrScreenConfig | None = None
    host: HostConfig | None = None
    network: NetworkConfig | None = None
    cards: CardsConfig | None = None
    magstripe: MagstripeConfig | None = None
    faultlines: FaultLinesConfig | None = None
    limits: Limits = Limits()
    source: FilePath = Field(default=Path("<memory>"), exclude=True)

    def instruments(self) -> dict[str, str]:
        """Instrument kind -> driver name, for preflight and the report environment."""
        wired: dict[str, str] = {"dut": self.dut.driver, "console": self.console.driver}
        if self.power is not None:
            wired["power"] = self.power.driver
        for section in ("host", "network", "cards", "magstripe", "faultlines", "qr_screen"):
            instrument = getattr(self, section)
            if instrument is not None:
                wired[section] = instrument.driver
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
