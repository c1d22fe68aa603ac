"""pytest plugin: options, fixtures and hooks; the work is done by hil's library.

Loaded through the ``pytest11`` entry point. It stays inert until a test asks for a
rig fixture, so installing pos-hil never changes unrelated test suites.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hil import reporting
from hil.errors import ConfigError, RigError
from hil.masking import mask_data, mask_text
from hil.rig import Rig, default_rig_path
from hil.terminal import Terminal

log = logging.getLogger(__name__)

#: Gherkin tags of the form ``@name:value`` that become Allure labels.
LABEL_TAGS = ("epic", "story", "severity", "feature")

_summary_key = pytest.StashKey["RunSummary"]()
_rig_key = pytest.StashKey["Rig"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "pos-hil test rig")
    group.addoption("--rig", default=None, help="rig file (TOML); default rigs/sim.toml")
    group.addoption("--firmware", default=None, help="firmware image to flash before the run")
    group.addoption(
        "--hil-summary", default=None, help="write a per-scenario summary JSON to this path"
    )
    group.addoption(
        "--hil-progress",
        action="store_true",
        default=False,
        help="live progress and a summary table (used by 'hil run')",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hil_requires(*kinds): skip unless the rig has these instruments or channels"
    )
    for module in step_modules():
        config.pluginmanager.import_plugin(module)
    summary = RunSummary()
    config.stash[_summary_key] = summary
    config.pluginmanager.register(summary, "hil-summary")
    if config.getoption("hil_progress"):
        from hil.progress import LiveProgress

        config.pluginmanager.register(LiveProgress(config, summary), "hil-progress")
    if getattr(config.option, "allure_report_dir", None):
        sink = AllureSink()
        reporting.add_sink(sink)
        config.add_cleanup(lambda: reporting.remove_sink(sink))


@pytest.hookimpl(tryfirst=True)
def pytest_bdd_apply_tag(tag: str, function: Callable[..., object]) -> object:
    name, _, value = tag.partition(":")
    if value and name in LABEL_TAGS:
        return pytest.mark.allure_label(value, label_type=name)(function)
    if value and name == "requires":
        return pytest.mark.hil_requires(*value.split(","))(function)
    return None


def step_modules() -> list[str]:
    """Every module of hil.steps: a new area's steps load by existing."""
    import pkgutil

    import hil.steps

    return [f"hil.steps.{m.name}" for m in pkgutil.iter_modules(hil.steps.__path__)]


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def hil_rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    """The rig for the whole session: started once, torn down even after Ctrl-C."""
    config = request.config
    rig_option = config.getoption("rig")
    firmware_option = config.getoption("firmware")
    try:
        rig = Rig.from_file(
            Path(rig_option) if rig_option else default_rig_path(),
            firmware=Path(firmware_option) if firmware_option else None,
        )
    except ConfigError as e:
        pytest.exit(f"configuration error: {e}", returncode=2)
    config.stash[_rig_key] = rig
    try:
        rig.start()
        yield rig
    finally:
        rig.close()


@pytest.fixture
def hil_requirements(request: pytest.FixtureRequest, hil_rig: Rig) -> None:
    for marker in request.node.iter_markers("hil_requires"):
        missing = [kind for kind in marker.args if kind not in hil_rig.capabilities]
        if missing:
            pytest.skip(f"rig '{hil_rig.name}' lacks {', '.join(missing)}")


@pytest.fixture
def terminal(hil_rig: Rig, hil_requirements: None) -> Iterator[Terminal]:
    """The terminal under test, with the rig put back to a known state afterwards."""
    if hil_rig.broken:
        raise RigError(
            f"rig '{hil_rig.name}' is broken since an earlier scenario: {hil_rig.broken}"
        )
    assert hil_rig.terminal is not None and hil_rig.console is not None
    transcript = hil_rig.console.transcript
    transcript.clear()
    try:
        yield hil_rig.terminal
    finally:
        reporting.attach_text("test-port transcript", transcript.render())
        stderr = hil_rig.dut_stderr()
        if stderr:
            reporting.attach_text("terminal process output", stderr)
        hil_rig.put_back()


# --- outcome collection ---------------------------------------------------------


