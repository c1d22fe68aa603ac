"""The rig's wiring into the terminal, from ``HIL_CHANNELS``.

``HIL_CHANNELS`` is a comma-separated list of ``name`` or ``name=value`` items, e.g.
``host=127.0.0.1:5000,pcsc=Virtual PCD 00 00``. Values may hold spaces but not commas.
A channel that is absent means the hardware behind it is not connected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# What this firmware knows how to talk to; anything else is ignored (and logged).
KNOWN_CHANNELS = ("host", "pcsc", "pcsc_cl", "camera", "faultlines", "maghead", "display")


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
