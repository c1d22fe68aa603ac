"""Reporting: the core announces what happened, adapters (Allure) listen.

Instruments and steps call the module-level functions here (``action``, ``attach``,
``measure``). They work with no adapter installed, so instruments run from a plain
script; the pytest plugin installs the Allure adapter for a test run. Every text
attachment is PAN-masked here, once, so no adapter can forget it.

The last gate lives here too (``mask_report``, ``mask_terminal_writer``,
``MaskedAllureFiles``): texts pos-hil does not make itself (pytest's tracebacks with
their arguments and locals, Allure's step parameters and exception text) are masked
where they leave for a file or the console. And what an Allure results folder says
about its run: environment (with the run ID), categories (by pos-hil's blame), and a
"run incomplete" result that stands until the run finishes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pluggy

from hil.masking import mask_data, mask_text
from hil.secrets import SECRET_FIELDS, redact, shown_secret

#: Marks hook implementations for allure_commons' plugin manager (project "allure"),
#: without importing Allure for a plain script that never reports to it.
_allure_hookimpl = pluggy.HookimplMarker("allure")


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
    shown = {
        name: shown_secret(value) if name in SECRET_FIELDS else _show(redact(value))
        for name, value in params.items()
    }
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
    """Record a measurement; the caller asserts ``.passed`` so a miss fails the scenario.

    The value is kept to 9 significant digits, far below any instrument's resolution: a
    float's 16-17 digits put runs of 13 and more digits in the reports, and one in ten of
    those passes Luhn and reads as a card number to any scan of the report (and to the
    PAN mask). The verdict is the rounded value's, so report and verdict agree."""
    measurement = Measurement(name, float(f"{value:.9g}"), unit, low, high)
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


# --- the last gate: every text that leaves for a report or the console ------------------
#
# Masking where text is made (attachments above, summary.json, progress) is not enough:
# pytest renders tracebacks with function arguments and locals, Allure records step
# arguments and exception text, and either can hold a card number a step had in hand.
# So the texts are masked again where they leave: pytest's reports as they are made,
# the terminal writer of plain pytest, and Allure's file writer (a replacement that
# masks every result and attachment before it reaches the disk).


def mask_report(report: Any) -> None:
    """Mask, in place, every text of a pytest test or collection report: its failure
    representation (traceback lines, function arguments, locals, messages), captured
    output sections and user properties. Everything that renders the report later
    (junit, the terminal, Allure's trace) sees only masked text."""
    report.longrepr = _masked_repr(report.longrepr)
    report.sections = [(title, mask_text(content)) for title, content in report.sections]
    properties = getattr(report, "user_properties", None)
    if properties:
        report.user_properties = [(name, mask_data(value)) for name, value in properties]


def _masked_repr(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, tuple):
        return tuple(_masked_repr(v) for v in value)
    if isinstance(value, list):
        return [_masked_repr(v) for v in value]
    # pytest's TerminalRepr family (ExceptionChainRepr, ReprEntry, ReprFuncArgs,
    # ReprLocals, ReprFileLocation, FixtureLookupErrorRepr...): plain attribute bags,
    # some frozen dataclasses, all rendered from their attributes.
    if hasattr(value, "toterminal") and hasattr(value, "__dict__"):
        for name, attribute in vars(value).items():
            object.__setattr__(value, name, _masked_repr(attribute))
    return value


def mask_terminal_writer(writer: Any) -> None:
    """Route everything a pytest ``TerminalWriter`` prints through the PAN mask (plain
    pytest's console: test IDs, tracebacks, the short summary)."""
    write = writer.write
    if getattr(write, "masks_pans", False):
        return

    def masked_write(msg: str, **kwargs: Any) -> None:
        write(mask_text(msg), **kwargs)

    masked_write.masks_pans = True  # type: ignore[attr-defined]
    writer.write = masked_write


ResultAmendment = Callable[[dict[str, Any]], None]


