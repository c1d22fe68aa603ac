"""Driver ``proxy``: hil's own asyncio fault proxy on loopback, in front of the host.

Every fault kind is supported and measured (bytes through, delay added); the
terminal's ``host`` channel is re-wired to the proxy's address.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hil.drivers import BuildContext, Built, Driver, register
from hil.faultproxy import Direction, Fault, FaultProxy
from hil.instruments.network import FaultsBase, UpstreamConfig, needs_host, upstream_of


class ProxyNetwork(FaultsBase):
    """The built-in fault proxy between terminal and host."""

    def __init__(self, proxy: FaultProxy, *, name: str = "network") -> None:
        self.name = name
        self.proxy = proxy

    @property
    def address(self) -> tuple[str, int]:
        return self.proxy.address

    def _set(self, kind: str, direction: Direction, **params: float) -> None:
        self.proxy.add(Fault(kind, direction, dict(params)))

    def _heal(self) -> None:
        self.proxy.clear()

    def timeline(self) -> list[dict[str, Any]]:
        return self.proxy.timeline()

    def _clear_timeline(self) -> None:
        self.proxy.clear_timeline()

    def stats(self) -> dict[str, Any]:
        """What the proxy did since the last ``reset_stats`` (bytes, delays, resets)."""
        return self.proxy.stats()

    def reset_stats(self) -> None:
        self.proxy.reset_stats()

    def preflight(self) -> str:
        host, port = self.proxy.address
        up_host, up_port = self.proxy.upstream
        faults = [f.kind for f in self.proxy.faults()] or "none"
        return f"proxy {host}:{port} -> {up_host}:{up_port}, faults: {faults}"

    def close(self) -> None:
        self.proxy.stop()


class ProxyNetworkConfig(UpstreamConfig):
    listen: str = Field(default="127.0.0.1", description="listen address")
    port: int = Field(default=0, ge=0, le=65535, description="listen port; 0 = ephemeral")
    seed: int = Field(default=0, description="seed for jitter and corruption")


@register("network", "proxy")
class ProxyNetworkDriver(Driver):
    config_model = ProxyNetworkConfig
    after = ("host",)

    @classmethod
    def requires(cls, config: ProxyNetworkConfig) -> tuple[str, ...]:
        return needs_host(config)

    @classmethod
    def build(cls, config: ProxyNetworkConfig, context: BuildContext) -> Built:
        upstream = upstream_of(config, context)
        proxy = FaultProxy(upstream, listen=(config.listen, config.port), seed=config.seed)
        proxy.start()
        host, port = proxy.address
        return Built(ProxyNetwork(proxy), {"host": f"{host}:{port}"})
