"""Wiring a terminal the rig did not start: where its channels are, and how it learns it.

A terminal the rig runs as a process (dut ``sim``, ``command``) is handed its channels
in ``HIL_CHANNELS`` at every power-on. A ``physical`` terminal is not, so its rig file
says how it is wired (``dut.wiring``):

- ``"fixed"`` (the default): the lab wired the terminal once, by hand or by its own
  tools, to fixed addresses written in the rig file. Every instrument that serves a
  channel must then listen on a fixed port (``port = 0``, an ephemeral port, is a
  rig-file error: the terminal could not know it).
- ``"config"``: the rig pushes each wired channel over the test port at session start
  (``config.set``; keys below), then reboots the terminal once if anything changed,
  so every boot of the session is a boot with the rig's wiring.

Channel -> configuration keys (docs/test-port-protocol.md, "Wiring by configuration"):
``host`` -> ``host.address`` and ``host.port``; any other channel ``NAME`` ->
``channels.NAME`` with the channel's value (``ADDRESS:PORT``, or a reader name).

Binding on a bench interface: the host simulator and the network fault path listen on
loopback unless the rig file names the address in ``[rig] bench_addresses``; an
address it does not name is a rig-file error. Binding elsewhere is a choice a lab
writes down, never a default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hil.terminal.results import ConfigValue

WiringMode = Literal["config", "fixed"]

#: Option names of listen addresses in driver options (host ``address``, network
#: ``listen``): checked against ``[rig] bench_addresses``.
LISTEN_FIELDS = {"host": "address", "network": "listen"}


def config_for_channels(wired: Mapping[str, str]) -> dict[str, ConfigValue]:
    """The ``config.set`` key/value pairs that wire these channels into a terminal."""
    settings: dict[str, ConfigValue] = {}
    for name, value in sorted(wired.items()):
        if name == "host":
            address, _, port = value.rpartition(":")
            settings["host.address"] = address.strip("[]")
            settings["host.port"] = int(port)
        else:
            settings[f"channels.{name}"] = value
    return settings


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bench_addresses(
    sections: Mapping[str, object], bench_addresses: list[str]
) -> tuple[str, str] | None:
    """The first (field path, reason) of a listen address that is neither loopback nor
    named in ``[rig] bench_addresses``; None when all are allowed."""
    for section, field_name in LISTEN_FIELDS.items():
        address = getattr(sections.get(section), field_name, None)
        if not isinstance(address, str) or is_loopback(address):
            continue
        if address not in bench_addresses:
            return (
                f"{section}.{field_name}",
                f"{address} is not loopback; to bind on a bench interface name it in "
                "rig.bench_addresses (docs/bench-setup.md)",
            )
    return None


def ephemeral_channel_ports(sections: Mapping[str, object]) -> list[str]:
    """Sections whose channel would listen on an ephemeral port (``port = 0``). The
    host behind a network fault path that listens itself is reached through that path,
    so its own port may be anything."""
    proxied = getattr(sections.get("network"), "port", None) is not None
    return [
        section
        for section, config in sections.items()
        if section not in ("dut", "console", "power", "cards")
        and not (section == "host" and proxied)
        and getattr(config, "port", None) == 0
    ]
