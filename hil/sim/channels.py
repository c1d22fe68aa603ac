"""The rig's wiring into the terminal, from ``HIL_CHANNELS``.

``HIL_CHANNELS`` is a comma-separated list of ``name`` or ``name=value`` items, e.g.
``host=127.0.0.1:5000,pcsc=Virtual PCD 00 00``. Values may hold spaces but not commas.
A channel that is absent means the hardware behind it is not connected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# What this firmware knows how to talk to; anything else is ignored (and logged).
KNOWN_CHANNELS = (
    "host",
    "pcsc",
    "pcsc_cl",
    "camera",
    "faultlines",
    "maghead",
    "biometric",
    "updates",
    "display",
)


@dataclass(frozen=True)
class Channels:
    wired: Mapping[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        return name in self.wired

    def value(self, name: str) -> str:
        return self.wired.get(name, "")

    def host_endpoint(self) -> tuple[str, int] | None:
        """``host=ADDRESS:PORT`` split, or None when absent or malformed."""
        address, sep, port = self.value("host").rpartition(":")
        if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
            return None
        return address.strip("[]"), int(port)


def with_configured(channels: Channels, config: Mapping[str, object]) -> Channels:
    """The channels of this boot: HIL_CHANNELS, completed by the terminal's own
    configuration (wiring by configuration, for a terminal the rig did not start).

    A channel HIL_CHANNELS gives a value keeps it. Otherwise ``channels.<name>`` (and
    for the host, ``host.address`` with ``host.port``) wires it when set.
    """
    wired = dict(channels.wired)
    for name in KNOWN_CHANNELS:
        if wired.get(name):
            continue
        if name == "host":
            address, port = config.get("host.address", ""), config.get("host.port", 0)
            if address and isinstance(port, int) and port:
                shown = f"[{address}]" if ":" in str(address) else str(address)
                wired[name] = f"{shown}:{port}"
            continue
        value = config.get(f"channels.{name}", "")
        if isinstance(value, str) and value:
            wired[name] = value
    return Channels(wired=wired, ignored=channels.ignored)


def parse_channels(text: str) -> Channels:
    wired: dict[str, str] = {}
    ignored: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name in KNOWN_CHANNELS:
            wired[name] = value.strip()
        else:
            ignored.append(name)
    return Channels(wired=wired, ignored=tuple(ignored))
