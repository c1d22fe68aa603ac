"""Terminal configuration: the keys, their defaults and their validation.

Keys are flat dotted names ("host.port"); values are JSON scalars. ``validate`` returns
the value to store or raises ConfigValueError with a reason a person can act on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hil.sim.state import FlashLayout, atomic_write_json, read_json

CONFIG_FORMAT = "pos-sim-config/1"
#: Log retention: 90 days (nominal seconds, multiplied by the time scale).
LOG_RETENTION_DEFAULT_S = 90 * 24 * 3600


class ConfigKeyError(KeyError):
    """Unknown configuration key (E_CONFIG_KEY)."""


class ConfigValueError(ValueError):
    """Value rejected for a known key (E_CONFIG_VALUE)."""


def _printable_ascii(value: Any, length: int, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigValueError(f"{what} must be a string")
    if len(value) != length:
        raise ConfigValueError(f"{what} must be exactly {length} characters, got {len(value)}")
    if not all(0x20 <= ord(c) <= 0x7E for c in value):
        raise ConfigValueError(f"{what} must be printable ASCII")
    return value


def _terminal_id(value: Any) -> str:
    # "" withdraws the terminal ID (none assigned): the terminal cannot sign on or pay
    # until one is set again (terminal_id self-check E_TID_INVALID).
    if value == "":
        return ""
    return _printable_ascii(value, 8, "terminal_id")


def _merchant_id(value: Any) -> str:
    return _printable_ascii(value, 15, "merchant_id")


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _host_address(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigValueError("host.address must be a string (IP address or host name)")
    if value == "":
        return value  # "not configured"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            raise ConfigValueError(
                f"host.address {value!r} is neither an IP address nor a host name"
            ) from None
    return value


def _channel_address(name: str) -> Callable[[Any], str]:
    """``ADDRESS:PORT`` of a channel the rig serves over TCP, or "" (not wired)."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigValueError(f"{name} must be a string ADDRESS:PORT or ''")
        if value == "":
            return value
        address, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigValueError(f"{name} must be ADDRESS:PORT, port 1-65535, got {value!r}")
        _host_address(address.strip("[]"))
        return value

    return check


def _reader_name(name: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or "," in value or not value.isprintable():
            raise ConfigValueError(f"{name} must be a PC/SC reader name (printable, no comma)")
        return value

    return check


def _int_range(name: str, low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        # bool is an int subclass; true/false is never a valid port or timeout.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigValueError(f"{name} must be an integer")
        if not low <= value <= high:
            raise ConfigValueError(f"{name} must be between {low} and {high}, got {value}")
        return value

    return check


def _boolean(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ConfigValueError(f"{name} must be true or false")
        return value

    return check


@dataclass(frozen=True)
class ConfigKey:
    name: str
    default: Any
    validate: Callable[[Any], Any]
    description: str


CONFIG_KEYS: dict[str, ConfigKey] = {
    k.name: k
    for k in (
        ConfigKey(
            "terminal_id", "", _terminal_id, "terminal ID, 8 printable ASCII characters or ''"
        ),
        ConfigKey("merchant_id", "", _merchant_id, "merchant ID, 15 printable ASCII characters"),
        ConfigKey(
            "host.address", "", _host_address, "acquirer host IP or name; '' = not configured"
        ),
        ConfigKey(
            "host.port", 0, _int_range("host.port", 0, 65535), "host TCP port; 0 = not configured"
        ),
        ConfigKey(
            "comm.connect_timeout_ms",
            5000,
            _int_range("comm.connect_timeout_ms", 100, 60000),
            "TCP connect timeout",
        ),
        ConfigKey(
            "comm.response_timeout_ms",
            30000,
            _int_range("comm.response_timeout_ms", 100, 120000),
            "host response timeout",
        ),
        ConfigKey("comm.retries", 3, _int_range("comm.retries", 0, 10), "host retries"),
        ConfigKey("interfaces.card", True, _boolean("interfaces.card"), "chip/magstripe"),
        ConfigKey("interfaces.qr", True, _boolean("interfaces.qr"), "QR code payments"),
        ConfigKey("interfaces.nfc", True, _boolean("interfaces.nfc"), "contactless"),
        ConfigKey("permissions.sale", True, _boolean("permissions.sale"), "sales allowed"),
        ConfigKey("permissions.refund", True, _boolean("permissions.refund"), "refunds allowed"),
        ConfigKey(
            "log.retention_s",
            LOG_RETENTION_DEFAULT_S,
            _int_range("log.retention_s", 10, 31_536_000),
            "log entries older than this (x time scale) are purged",
        ),
        # Wiring by configuration (docs/test-port-protocol.md, "Wiring by configuration"):
        # a terminal the rig did not start learns where the rig's channels are from
        # these keys; HIL_CHANNELS, when it names a channel with a value, wins. Read at
        # boot, like a cable plugged in: a change applies from the next boot.
        *(
            ConfigKey(
                f"channels.{name}", "", _channel_address(f"channels.{name}"), f"{name} channel"
            )
            for name in ("camera", "faultlines", "maghead")
        ),
        *(
            ConfigKey(f"channels.{name}", "", _reader_name(f"channels.{name}"), f"{name} reader")
            for name in ("pcsc", "pcsc_cl")
        ),
    )
}


def defaults() -> dict[str, Any]:
    return {name: key.default for name, key in CONFIG_KEYS.items()}


def validate(name: str, value: Any) -> Any:
    key = CONFIG_KEYS.get(name)
    if key is None:
        raise ConfigKeyError(name)
    return key.validate(value)


class ConfigStore:
    """Configuration persisted in ``config.json``; not thread-safe (the terminal locks)."""

    def __init__(self, layout: FlashLayout) -> None:
        self._path = layout.config
        self.load_warning = ""
        self._values = defaults()
        try:
            stored = read_json(self._path)
        except (ValueError, OSError) as e:
            stored = None
            self.load_warning = f"config.json unreadable, defaults used: {e}"
        if isinstance(stored, dict) and isinstance(stored.get("values"), dict):
            for name, value in stored["values"].items():
                try:
                    self._values[name] = validate(name, value)
                except (ConfigKeyError, ConfigValueError) as e:
                    self.load_warning = f"config.json: ignored {name}: {e}"

    def values(self) -> dict[str, Any]:
        return dict(self._values)

    def get(self, name: str) -> Any:
        if name not in CONFIG_KEYS:
            raise ConfigKeyError(name)
        return self._values[name]

    def set(self, name: str, value: Any) -> Any:
        checked = validate(name, value)
        self.set_many({name: checked})
        return checked

    def set_many(self, updates: Mapping[str, Any]) -> None:
        new = dict(self._values)
        for name, value in updates.items():
            new[name] = validate(name, value)
        atomic_write_json(self._path, {"format": CONFIG_FORMAT, "values": new})
        self._values = new
