"""Reporting: the core announces what happened, adapters (Allure) listen.

Instruments and steps call the module-level functions here (``action``, ``attach``,
``measure``). They work with no adapter installed, so instruments run from a plain
script; the pytest plugin installs the Allure adapter for a test run. Every text
attachment is PAN-masked here, once, so no adapter can forget it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from hil.masking import mask_data, mask_text


@dataclass(frozen=True)
class Measurement:
    """A measured figure with its limits and unit, as a lab certificate states it."""

    name: str
    value: float
    unit: str
    low: float | None = None
    high: float | None = None

    @property
    def passed(self) -> bool:
        if self.low is not None and self.value < self.low:
            return False
        return not (self.high is not None and self.value > self.high)

    def describe(self) -> str:
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        limit = f" (limit {' and '.join(bounds)} {self.unit})" if bounds else ""
        verdict = "PASS" if self.passed else "FAIL"
        return f"{self.name} = {self.value:.3f} {self.unit}{limit}: {verdict}"


class ReportSink(Protocol):
    """What a reporting adapter implements."""

    def action(
        self, title: str, params: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[None]: ...

    def attach(self, name: str, body: bytes, mime: str, extension: str) -> None: ...

    def measurement(self, measurement: Measurement) -> None: ...


@dataclass
class _Registry:
    sinks: list[ReportSink] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_registry = _Registry()


def add_sink(sink: ReportSink) -> None:
    with _registry.lock:
        _registry.sinks.append(sink)


def remove_sink(sink: ReportSink) -> None:
    with _registry.lock:
        if sink in _registry.sinks:
            _registry.sinks.remove(sink)


def _sinks() -> list[ReportSink]:
    with _registry.lock:
        return list(_registry.sinks)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return mask_text(text)


@contextlib.contextmanager
def action(title: str, **params: Any) -> Iterator[None]:
    """An instrument action or check, shown as a step with its parameters."""
    shown = {name: _show(value) for name, value in params.items()}
    with contextlib.ExitStack() as stack:
        for sink in _sinks():
            stack.enter_context(sink.action(mask_text(title), shown))
        yield


def attach_text(name: str, text: str, *, mime: str = "text/plain", extension: str = "txt") -> None:
    """Attach text to the current scenario, PAN-masked."""
    body = mask_text(text).encode("utf-8")
    for sink in _sinks():
        sink.attach(name, body, mime, extension)


def attach_json(name: str, value: Any) -> None:
    """Attach structured data as JSON, PAN-masked value by value (stays valid JSON)."""
    text = json.dumps(mask_data(value), ensure_ascii=False, indent=2, default=str)
    body = text.encode("utf-8")
    for sink in _sinks():
        sink.attach(name, body, "application/json", "json")


def attach_bytes(name: str, body: bytes, *, mime: str, extension: str) -> None:
    """Attach binary data (images). Callers must never pass card data here."""
    for sink in _sinks():
        sink.attach(name, body, mime, extension)


def measure(
    name: str, value: float, unit: str, *, low: float | None = None, high: float | None = None
) -> Measurement:
    """Record a measurement; the caller asserts ``.passed`` so a miss fails the scenario."""
    measurement = Measurement(name, value, unit, low, high)
    with _registry.lock:
        _registry.measurements.append(measurement)
    for sink in _sinks():
        sink.measurement(measurement)
    return measurement


def take_measurements() -> list[dict[str, Any]]:
    """Measurements recorded since the last call, as plain dicts (for summary.json)."""
    with _registry.lock:
        taken = [dict(asdict(m), passed=m.passed) for m in _registry.measurements]
        _registry.measurements.clear()
    return taken