class RunSummary:
    """Per-scenario outcomes, written as summary.json and shown by ``hil run``."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        self.total = 0
        self.interrupted = False

    def _entry(self, item: pytest.Item) -> dict[str, Any]:
        entry = self.results.get(item.nodeid)
        if entry is None:
            entry = {
                "nodeid": item.nodeid,
                "feature": item.nodeid.split("::")[0],
                "scenario": item.name,
                # Until pytest reports the call phase, nothing is known: a scenario cut
                # short by Ctrl-C must not read as passed.
                "outcome": "pending",
                "rig_fault": False,
                "message": "",
                "duration_s": 0.0,
                "measurements": [],
            }
            self.results[item.nodeid] = entry
        return entry

    def pytest_bdd_before_scenario(
        self, request: pytest.FixtureRequest, feature: Any, scenario: Any
    ) -> None:
        entry = self._entry(request.node)
        entry["feature"] = mask_text(str(feature.name))
        entry["scenario"] = mask_text(str(scenario.name))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        entry = self._entry(item)
        entry["duration_s"] = round(entry["duration_s"] + report.duration, 3)
        if report.when == "call" and report.passed and entry["outcome"] == "pending":
            entry["outcome"] = "passed"
        if report.skipped and entry["outcome"] in ("pending", "passed"):
            entry["outcome"] = "skipped"
            longrepr = report.longrepr
            entry["message"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        elif report.failed and entry["outcome"] in ("pending", "passed", "skipped"):
            excinfo = call.excinfo
            rig_fault = excinfo is not None and excinfo.errisinstance(RigError)
            terminal_fault = excinfo is not None and excinfo.errisinstance(AssertionError)
            entry["outcome"] = "failed" if terminal_fault and not rig_fault else "broken"
            entry["rig_fault"] = rig_fault
            message = excinfo.exconly() if excinfo is not None else report.longreprtext
            entry["message"] = mask_text(message.strip().splitlines()[0][:500])
        if report.when == "teardown":
            entry["measurements"] = reporting.take_measurements()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    def finished_results(self) -> list[dict[str, Any]]:
        """Results with scenarios that never finished marked as interrupted."""
        return [
            {**entry, "outcome": "interrupted"} if entry["outcome"] == "pending" else entry
            for entry in self.results.values()
        ]

    def as_dict(self, environment: Mapping[str, str]) -> dict[str, Any]:
        results = self.finished_results()
        counts = {
            k: sum(1 for r in results if r["outcome"] == k)
            for k in ("passed", "failed", "broken", "skipped", "interrupted")
        }
        return {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_s": round(time.time() - self.started, 3),
            "interrupted": self.interrupted,
            "collected": self.total,
            "counts": counts,
            "rig_faults": sum(1 for r in results if r["rig_fault"]),
            "environment": dict(environment),
            "scenarios": results,
        }

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        rig = config.stash.get(_rig_key, None)
        environment = rig.environment() if rig is not None else {}
        summary_path = config.getoption("hil_summary")
        if summary_path:
            path = Path(summary_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = mask_data(self.as_dict(environment))
            path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        alluredir = getattr(config.option, "allure_report_dir", None)
        if alluredir:
            write_allure_extras(Path(alluredir), environment)


def write_allure_extras(alluredir: Path, environment: Mapping[str, str]) -> None:
    """Environment panel and categories (a rig fault is never blamed on firmware)."""
    alluredir.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={mask_text(value)}" for key, value in sorted(environment.items())]
    (alluredir / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")
    categories = [
        {"name": "Rig fault", "matchedStatuses": ["broken"], "traceRegex": ".*RigError.*"},
        {"name": "Terminal failure", "matchedStatuses": ["failed"]},
        {"name": "Framework or test defect", "matchedStatuses": ["broken"]},
    ]
    (alluredir / "categories.json").write_text(json.dumps(categories, indent=2), encoding="utf-8")


class AllureSink:
    """Reporting adapter for allure-pytest-bdd (steps, attachments, measurements)."""

    def action(
        self, title: str, params: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[None]:
        from allure_commons._allure import StepContext

        context: contextlib.AbstractContextManager[None] = StepContext(  # type: ignore[no-untyped-call]
            title, dict(params)
        )
        return context

    def attach(self, name: str, body: bytes, mime: str, extension: str) -> None:
        import allure

        allure.attach(body, name=name, attachment_type=mime, extension=extension)

    def measurement(self, measurement: reporting.Measurement) -> None:
        # A step, not a test parameter: parameters feed Allure's history id, and a
        # measured value changes every run.
        with self.action(f"measurement: {measurement.describe()}", {}):
            pass


def pytest_report_header(config: pytest.Config) -> str | None:
    rig_option = config.getoption("rig")
    return f"hil rig: {rig_option or default_rig_path()}" if rig_option else None
