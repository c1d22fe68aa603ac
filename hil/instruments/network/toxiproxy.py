"""Driver ``toxiproxy``: a lab's Toxiproxy server in front of the host, over its HTTP API."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from typing import Any

from pydantic import Field

from hil.drivers import BuildContext, Built, Driver, register
from hil.errors import RigError
from hil.faultproxy import Direction
from hil.instruments.network import FaultsBase, UpstreamConfig, needs_host, upstream_of


class ToxiproxyNetwork(FaultsBase):
    """A Toxiproxy server's proxy in front of the host, driven over its HTTP API.

    Mapping (Toxiproxy has no byte corruption and resets by time, not byte count):
    blackhole -> ``timeout`` toxic with timeout 0; refuse -> proxy disabled;
    reset_mid_stream(0) -> ``reset_peer`` timeout 0; latency -> ``latency``
    (latency, jitter); bandwidth -> ``bandwidth`` (rate KB/s); slicer -> ``slicer``
    (average_size, delay in microseconds); limit_data -> ``limit_data`` (bytes).
    reset_mid_stream(after_bytes > 0) and corrupt raise RigError naming the gap.
    """

    def __init__(
        self,
        api: str,
        *,
        proxy_name: str,
        listen: str,
        upstream: str,
        name: str = "network",
        timeout_s: float = 5.0,
    ) -> None:
        self.name = name
        self.api = api.rstrip("/")
        self.proxy_name = proxy_name
        self.upstream = upstream
        self._timeout_s = timeout_s
        self._toxics: list[str] = []
        self._events: list[dict[str, Any]] = []
        self._started = time.monotonic()
        existing = self._call("GET", "/proxies")
        if isinstance(existing, dict) and proxy_name in existing:
            self._call("DELETE", f"/proxies/{proxy_name}")
        created = self._call(
            "POST",
            "/proxies",
            {"name": proxy_name, "listen": listen, "upstream": upstream, "enabled": True},
        )
        if not isinstance(created, dict):
            raise RigError(
                f"toxiproxy POST /proxies: unexpected answer {created!r}", instrument=name
            )
        self.listen = str(created.get("listen", listen)) if isinstance(created, dict) else listen
        self._note("proxy created", listen=self.listen, upstream=upstream)

    @property
    def address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        if host in ("", "0.0.0.0", "[::]"):  # a wildcard listen is reached on loopback
            host = "127.0.0.1"
        return host.strip("[]"), int(port)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:200]
            raise RigError(
                f"toxiproxy {method} {path}: HTTP {e.code}: {detail}",
                instrument=self.name,
                last_io=f"{method} {self.api}{path}",
            ) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RigError(
                f"toxiproxy API {self.api} unreachable: {reason}",
                instrument=self.name,
                last_io=f"{method} {self.api}{path}",
            ) from None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text.strip()  # e.g. /version answers plain text on some releases

    def _note(self, event: str, **data: Any) -> None:
        entry = {"t_ms": round((time.monotonic() - self._started) * 1000, 1), "event": event}
        self._events.append(entry | data)

    def _add_toxic(
        self, kind: str, toxic_type: str, direction: Direction, attrs: dict[str, Any]
    ) -> None:
        streams = ("upstream", "downstream") if direction == "both" else (direction,)
        for stream in streams:
            toxic = f"hil_{kind}_{stream}"
            if toxic in self._toxics:
                self._call("DELETE", f"/proxies/{self.proxy_name}/toxics/{toxic}")
                self._toxics.remove(toxic)
            self._call(
                "POST",
                f"/proxies/{self.proxy_name}/toxics",
                {
                    "name": toxic,
                    "type": toxic_type,
                    "stream": stream,
                    "toxicity": 1.0,
                    "attributes": attrs,
                },
            )
            self._toxics.append(toxic)

    def _set(self, kind: str, direction: Direction, **params: float) -> None:
        if kind == "refuse":
            self._call("POST", f"/proxies/{self.proxy_name}", {"enabled": False})
        elif kind == "blackhole":
            self._add_toxic(kind, "timeout", direction, {"timeout": 0})
        elif kind == "reset":
            if params["after_bytes"]:
                raise RigError(
                    "toxiproxy resets by time, not after a byte count: use after_bytes=0 "
                    "or the proxy driver",
                    instrument=self.name,
                )
            self._add_toxic(kind, "reset_peer", direction, {"timeout": 0})
        elif kind == "latency":
            attrs = {"latency": round(params["ms"]), "jitter": round(params["jitter_ms"])}
            self._add_toxic(kind, "latency", direction, attrs)
        elif kind == "bandwidth":
            rate_kb = max(1, round(params["bytes_per_s"] / 1000))
            self._add_toxic(kind, "bandwidth", direction, {"rate": rate_kb})
        elif kind == "slicer":
            attrs = {
                "average_size": int(params["segment_bytes"]),
                "size_variation": 0,
                "delay": round(params["delay_ms"] * 1000),
            }
            self._add_toxic(kind, "slicer", direction, attrs)
        elif kind == "limit_data":
            self._add_toxic(kind, "limit_data", direction, {"bytes": int(params["after_bytes"])})
        elif kind == "corrupt":
            raise RigError(
                "toxiproxy has no byte-corruption toxic: use the proxy or netem driver",
                instrument=self.name,
            )
        self._note("fault set", kind=kind, direction=direction, **params)

    def _heal(self) -> None:
        for toxic in list(self._toxics):
            self._call("DELETE", f"/proxies/{self.proxy_name}/toxics/{toxic}")
            self._toxics.remove(toxic)
        self._call("POST", f"/proxies/{self.proxy_name}", {"enabled": True})
        self._note("healed")

    def timeline(self) -> list[dict[str, Any]]:
        return list(self._events)

    def _clear_timeline(self) -> None:
        self._events.clear()

    def preflight(self) -> str:
        version = self._call("GET", "/version")
        proxy = self._call("GET", f"/proxies/{self.proxy_name}")
        enabled = proxy.get("enabled") if isinstance(proxy, dict) else "?"
        return (
            f"toxiproxy {self.api} version {version}: {self.listen} -> {self.upstream}, "
            f"enabled {enabled}"
        )

    def close(self) -> None:
        with contextlib.suppress(RigError):  # teardown: the server may already be gone
            self._call("DELETE", f"/proxies/{self.proxy_name}")


class ToxiproxyNetworkConfig(UpstreamConfig):
    api: str = Field(description="Toxiproxy API base URL, e.g. http://127.0.0.1:8474")
    listen: str = Field(default="127.0.0.1", description="proxy listen address")
    port: int = Field(default=0, ge=0, le=65535, description="proxy listen port; 0 = ephemeral")
    proxy_name: str = Field(default="pos-hil-host", min_length=1)


@register("network", "toxiproxy")
class ToxiproxyNetworkDriver(Driver):
    config_model = ToxiproxyNetworkConfig
    after = ("host",)

    @classmethod
    def requires(cls, config: ToxiproxyNetworkConfig) -> tuple[str, ...]:
        return needs_host(config)

    @classmethod
    def build(cls, config: ToxiproxyNetworkConfig, context: BuildContext) -> Built:
        upstream = upstream_of(config, context)
        network = ToxiproxyNetwork(
            config.api,
            proxy_name=config.proxy_name,
            listen=f"{config.listen}:{config.port}",
            upstream=f"{upstream[0]}:{upstream[1]}",
        )
        host, port = network.address
        return Built(network, {"host": f"{host}:{port}"})
