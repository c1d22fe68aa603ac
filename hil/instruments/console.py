"""Terminal test port: requests, responses and events over any pyserial URL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from hil import reporting
from hil.protocol.session import ConsoleSession, EventLog
from hil.protocol.transcript import Transcript
from hil.protocol.transport import open_serial


@runtime_checkable
class Console(Protocol):
    """The terminal's test port as steps see it."""

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
    ) -> None:
        self.name = name
        self.url = url
        self.default_timeout = default_timeout
        self.transcript = Transcript()
        port = open_serial(url, baudrate=baudrate)
        self._session = ConsoleSession(
            port, name=name, transcript=self.transcript, ack_timeout=ack_timeout
        )
        self._session.start()

    @property
    def events(self) -> EventLog:
        return self._session.events

    def request(
        self, cmd: str, args: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        with reporting.action(f"{self.name}: {cmd}", **dict(args or {})):
            return self._session.request(
                cmd, args, timeout=self.default_timeout if timeout is None else timeout
            )

    def close(self) -> None:
        self._session.close()