class MaskedAllureFiles:
    """Allure's file writer, with every result and attachment PAN-masked on its way to
    the disk (a drop-in for allure_commons' ``AllureFileLogger``, same file layout).

    ``amend`` may restate a test result before it is written: the plugin sets the
    status and message prefix from its own blame, so Allure's categories follow pos-hil's
    taxonomy and not only the exception's class.
    """

    def __init__(self, report_dir: Path, amend: ResultAmendment | None = None) -> None:
        self.report_dir = Path(report_dir).absolute()
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self._amend = amend
        #: test result uuid -> the file it was written to (for ``restate``)
        self._result_files: dict[str, Path] = {}

    def _write_item(self, item: Any, *, amend: bool = False) -> Path:
        import attr

        data = attr.asdict(item, filter=lambda _, v: v or v is False)
        # Strings only: a result's integers are epoch-millisecond times and counters.
        data = mask_data(data, numbers=False)
        if amend and self._amend is not None:
            self._amend(data)
        path = self.report_dir / str(item.file_pattern).format(prefix=uuid.uuid4())
        write_atomically(path, json.dumps(data, ensure_ascii=False).encode())
        return path

    @_allure_hookimpl
    def report_result(self, result: Any) -> None:
        self._result_files[str(result.uuid)] = self._write_item(result, amend=True)

    def restate(self, result_uuid: str, change: ResultAmendment) -> bool:
        """Rewrite a test result written earlier in this session with ``change`` made
        to it (masked again, in one step); False if there is no such result (any more)."""
        path = self._result_files.get(result_uuid)
        if path is None or not path.is_file():
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        text = json.dumps(mask_data(data, numbers=False), ensure_ascii=False)
        write_atomically(path, text.encode("utf-8"))
        return True

    @_allure_hookimpl
    def report_container(self, container: Any) -> None:
        self._write_item(container)

    @_allure_hookimpl
    def report_globals(self, globals_item: Any) -> None:
        self._write_item(globals_item)

    @_allure_hookimpl
    def report_attached_data(self, body: bytes | str, file_name: str) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        write_atomically(self._attachment_path(file_name), masked_bytes(data, file_name))

    @_allure_hookimpl
    def report_attached_file(self, source: str | Path, file_name: str) -> None:
        data = Path(source).read_bytes()
        write_atomically(self._attachment_path(file_name), masked_bytes(data, file_name))

    def _attachment_path(self, file_name: str) -> Path:
        """Where an attachment goes: under its name as the results that point to it say
        it. Allure names an attachment by a random UUID, and about one in 500 UUIDs holds
        a run of digits the mask takes for a card number ("4415-4913-8504-0c..."); the
        results are masked, so their ``source`` names the masked name, and a file kept
        under the UUID would be an attachment no result finds (one or two a run of the
        shipped suite)."""
        return self.report_dir / mask_text(file_name)


