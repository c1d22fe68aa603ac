"""pytest plugin: options, fixtures and hooks; the work is done by hil's library.

Loaded through the ``pytest11`` entry point. It stays inert until a test asks for a
rig fixture, so installing pos-hil never changes unrelated test suites.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from hil import features, lifecycle, reporting
from hil.errors import ConfigError, RigError
from hil.masking import mask_text
from hil.rig import Rig, default_rig_path
from hil.summary import RunSummary
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
    parser.addini(
        features.INI_OPTION,
        type="bool",
        default=False,
        help="collect .feature files as tests, with no glue module (hil run sets it)",
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
    # Step modules import each other (common, phrases); mark the whole package so
    # pytest rewrites their asserts whichever is imported first.
    pytest.register_assert_rewrite("hil.steps")
    for module in step_modules():
        config.pluginmanager.import_plugin(module)

    def environment() -> Mapping[str, str]:
        rig = config.stash.get(_rig_key, None)
        return rig.environment() if rig is not None else {}

    summary = RunSummary(environment)
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


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if features.wants_features(parent.config, file_path):
        return features.FeatureFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    items[:] = features.drop_duplicates(items)
    # Checked before the rig starts: a typo must not cost a lab a rig run. Only for
    # feature files hil collects or a session run for a rig (--rig, hil run).
    ours = [
        item
        for item in items
        if isinstance(item.parent, features.FeatureFile)
        or config.getoption("rig")
        or config.getoption("hil_progress")
    ]
    unknown = features.unknown_steps(ours)
    if unknown:
        raise pytest.UsageError("\n".join(unknown))


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
        lifecycle.watch_runner(config)
        try:
            rig.start()
        except ConfigError as e:
            # Found only while building (a parameter file that does not parse, a
            # command a driver cannot find): still the lab's input, not the terminal.
            pytest.exit(f"configuration error: {e}", returncode=2)
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


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    summary = config.stash.get(_summary_key, None)
    summary_path = config.getoption("hil_summary")
    if summary is not None and summary_path:
        summary.write(Path(summary_path))
    alluredir = getattr(config.option, "allure_report_dir", None)
    rig = config.stash.get(_rig_key, None)
    if alluredir:
        write_allure_extras(Path(alluredir), rig.environment() if rig is not None else {})


def write_allure_extras(alluredir: Path, environment: Mapping[str, str]) -> None:
    """Environment panel and categories (a rig fault is never blamed on firmware)."""
    alluredir.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={mask_text(value)}" for key, value in sorted(environment.items())]
    (alluredir / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")
    categories = [
        {"name": "Rig fault", "matchedStatuses": ["broken"], "traceRegex": ".*RigError.*"},
        {
            "name": "Configuration or authoring error",
            "matchedStatuses": ["broken"],
            "traceRegex": ".*ConfigError.*",
        },
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
