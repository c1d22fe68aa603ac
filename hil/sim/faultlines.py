"""The terminal's hardware fault lines, read from the rig's ``faultlines`` channel.

The rig drives levels: ``{"type":"lines","version":N,"lines":{"reader_power":true,...}}``
(true = the fault is asserted); the terminal answers ``{"type":"ack","version":N}``
once it has applied them. Lines it knows:

- ``reader_power``: the card reader's supply is cut (card_reader self-check
  ``E_READER_POWER``; cards are not read; payments refused with ``E_READER_FAULT``)
- ``supply_low``: the main supply reads ``SUPPLY_LOW_V`` (power self-check ``E_POWER_LOW``)
- ``tamper``: the tamper switch is open (tamper self-check ``E_TAMPER``; payments
  refused with ``E_TAMPERED``)
- ``battery_low``: the battery gauge reads ``BATTERY_LOW_PCT`` (power ``E_POWER_BATTERY_LOW``)
- ``flash_corrupt``: every read of the firmware image from flash comes back with one bit
  flipped (memory ``E_MEM_INTEGRITY``; payments refused)
- ``flash_full``: the rig fills the flash partition (memory ``E_MEM_FLASH_LOW``)
- ``ram_pressure``: the terminal's memory fills (memory ``E_MEM_RAM``)
- ``cpu_load``: a load generator keeps the terminal's CPU busy (performance ``E_PERF_CPU``)
- ``system_load``: the load monitor reads ``LOAD_PER_CPU_UNDER_FAULT`` per CPU
  (performance ``E_PERF_LOAD``)
- ``log_io``: the log partition answers every access with an I/O error (logs ``E_LOG_IO``)
- ``log_full``: the log partition has no space left (logs ``E_LOG_IO``)
- ``secure_element``: the secure element holding the admin record does not answer
  (security ``E_SEC_NO_PASSWORD``)
- ``app_crash``, ``app_hang``: edge-triggered, not levels: each rising edge makes the
  payment application crash or hang once (its watchdog logs ``E_APP_CRASH`` or
  ``E_APP_HANG`` and restarts it; ``hil.sim.watchdog``)

Lines that stand for a sensor reading (supply, battery, load, tamper switch) set the
reading; lines that stand for a condition the terminal can suffer for real (flash full,
memory pressure, CPU load, log storage errors) make the terminal suffer it, and its
checks measure it (``hil.sim.hardware``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from hil.contract.selfcheck import FAULT_LINES
from hil.jsonlines.terminal_end import TerminalEndClient

SUPPLY_LOW_V = 9.6  # what the supply monitor reads while the rig holds supply_low
BATTERY_LOW_PCT = 10  # what the battery gauge reads while the rig holds battery_low
LOAD_PER_CPU_UNDER_FAULT = 5.0  # what the load monitor reads while the rig holds system_load
FIRST_STATE_WAIT_S = 2.0


class FaultLineInputs:
    """Thread-safe view of the fault lines; ``readable`` once a state arrived."""

    def __init__(self, value: str) -> None:
        self._lock = threading.Lock()
        self._lines: dict[str, bool] = dict.fromkeys(FAULT_LINES, False)
        self._version = -1
        self._first = threading.Event()
        self._listeners: list[Callable[[dict[str, bool]], None]] = []
        self._link = TerminalEndClient("faultlines", value, self._on_message)

    def start(self, wait_s: float = FIRST_STATE_WAIT_S) -> None:
        """Connect and wait (bounded) for the first state, so boot sees real levels."""
        self._link.start()
        self._first.wait(wait_s if self._link.address is not None else 0)

    def on_change(self, listener: Callable[[dict[str, bool]], None]) -> None:
        self._listeners.append(listener)

    def _on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        if message.get("type") != "lines" or not isinstance(message.get("lines"), dict):
            return None
        version = message.get("version")
        levels = {
            name: bool(level)
            for name, level in message["lines"].items()
            if name in FAULT_LINES and isinstance(level, bool)
        }
        with self._lock:
            self._lines.update(levels)
            self._version = version if isinstance(version, int) else self._version
            snapshot = dict(self._lines)
        self._first.set()
        for listener in self._listeners:
            listener(snapshot)
        return {"type": "ack", "version": version}

    @property
    def readable(self) -> bool:
        return self._first.is_set() and self._link.connected

    @property
    def reason(self) -> str:
        if not self._link.connected:
            return self._link.reason or "not connected"
        return "" if self._first.is_set() else "no line state received"

    def is_set(self, name: str) -> bool:
        with self._lock:
            return self._lines.get(name, False)

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._lines)

    def close(self) -> None:
        self._link.close()