def masked_bytes(data: bytes, name: str = "") -> bytes:
    """An attachment's bytes with PANs masked when they are text (UTF-8); JSON stays
    valid JSON. Binary (images) is left as it is: callers never put card data there."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    masked = mask_text(text)
    if masked == text:
        return data
    if name.endswith(".json"):
        try:
            return json.dumps(mask_data(json.loads(text)), ensure_ascii=False, indent=2).encode()
        except ValueError:
            pass
    return masked.encode("utf-8")


def install_allure_gate(
    report_dir: Path, amend: ResultAmendment | None = None
) -> tuple[MaskedAllureFiles, Callable[[], None]]:
    """Put ``MaskedAllureFiles`` in place of allure-pytest-bdd's file writer for
    ``report_dir``; returns it and the undo (which puts the original back, so allure's
    own cleanup finds it)."""
    import allure_commons
    from allure_commons.logger import AllureFileLogger

    manager = allure_commons.plugin_manager
    target = Path(report_dir).absolute()
    writers = [p for p in manager.get_plugins() if isinstance(p, AllureFileLogger)]
    # Another session's writer (a pytest run inside a test) keeps its own folder.
    mine = [p for p in writers if getattr(p, "_report_dir", target) == target] or writers
    replaced = [(manager.get_name(p), p) for p in mine]
    for _, writer in replaced:
        manager.unregister(writer)
    gate = MaskedAllureFiles(target, amend)
    manager.register(gate)

    def undo() -> None:
        manager.unregister(gate)
        for name, writer in replaced:
            manager.register(writer, name)

    return gate, undo


# --- what an Allure results folder says about its run -------------------------------------

#: Allure categories, first match wins. Broken results carry pos-hil's blame as the
#: first words of their message (see the plugin), so a subclass of RigError or a
#: TypeError lands where it belongs whatever the exception's name.
ALLURE_CATEGORIES: list[dict[str, Any]] = [
    {
        "name": "Run incomplete",
        "matchedStatuses": ["broken"],
        "messageRegex": "(?s)Run incomplete: .*",
    },
    {"name": "Rig fault", "matchedStatuses": ["broken"], "messageRegex": "(?s)Rig fault: .*"},
    {
        "name": "Configuration or authoring error",
        "matchedStatuses": ["broken"],
        "messageRegex": "(?s)Configuration or authoring error: .*",
    },
    {
        "name": "Framework bug (pos-hil or a step; exit 70)",
        "matchedStatuses": ["broken"],
        "messageRegex": "(?s)Framework bug: .*",
    },
    {"name": "Terminal failure", "matchedStatuses": ["failed"]},
]


def write_allure_environment(alluredir: Path, environment: Mapping[str, str]) -> None:
    """The report's environment panel (run ID, rig, terminal, firmware), masked."""
    lines = [f"{key}={mask_text(str(value))}" for key, value in sorted(environment.items())]
    write_atomically(alluredir / "environment.properties", ("\n".join(lines) + "\n").encode())


def write_allure_categories(alluredir: Path) -> None:
    write_atomically(
        alluredir / "categories.json", json.dumps(ALLURE_CATEGORIES, indent=2).encode()
    )


def run_marker_path(alluredir: Path, run_id: str) -> Path:
    """Where the result that stands for the run itself is written (one per run ID)."""
    return alluredir / f"{_run_marker_uuid(run_id)}-result.json"


@functools.lru_cache(maxsize=16)
def _run_marker_uuid(run_id: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"pos-hil:run:{run_id}")


def write_run_marker(alluredir: Path, run_id: str, reason: str, started_ms: int) -> None:
    """A broken result standing for the run, saying why it is not complete. Written
    when the run starts and removed only when it finishes, so results a killed run
    left never read as a whole green run."""
    marker = run_marker_path(alluredir, run_id)
    now_ms = int(time.time() * 1000)
    result = {
        "uuid": marker.name.removesuffix("-result.json"),
        "historyId": f"pos-hil-run-{run_id}",
        "testCaseId": "pos-hil-run",
        "fullName": f"hil run {run_id}",
        "name": f"Run {run_id} is incomplete",
        "status": "broken",
        "statusDetails": {"message": mask_text(reason)},
        "stage": "finished",
        "start": started_ms,
        "stop": max(now_ms, started_ms),
        "labels": [
            {"name": "suite", "value": "hil run"},
            {"name": "feature", "value": "the run itself"},
            {"name": "severity", "value": "blocker"},
        ],
    }
    write_atomically(marker, json.dumps(result, ensure_ascii=False).encode())


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` in one step (a temporary file, then a rename): a reader, or a run
    killed at that moment, sees the old file or the new one, never half of one.

    A rename over the file, not an exchange of names (Linux's ``renameat2``), though the
    exchange costs a quarter of a millisecond less on ext4 for each report rewritten
    after every scenario: ext4 treats a rename over a file as a replacement and writes
    the new file's blocks out with it, so after a power cut the report is the old or the
    new one; after an exchange it can be empty (docs/decisions.md).
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
    os.replace(partial, path)
