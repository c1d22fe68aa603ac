"""A TCP proxy on loopback that breaks the link on demand: hil's built-in fault path.

The terminal dials the proxy; the proxy dials the host and copies bytes both ways,
applying the faults in force to every chunk it reads:

- ``blackhole``: accept, then drop every byte (the connection stays open, silent)
- ``refuse``: stop listening, so a connect gets ECONNREFUSED (listening again on clear)
- ``reset``: after N bytes in a direction, abort both sides with a TCP RST
- ``latency``: hold each chunk ``ms`` (+/- uniform ``jitter_ms``), order kept
- ``bandwidth``: pace a direction to ``bytes_per_s``
- ``slicer``: cut chunks into ``segment_bytes`` pieces, ``delay_ms`` apart
- ``limit_data``: close the connection once N bytes went through in a direction
- ``corrupt``: XOR bytes with 0xFF at ``rate`` (seeded, so runs repeat)

Directions: ``upstream`` is terminal to host, ``downstream`` host to terminal.
It counts what it did (bytes read and written per direction, bytes dropped and
corrupted, resets, cuts, the delay it added to each chunk) so a test can check the
fault happened instead of trusting it, and keeps a timeline for the report.
A plain library: runs on its own loop thread, every public method is synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from hil.tcpservice import ClientConnection, TcpService

Direction = Literal["upstream", "downstream", "both"]
FaultKind = Literal[
    "blackhole", "refuse", "reset", "latency", "bandwidth", "slicer", "limit_data", "corrupt"
]
FAULT_KINDS: tuple[str, ...] = (
    "blackhole",
    "refuse",
    "reset",
    "latency",
    "bandwidth",
    "slicer",
    "limit_data",
    "corrupt",
)
DIRECTIONS = ("upstream", "downstream")
READ_SIZE = 65536
TIMELINE_MAX = 2000


@dataclass(frozen=True)
class Fault:
    kind: str
    direction: Direction = "both"
    params: dict[str, float] = field(default_factory=dict)

    def applies(self, direction: str) -> bool:
        return self.direction in ("both", direction)


@dataclass
class DirectionStats:
    bytes_read: int = 0  # from the sender
    bytes_written: int = 0  # to the receiver
    bytes_dropped: int = 0
    bytes_corrupted: int = 0
    chunks: int = 0
    # Delay added per chunk (read to write), as running figures: a soak must not grow it.
    delay_ms_min: float | None = None
    delay_ms_max: float | None = None
    delay_ms_total: float = 0.0

    def add_delay(self, ms: float) -> None:
        self.delay_ms_min = ms if self.delay_ms_min is None else min(self.delay_ms_min, ms)
        self.delay_ms_max = ms if self.delay_ms_max is None else max(self.delay_ms_max, ms)
        self.delay_ms_total += ms

    def snapshot(self) -> dict[str, Any]:
        def shown(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        mean = self.delay_ms_total / self.chunks if self.chunks else None
        return {
            "bytes_read": self.bytes_read,
            "bytes_written": self.bytes_written,
            "bytes_dropped": self.bytes_dropped,
            "bytes_corrupted": self.bytes_corrupted,
            "chunks": self.chunks,
            "delay_ms_min": shown(self.delay_ms_min),
            "delay_ms_max": shown(self.delay_ms_max),
            "delay_ms_mean": shown(mean),
        }


@dataclass
class ProxyStats:
    connections: int = 0
    upstream_failures: int = 0
    resets: int = 0
    cuts: int = 0
    directions: dict[str, DirectionStats] = field(
        default_factory=lambda: {d: DirectionStats() for d in DIRECTIONS}
    )

    def snapshot(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "upstream_failures": self.upstream_failures,
            "resets": self.resets,
            "cuts": self.cuts,
            **{d: s.snapshot() for d, s in self.directions.items()},
        }


class _Conn:
    """One proxied link: the terminal's connection and what the faults track for it."""

    def __init__(self, client: ClientConnection) -> None:
        self.client = client
        self.number = client.number
        self.passed = dict.fromkeys(DIRECTIONS, 0)  # bytes let through, per direction
        self.free_at = dict.fromkeys(DIRECTIONS, 0.0)  # bandwidth/ordering horizon

    @property
    def closed(self) -> bool:
        return self.client.closed


_EOF = object()


