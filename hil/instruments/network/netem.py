"""Driver ``netem``: ``tc qdisc ... netem`` shaping a rig interface (root, kernel netem)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

from pydantic import Field

from hil.drivers import BuildContext, Built, Driver, register
from hil.errors import RigError
from hil.faultproxy import Direction
from hil.instruments.network import FaultsBase, UpstreamConfig, needs_host, upstream_of


def netem_unavailable(interface: str) -> str | None:
    """Why ``tc ... netem`` cannot shape ``interface`` here, or None if it can."""
    if os.geteuid() != 0:
        return "tc netem needs root"
    tc = shutil.which("tc")
    if tc is None:
        return "tc (iproute2) is not installed"
    probe = subprocess.run(
        [tc, "qdisc", "add", "dev", interface, "root", "netem", "delay", "0ms"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"tc netem on {interface} failed: {probe.stderr.strip() or probe.returncode}"
    subprocess.run([tc, "qdisc", "del", "dev", interface, "root"], capture_output=True, check=False)
    return None


class NetemNetwork(FaultsBase):
    """``tc qdisc replace dev IFACE root netem ...``: egress of a rig interface.

    netem shapes a whole interface, not one connection: latency, jitter, bandwidth
    (``rate``), loss 100% for blackhole and ``corrupt``; it cannot refuse, reset,
    slice or cut after N bytes (those raise RigError). Direction is the interface's
    egress; on ``lo`` that is both ways.
    """

    def __init__(self, interface: str, *, name: str = "network") -> None:
        reason = netem_unavailable(interface)
        if reason is not None:
            raise RigError(f"netem driver unavailable: {reason}", instrument=name)
        self.name = name
        self.interface = interface
        self._options: dict[str, list[str]] = {}
        self._events: list[dict[str, Any]] = []
        self._started = time.monotonic()

    def _tc(self, *args: str) -> None:
        result = subprocess.run(["tc", "qdisc", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0 and args[0] != "del":
            raise RigError(
                f"tc qdisc {' '.join(args)}: {result.stderr.strip()}", instrument=self.name
            )

    def _set(self, kind: str, direction: Direction, **params: float) -> None:
        if kind == "blackhole":
            self._options[kind] = ["loss", "100%"]
        elif kind == "latency":
            self._options[kind] = ["delay", f"{params['ms']}ms", f"{params['jitter_ms']}ms"]
        elif kind == "bandwidth":
            self._options[kind] = ["rate", f"{int(params['bytes_per_s'] * 8)}bit"]
        elif kind == "corrupt":
            self._options[kind] = ["corrupt", f"{params['rate'] * 100:g}%"]
        else:
            raise RigError(f"netem cannot {kind}: use the proxy driver", instrument=self.name)
        options = [word for words in self._options.values() for word in words]
        self._tc("replace", "dev", self.interface, "root", "netem", *options)
        self._events.append(
            {
                "t_ms": round((time.monotonic() - self._started) * 1000, 1),
                "event": "fault set",
                "kind": kind,
                **params,
            }
        )

    def _heal(self) -> None:
        if self._options:
            self._tc("del", "dev", self.interface, "root")
            self._options.clear()
            self._events.append(
                {"t_ms": round((time.monotonic() - self._started) * 1000, 1), "event": "healed"}
            )

    def timeline(self) -> list[dict[str, Any]]:
        return list(self._events)

    def _clear_timeline(self) -> None:
        self._events.clear()

    def preflight(self) -> str:
        options = [word for words in self._options.values() for word in words]
        return f"netem on {self.interface}: {' '.join(options) or 'none'}"

    def close(self) -> None:
        self._heal()


class NetemNetworkConfig(UpstreamConfig):
    interface: str = Field(description="interface to shape, e.g. lo")


@register("network", "netem")
class NetemNetworkDriver(Driver):
    config_model = NetemNetworkConfig
    after = ("host",)

    @classmethod
    def requires(cls, config: NetemNetworkConfig) -> tuple[str, ...]:
        return needs_host(config)

    @classmethod
    def build(cls, config: NetemNetworkConfig, context: BuildContext) -> Built:
        host, port = upstream_of(config, context)
        # netem shapes the interface; the terminal dials the host itself
        return Built(NetemNetwork(config.interface), {"host": f"{host}:{port}"})
