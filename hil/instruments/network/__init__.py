"""Network faults between the terminal and the acquirer host.

``NetworkFaults`` is what steps see: blackhole, refuse, reset mid-stream, latency with
jitter, bandwidth limit, slicer, limit_data, corrupt, and ``heal``. It is a context
manager (leaving the block heals), and the rig heals it after every scenario and
attaches the fault timeline to the report. Drivers, chosen by ``[network] driver``:

one module each:

- ``proxy`` (sim default): hil's own asyncio proxy on loopback (``hil.faultproxy``);
  the terminal's ``host`` channel points at the proxy. Every fault is supported and
  measured (bytes through, delay added).
- ``toxiproxy``: drives a lab's Toxiproxy server over its HTTP API, mapping each fault
  to a toxic (see docs/network-faults.md for the mapping and its limits).
- ``netem``: ``tc qdisc ... netem`` on a rig interface; needs root and a kernel with
  netem. Where either is missing the rig refuses to build it with the reason.

Every driver sits in front of the host: by default the ``[host]`` section's simulator
(so it is built after it), or the ``upstream`` its options name.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from pydantic import Field, field_validator

from hil import reporting
from hil.drivers import BuildContext, DriverConfig
from hil.faultproxy import Direction
from hil.instruments.host import AcquirerHost


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


class FaultsBase:
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


def split_address(text: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` (``[v6]:PORT`` too) as a pair; ValueError if it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected ADDRESS:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _check_upstream(value: str | None) -> str | None:
    if value is not None:
        split_address(value)
    return value


class UpstreamConfig(DriverConfig):
    """Options every network driver has: where the host is."""

    upstream: str | None = Field(
        default=None, description="ADDRESS:PORT of the host; default the [host] section's"
    )

    _upstream = field_validator("upstream")(_check_upstream)


def needs_host(config: UpstreamConfig) -> tuple[str, ...]:
    """A network driver needs the [host] section unless it names its upstream."""
    return ("host",) if config.upstream is None else ()


def upstream_of(config: UpstreamConfig, context: BuildContext) -> tuple[str, int]:
    if config.upstream is not None:
        return split_address(config.upstream)
    return context.instrument("host", AcquirerHost).address
