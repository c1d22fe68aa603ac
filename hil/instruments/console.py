"""Terminal test port: requests, responses and events over any pyserial URL.

Driver ``pyserial`` (``[console]``): a pty path, ``/dev/tty*``, ``socket://``,
``rfc2217://``; ``url = "dut:"`` (the default) means the port a process terminal's dut
driver created. A network URL (``rfc2217://`` through ser2net, ``socket://``) is
reopened when its link drops (hil.protocol.reconnect); the transcript coalesces the
small reads such links deliver (``transcript_coalesce_ms``). A console driver for a
terminal that speaks another protocol builds an instrument implementing
``hil.terminal.TerminalPort`` instead (docs/writing-a-driver.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import CommandTimeout, ProtocolError, RigError
from hil.instruments.dut import TestPortProvider, runs_as_process
from hil.protocol.reconnect import ReconnectingPort, is_network_url
from hil.protocol.session import ConsoleSession, Event, EventLog, EventTimeout
from hil.protocol.transcript import Transcript, withhold_args
from hil.protocol.transport import SerialLike, open_serial

#: ``url`` value meaning "the port the dut driver created".
DUT_PORT = "dut:"


@runtime_checkable
class Console(Protocol):
    """The terminal's test port (pos-hil test-port protocol v1) as the rig sees it."""

    name: str
    transcript: Transcript

    @property
    def events(self) -> EventLog: ...

    def request(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


class PyserialConsole:
    """Console driver over pyserial: pty path, /dev/tty*, socket://, rfc2217://."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        ack_timeout: float = 0.5,
        default_timeout: float = 10.0,
        name: str = "console",
        reconnect_attempts: int = 10,
        reconnect_interval: float = 0.5,
        coalesce_window: float = 0.01,
    ) -> None:
        self.name = name
        self.url = url
        self.default_timeout = default_timeout
        self.transcript = Transcript(coalesce_window=coalesce_window)
        port: SerialLike
        self._network: ReconnectingPort | None = None
        if is_network_url(url):
            self._network = ReconnectingPort(
                url,
                baudrate=baudrate,
                attempts=reconnect_attempts,
                interval=reconnect_interval,
                transcript=self.transcript,
                name=name,
            )
            port = self._network
        else:
            port = open_serial(url, baudrate=baudrate)
        self._session = ConsoleSession(
            port, name=name, transcript=self.transcript, ack_timeout=ack_timeout
        )
        if self._network is not None:
            # Before start: every event goes into the log that knows about drops.
            self._session.events = LinkAwareEventLog(self._network, name=name)
        self._session.start()

    @property
    def events(self) -> EventLog:
        return self._session.events

    def request(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        # PIN digits (keypad.press) never reach the report, not even as a parameter.
        with reporting.action(f"{self.name}: {cmd}", **withhold_args(cmd, args or {})):
            drops = self.link_drops
            try:
                return self._session.request(
                    cmd, args, timeout=self.default_timeout if timeout is None else timeout
                )
            except (CommandTimeout, ProtocolError) as e:
                if self.link_drops == drops:
                    raise
                # The answer (or our ACKs) may have been lost with the connection: the
                # rig's link failed, not the terminal.
                raise RigError(
                    f"{self.name}: the link to {self.url} dropped while {cmd!r} was in "
                    f"flight and its answer was lost ({e}); the terminal is not blamed",
                    instrument=self.name,
                    last_io=f"last request: {cmd}",
                ) from e

    @property
    def link_drops(self) -> int:
        """How often the network link to the port dropped so far (0 for a local port)."""
        return self._network.drops if self._network is not None else 0

    @property
    def link_down(self) -> bool:
        """Whether the network link dropped and could not be re-established."""
        return self._network is not None and self._network.failure is not None

    def put_back(self) -> None:
        return None  # the port stays open across scenarios, like a plugged-in cable

    def preflight(self) -> str:
        if self._network is not None and self._network.drops:
            network = self._network
            return f"{self.url}: open ({network.drops} drop(s), {network.reconnects} reconnected)"
        return f"{self.url}: open"

    def close(self) -> None:
        self._session.close()


class LinkAwareEventLog(EventLog):
    """An event log over a network link that may drop: a wait that times out after the
    link dropped is a rig fault, not the terminal's silence.

    The awaited event may have been lost with the link at any time since the cursor was
    taken (``mark``), before the wait began too, so the cursor's time is kept and a
    drop after it turns ``EventTimeout`` into ``RigError``. A wait resumed from a later
    position (a caller skipping events it does not want) is judged from the latest
    cursor at or before that position.
    """

    MARKS_KEPT = 256

    def __init__(self, port: ReconnectingPort, *, name: str) -> None:
        super().__init__()
        self._port = port
        self._name = name
        self._marks: dict[int, float] = {}
        self._marks_lock = threading.Lock()

    def mark(self) -> int:
        cursor = super().mark()
        with self._marks_lock:
            # The latest time: a cursor marked again with no event between belongs to
            # the newer wait.
            self._marks[cursor] = time.monotonic()
            if len(self._marks) > self.MARKS_KEPT:
                del self._marks[min(self._marks)]
        return cursor

    def wait_for(
        self,
        name: str,
        *,
        since: int,
        timeout: float,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Event:
        started = time.monotonic()
        if self._port.failure is not None:
            # The link is down for good: only an event logged before it went can come.
            timeout = 0.0
        try:
            return super().wait_for(name, since=since, timeout=timeout, where=where)
        except EventTimeout as e:
            failure = self._port.failure
            if failure is not None:  # whenever it went down, nothing could arrive since
                raise RigError(
                    f"{self._name}: no {name!r} can arrive: {failure}; the terminal is not blamed",
                    instrument=self._name,
                ) from e
            with self._marks_lock:
                marked = [c for c in self._marks if c <= since]
                cursor_at = self._marks[max(marked)] if marked else started
            dropped_at = self._port.last_drop_at
            if dropped_at is None or dropped_at < min(cursor_at, started):
                raise
            raise RigError(
                f"{self._name}: the link to {self._port.url} dropped while the rig waited "
                f"for {name!r}, which may have been lost with it ({e}); the terminal is "
                "not blamed",
                instrument=self._name,
            ) from e


class PyserialConsoleConfig(DriverConfig):
    url: str = Field(default=DUT_PORT, description="pyserial URL, or 'dut:' for the dut's pty")
    baud: int = Field(default=115200, gt=0)
    ack_timeout_ms: int = Field(default=500, gt=0)
    reconnect_attempts: int = Field(
        default=10,
        ge=0,
        description="network URLs: tries to reopen a dropped link before a rig fault "
        "(0: a drop is a rig fault at once)",
    )
    reconnect_interval_ms: int = Field(
        default=500, ge=0, le=60_000, description="network URLs: wait before each try"
    )
    transcript_coalesce_ms: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="reads (or writes) in one direction this close together share one "
        "transcript line; 0: one line per read",
    )


@register("console", "pyserial")
class PyserialConsoleDriver(Driver):
    config_model = PyserialConsoleConfig

    @classmethod
    def requires(cls, config: PyserialConsoleConfig) -> tuple[str, ...]:
        return ("dut",) if config.url == DUT_PORT else ()

    @classmethod
    def check(cls, config: PyserialConsoleConfig, sections: Mapping[str, DriverConfig]) -> None:
        if config.url == DUT_PORT and not runs_as_process(sections):
            raise ValueError("url: a physical terminal needs a real port URL, not 'dut:'")

    @classmethod
    def build(cls, config: PyserialConsoleConfig, context: BuildContext) -> Built:
        url = config.url
        if url == DUT_PORT:
            url = context.instrument("dut", TestPortProvider).port_url
        try:
            console = PyserialConsole(
                url,
                baudrate=config.baud,
                ack_timeout=config.ack_timeout_ms / 1000,
                default_timeout=context.dut.command_timeout_s,
                reconnect_attempts=config.reconnect_attempts,
                reconnect_interval=config.reconnect_interval_ms / 1000,
                coalesce_window=config.transcript_coalesce_ms / 1000,
            )
        except RigError as e:
            if config.url == DUT_PORT:
                raise
            raise RigError(
                f"console: {e} (is the terminal's test-port cable plugged in, or its "
                "ser2net server up? check console.url in the rig file)",
                instrument="console",
            ) from None
        return Built(console)