class FaultProxy(TcpService):
    """Proxy ``listen`` -> ``upstream``; ``start`` returns the address it listens on."""

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        seed: int = 0,
        name: str = "network",
    ) -> None:
        super().__init__(
            listen=listen,
            name=name,
            description="fault proxy",
            thread_name=f"hil-{name}-proxy",
            abort_on_stop=True,
        )
        self.upstream = upstream
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stats = ProxyStats()
        self._timeline: list[dict[str, Any]] = []
        self._started = time.monotonic()

    def start(self) -> tuple[str, int]:
        address = super().start()
        self._note("listening", address=f"{address[0]}:{address[1]}")
        return address

    # --- faults ----------------------------------------------------------------------

    def add(self, fault: Fault) -> None:
        """Put ``fault`` in force (replacing one of the same kind and direction)."""
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault.kind!r}; known: {FAULT_KINDS}")
        with self._lock:
            self._faults = [
                f
                for f in self._faults
                if not (f.kind == fault.kind and f.direction == fault.direction)
            ]
            self._faults.append(fault)
        self._note("fault set", kind=fault.kind, direction=fault.direction, **fault.params)
        if fault.kind == "refuse":
            self._stop_listening()

    def clear(self) -> None:
        """Heal: no fault in force, listening again, silenced connections closed."""
        with self._lock:
            cleared = self._faults
            self._faults = []
        if any(f.kind == "refuse" for f in cleared):
            self._listen_again()
        if any(f.kind == "blackhole" for f in cleared):
            # Bytes already swallowed are gone; a link the terminal still holds is dead.
            self._close_all_clients()
        if cleared:
            self._note("healed", cleared=[f.kind for f in cleared])

    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _active(self, direction: str) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.applies(direction)]

    # --- observation -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.snapshot()

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = ProxyStats()

    def timeline(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._timeline)

    def clear_timeline(self) -> None:
        with self._lock:
            self._timeline.clear()

    def _note(self, event: str, **data: Any) -> None:
        entry = {"t_ms": round((time.monotonic() - self._started) * 1000, 1), "event": event}
        entry.update(data)
        with self._lock:
            if len(self._timeline) < TIMELINE_MAX:
                self._timeline.append(entry)

    # --- the data path ---------------------------------------------------------------

    async def serve_client(
        self, client: ClientConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conn = _Conn(client)
        with self._lock:
            self._stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as e:
            with self._lock:
                self._stats.upstream_failures += 1
            self._note("upstream unreachable", conn=conn.number, error=str(e))
            client.close(abort=True)
            return
        client.attach(up_writer)
        self._note("connection", conn=conn.number)
        await asyncio.gather(
            self._pump(conn, "upstream", reader, up_writer),
            self._pump(conn, "downstream", up_reader, writer),
            return_exceptions=True,
        )

    async def _pump(
        self,
        conn: _Conn,
        direction: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        deliver = asyncio.ensure_future(self._deliver(conn, direction, queue, writer))
        loop = asyncio.get_running_loop()
        try:
            while not conn.closed:
                try:
                    data = await reader.read(READ_SIZE)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                now = loop.time()
                stats = self._stats.directions[direction]
                with self._lock:
                    stats.bytes_read += len(data)
                for piece, at in self._shape(conn, direction, data, now):
                    await queue.put((at, now, piece))
                if conn.closed:
                    break
        finally:
            await queue.put(_EOF)
            with contextlib.suppress(Exception):
                await deliver

    def _shape(
        self, conn: _Conn, direction: str, data: bytes, now: float
    ) -> list[tuple[bytes, float]]:
        """Apply the faults in force to one chunk: what to deliver, and when."""
        faults = {f.kind: f for f in self._active(direction)}
        stats = self._stats.directions[direction]
        if "blackhole" in faults:
            with self._lock:
                stats.bytes_dropped += len(data)
            return []
        cut_after: str | None = None
        for kind in ("reset", "limit_data"):
            fault = faults.get(kind)
            if fault is None:
                continue
            allowed = int(fault.params["after_bytes"]) - conn.passed[direction]
            if len(data) >= allowed:
                with self._lock:
                    stats.bytes_dropped += len(data) - max(allowed, 0)
                data = data[: max(allowed, 0)]
                cut_after = kind
                break
        conn.passed[direction] += len(data)
        if "corrupt" in faults and data:
            rate = faults["corrupt"].params["rate"]
            mutable = bytearray(data)
            flipped = 0
            for i in range(len(mutable)):
                if self._rng.random() < rate:
                    mutable[i] ^= 0xFF
                    flipped += 1
            data = bytes(mutable)
            with self._lock:
                stats.bytes_corrupted += flipped
        pieces = [data] if data else []
        gap_s = 0.0
        if "slicer" in faults and data:
            size = max(1, int(faults["slicer"].params["segment_bytes"]))
            gap_s = faults["slicer"].params["delay_ms"] / 1000
            pieces = [data[i : i + size] for i in range(0, len(data), size)]
        delay_s = 0.0
        if "latency" in faults:
            latency = faults["latency"].params
            jitter = latency.get("jitter_ms", 0.0)
            delay_s = max(0.0, latency["ms"] + self._rng.uniform(-jitter, jitter)) / 1000
        rate = faults["bandwidth"].params["bytes_per_s"] if "bandwidth" in faults else 0.0
        out: list[tuple[bytes, float]] = []
        at = now + delay_s
        for n, piece in enumerate(pieces):
            if n:
                at += gap_s
            if rate:
                start = max(at, conn.free_at[direction])
                at = start + len(piece) / rate
            at = max(at, conn.free_at[direction])  # never overtake an earlier chunk
            conn.free_at[direction] = at
            out.append((piece, at))
        if cut_after is not None:
            out.append((b"", -1.0 if cut_after == "reset" else -2.0))
        return out

    async def _deliver(
        self, conn: _Conn, direction: str, queue: asyncio.Queue[Any], writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        stats = self._stats.directions[direction]
        while True:
            item = await queue.get()
            if item is _EOF:
                if not conn.closed:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                return
            at, read_at, piece = item
            if at < 0:  # the cut marker: everything before it was delivered
                if at == -1.0:
                    with self._lock:
                        self._stats.resets += 1
                    self._note(
                        "reset sent",
                        conn=conn.number,
                        direction=direction,
                        after_bytes=conn.passed[direction],
                    )
                    conn.client.close(abort=True)
                else:
                    with self._lock:
                        self._stats.cuts += 1
                    self._note(
                        "data limit reached",
                        conn=conn.number,
                        direction=direction,
                        after_bytes=conn.passed[direction],
                    )
                    conn.client.close(abort=False)
                return
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if conn.closed:
                return
            # Counted before the write: a reader that has the bytes must see them counted.
            with self._lock:
                stats.bytes_written += len(piece)
                stats.chunks += 1
                stats.add_delay((loop.time() - read_at) * 1000)
            try:
                writer.write(piece)
                await writer.drain()
            except (ConnectionError, OSError):
                return
