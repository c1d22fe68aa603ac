"""The terminal as scenarios see it: states (off -> booting -> idle) over its instruments.

``Terminal`` is the strategy of the design: "Given the terminal is idle" asks for a
state and this module gets there through the power and console instruments, waiting
on the terminal's own events (never on sleeps). Everything it learns during a boot is
kept in a ``BootRecord`` so a scenario can check it independently afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hil import reporting
from hil.errors import DutError, RigError
from hil.instruments.console import Console
from hil.instruments.power import Power
from hil.protocol.session import Event, EventTimeout


def _boot_failure(data: Mapping[str, Any]) -> str:
    """A sys.boot_failed event as one line: its code and message."""
    return f"{data.get('code')}: {data.get('message')}"


@dataclass
class BootRecord:
    """What one boot showed on the test port, from power-on (or reboot) to ready."""

    started_at: float
    boot: Event | None = None
    failed: Event | None = None
    selfcheck_started: Event | None = None
    items: list[Event] = field(default_factory=list)
    finished: Event | None = None
    ready: Event | None = None
    displays: list[Event] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def boot_reason(self) -> str | None:
        return None if self.boot is None else str(self.boot.data.get("boot_reason"))

    def item_results(self) -> dict[str, dict[str, Any]]:
        return {str(e.data.get("item")): e.data for e in self.items}

    def summary(self) -> dict[str, Any]:
        return {
            "boot_reason": self.boot_reason,
            "boot_failed": None if self.failed is None else self.failed.data,
            "duration_s": round(self.duration_s, 3),
            "items": [e.data for e in self.items],
            "screens": [e.data.get("screen") for e in self.displays],
        }


class Terminal:
    """High-level control of one terminal on a rig."""

    def __init__(self, console: Console, power: Power | None, *, boot_timeout: float) -> None:
        self.console = console
        self.power = power
        self.boot_timeout = boot_timeout
        self.last_boot: BootRecord | None = None

    # --- states -----------------------------------------------------------------

    def power_on(self) -> BootRecord:
        """Switch on and wait until the terminal is ready (or reports a failed boot)."""
        power = self._require_power()
        cursor = self.console.events.mark()
        started = time.monotonic()
        power.on()
        return self.wait_boot(cursor, started)

    def power_off(self) -> None:
        self._require_power().off()

    def power_cut(self) -> None:
        self._require_power().cut()

    def reboot(self) -> BootRecord:
        """Reboot over the test port and wait for the new boot to finish."""
        cursor = self.console.events.mark()
        started = time.monotonic()
        self.console.request("sys.reboot")
        return self.wait_boot(cursor, started)

    def ensure_idle(self) -> None:
        """Get to the idle state from wherever the terminal is, or say why not."""
        if self.power is not None and not self.power.is_on:
            self._require_booted(self.power_on())
            return
        cursor = self.console.events.mark()
        try:
            info = self.console.request("device.info", timeout=2.0)
        except DutError:
            if self.power is None:
                raise
            # Hung or mute terminal: the only way back to a known state is a power cycle.
            self.power.cut()
            self._require_booted(self.power_on())
            return
        state = info.get("state")
        if state == "idle":
            return
        if state in ("booting", "selfcheck"):
            # sys.ready of the boot under way comes after the mark taken before asking.
            self._require_booted(self.wait_boot(cursor, time.monotonic()))
            return
        if state == "recovery":
            failures = self.console.events.find("sys.boot_failed")
            why = _boot_failure(failures[-1].data) if failures else "no sys.boot_failed seen"
            raise DutError(f"terminal is in recovery, not idle: boot failed: {why}")
        raise DutError(f"terminal is in state {state!r}, not idle")

    @staticmethod
    def _require_booted(record: BootRecord) -> None:
        if record.failed is not None:
            raise DutError(f"terminal failed to boot: {_boot_failure(record.failed.data)}")

    def wait_boot(self, cursor: int, started: float) -> BootRecord:
        """Collect boot events from ``cursor`` until sys.ready or sys.boot_failed."""
        events = self.console.events
        record = BootRecord(started_at=started)
        deadline = started + self.boot_timeout
        position = cursor
        while True:
            remaining = deadline - time.monotonic()
            event: Event | None = None
            if remaining > 0:
                try:
                    event = events.wait_for("*", since=position, timeout=remaining)
                except EventTimeout:
                    event = None
            if event is None:
                power_on = self.power.is_on if self.power is not None else True
                if not power_on:
                    raise DutError("terminal died during boot (process exited)")
                raise DutError(
                    f"terminal not ready within {self.boot_timeout:.1f} s of power-on; "
                    f"saw {[e.name for e in events.since(cursor)][-10:]}"
                )
            position = event.index + 1
            self._file(record, event)
            if event.name in ("sys.ready", "sys.boot_failed"):
                break
        record.duration_s = time.monotonic() - started
        self.last_boot = record
        reporting.attach_json("boot record", record.summary())
        return record

    @staticmethod
    def _file(record: BootRecord, event: Event) -> None:
        match event.name:
            case "sys.boot":
                record.boot = event
            case "sys.boot_failed":
                record.failed = event
            case "selfcheck.started":
                record.selfcheck_started = event
            case "selfcheck.item":
                record.items.append(event)
            case "selfcheck.finished":
                record.finished = event
            case "sys.ready":
                record.ready = event
            case "display.changed":
                record.displays.append(event)
            case _:
                pass

    # --- commands ---------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return self.console.request("device.info")

    def selfcheck(self, items: list[str] | None = None, *, timeout: float = 60.0) -> dict[str, Any]:
        args: dict[str, Any] = {} if items is None else {"items": items}
        return self.console.request("selfcheck.run", args, timeout=timeout)

    def display(self) -> dict[str, Any]:
        return self.console.request("display.read")

    def log(self, since: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        result = self.console.request("log.read", {"since": since, "limit": limit})
        entries = result.get("entries", [])
        return [dict(e) for e in entries] if isinstance(entries, list) else []

    def config_get(self, key: str) -> Any:
        return self.console.request("config.get", {"key": key}).get("value")

    def config_set(self, key: str, value: Any) -> Mapping[str, Any]:
        return self.console.request("config.set", {"key": key, "value": value})

    def _require_power(self) -> Power:
        if self.power is None:
            raise RigError("this rig has no power instrument", instrument="power")
        return self.power
