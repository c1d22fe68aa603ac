"""Network faults between the terminal and the acquirer host.

``NetworkFaults`` is what steps see: blackhole, refuse, reset mid-stream, latency with
jitter, bandwidth limit, slicer, limit_data, corrupt, and ``heal``. It is a context
manager (leaving the block heals), and the rig heals it after every scenario and
attaches the fault timeline to the report. Drivers, chosen by ``[network] driver``:

- ``proxy`` (sim default): hil's own asyncio proxy on loopback (``hil.faultproxy``);
  the terminal's ``host`` channel points at the proxy. Every fault is supported and
  measured (bytes through, delay added).
- ``toxiproxy``: drives a lab's Toxiproxy server over its HTTP API, mapping each fault
  to a toxic (see docs/network-faults.md for the mapping and its limits).
- ``netem``: ``tc qdisc ... netem`` on a rig interface; needs root and a kernel with
  netem. Where either is missing the rig refuses to build it with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from hil import reporting
from hil.errors import ConfigError, RigError
from hil.faultproxy import Direction, Fault, FaultProxy
from hil.instruments.base import Built, register_builder

if TYPE_CHECKING:
    from hil.config import NetworkConfig
    from hil.rig import Rig


@runtime_checkable
class NetworkFaults(Protocol):
    """The link between terminal and host, as steps see it."""

    name: str

    def blackhole(self, direction: Direction = "both") -> None:
        """Accept connections, then drop every byte."""

    def refuse(self) -> None:
        """New connections are refused (nothing listens)."""

    def reset_mid_stream(self, after_bytes: int = 0, direction: Direction = "downstream") -> None:
        """Abort the connection with a TCP RST after ``after_bytes`` in ``direction``."""

    def latency(self, ms: float, jitter_ms: float = 0.0, direction: Direction = "both") -> None:
        """Hold every chunk ``ms`` (+/- ``jitter_ms``) in ``direction``."""

    def bandwidth(self, bytes_per_s: int, direction: Direction = "both") -> None: ...

    def slicer(self, segment_bytes: int, delay_ms: float, direction: Direction = "both") -> None:
        """Deliver in ``segment_bytes`` pieces, ``delay_ms`` apart."""

    def limit_data(self, max_bytes: int, direction: Direction = "downstream") -> None:
        """Close the connection once ``max_bytes`` went through in ``direction``."""

    def corrupt(self, rate: float, direction: Direction = "downstream") -> None:
        """Flip bytes (XOR 0xFF) with probability ``rate`` each."""

    def heal(self) -> None:
        """No fault in force any more."""

    def timeline(self) -> list[dict[str, Any]]: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


def _check_direction(direction: str) -> Direction:
    if direction not in ("upstream", "downstream", "both"):
        raise ValueError(f"direction must be upstream, downstream or both, got {direction!r}")
    return direction  # type: ignore[return-value]


def _positive(name: str, value: float, *, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value}")


class _FaultsBase:
    """Shared behaviour: validation, report steps, context manager, put back."""

    name: str

    def _set(self, kind: str, direction: Direction, **params: float) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        raise NotImplementedError

    def timeline(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _clear_timeline(self) -> None:
        raise NotImplementedError

    def _apply(self, kind: str, direction: Direction, **params: float) -> None:
        _check_direction(direction)
        with reporting.action(f"{self.name}: {kind}", direction=direction, **params):
            self._set(kind, direction, **params)

    def blackhole(self, direction: Direction = "both") -> None:
        self._apply("blackhole", direction)

    def refuse(self) -> None:
        self._apply("refuse", "both")

    def reset_mid_stream(self, after_bytes: int = 0, direction: Direction = "downstream") -> None:
        _positive("after_bytes", after_bytes, zero_ok=True)
        self._apply("reset", direction, after_bytes=after_bytes)

    def latency(self, ms: float, jitter_ms: float = 0.0, direction: Direction = "both") -> None:
        _positive("ms", ms, zero_ok=True)
        _positive("jitter_ms", jitter_ms, zero_ok=True)
        self._apply("latency", direction, ms=ms, jitter_ms=jitter_ms)

    def bandwidth(self, bytes_per_s: int, direction: Direction = "both") -> None:
        _positive("bytes_per_s", bytes_per_s)
        self._apply("bandwidth", direction, bytes_per_s=bytes_per_s)

    def slicer(self, segment_bytes: int, delay_ms: float, direction: Direction = "both") -> None:
        _positive("segment_bytes", segment_bytes)
        _positive("delay_ms", delay_ms, zero_ok=True)
        self._apply("slicer", direction, segment_bytes=segment_bytes, delay_ms=delay_ms)

    def limit_data(self, max_bytes: int, direction: Direction = "downstream") -> None:
        _positive("max_bytes", max_bytes, zero_ok=True)
        self._apply("limit_data", direction, after_bytes=max_bytes)

    def corrupt(self, rate: float, direction: Direction = "downstream") -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        self._apply("corrupt", direction, rate=rate)

    def heal(self) -> None:
        with reporting.action(f"{self.name}: heal"):
            self._heal()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.heal()

    def put_back(self) -> None:
        """Heal, attach the fault timeline of the scenario, start a new one."""
        self._heal()
        events = self.timeline()
        if any(e.get("event") != "listening" for e in events):
            reporting.attach_json(f"{self.name} fault timeline", events)
        self._clear_timeline()


# --- proxy ------------------------------------------------------------------------------


class ProxyNetwork(_FaultsBase):
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


# --- toxiproxy --------------------------------------------------------------------------


class ToxiproxyNetwork(_FaultsBase):
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


# --- netem ------------------------------------------------------------------------------


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


class NetemNetwork(_FaultsBase):
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


# --- builder ----------------------------------------------------------------------------


def _split_address(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: expected ADDRESS:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _upstream(rig: Rig, config: NetworkConfig) -> tuple[str, int]:
    where = f"{rig.config.source.name}: network.upstream"
    if config.upstream is not None:
        return _split_address(config.upstream, where)
    host = rig.instruments.get("host")
    address = getattr(host, "address", None)
    if address is None:
        raise ConfigError(f"{where}: required when the rig has no [host] section")
    return str(address[0]), int(address[1])


def build_network(rig: Rig, config: NetworkConfig) -> Built:
    upstream = _upstream(rig, config)
    if config.driver == "proxy":
        proxy = FaultProxy(upstream, listen=(config.listen, config.port), seed=config.seed)
        proxy.start()
        network: ProxyNetwork | ToxiproxyNetwork | NetemNetwork = ProxyNetwork(proxy)
        address = proxy.address
    elif config.driver == "toxiproxy":
        assert config.api is not None
        network = ToxiproxyNetwork(
            config.api,
            proxy_name=config.proxy_name,
            listen=f"{config.listen}:{config.port}",
            upstream=f"{upstream[0]}:{upstream[1]}",
        )
        address = network.address
    else:
        assert config.interface is not None
        network = NetemNetwork(config.interface)
        address = upstream  # netem shapes the interface; the terminal dials the host
    return Built(network, {"host": f"{address[0]}:{address[1]}"})


register_builder("network", build_network)
