"""pytest plugin: options, fixtures and hooks; the work is done by hil's library.

Loaded through the ``pytest11`` entry point. It stays inert until a test asks for a
rig fixture, so installing pos-hil never changes unrelated test suites.

The reports of a run (``--hil-summary``, ``--hil-junit``, ``--alluredir``) say the
truth about it at every moment: an earlier run's reports are replaced only when this
run starts (its first scenario is about to run; a usage error before that touches no
report), they are rewritten as each scenario ends, and until the run finishes they say
it is incomplete. Every text they hold passes the PAN mask on its way out
(``hil.reporting``'s last gate).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil import features, lifecycle, reporting
from hil.errors import ConfigError, RigError
from hil.rig import Rig, default_rig_path
from hil.runinfo import run_id
from hil.summary import BLAME_TITLES, CONFIG_STOP_RETURNCODE, RunSummary
from hil.terminal import Terminal

log = logging.getLogger(__name__)

#: Gherkin tags of the form ``@name:value`` that become Allure labels.
LABEL_TAGS = ("epic", "story", "severity", "feature")

_summary_key = pytest.StashKey["RunSummary"]()
_rig_key = pytest.StashKey["Rig"]()
_outputs_key = pytest.StashKey["RunOutputs"]()


@dataclass
class RunOutputs:
    """Where this session's reports go, and what replacing the earlier ones means."""

    summary: Path | None
    junit: Path | None
    alluredir: Path | None
    #: ``--clean-alluredir``: done when the run starts, not when pytest configures
    clean_alluredir: bool
    started_ms: int
    #: the PAN mask guards every report and the console (see ``_guard_outputs``)
    guarded: bool = False


class HilHookSpecs:
    """Hooks pos-hil calls, for ``hil run`` and a lab's own plug-ins."""

    @pytest.hookspec
    def pytest_hil_run_started(self, session: pytest.Session) -> None:
        """The run starts: its first scenario is about to run and the reports of an
        earlier run have just been replaced. Not called when the run never starts (a
        usage error, a collection error, nothing selected)."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(HilHookSpecs)


def run_summary(config: pytest.Config) -> RunSummary | None:
    """This session's summary (``hil run`` reads the verdict from it)."""
    return config.stash.get(_summary_key, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "pos-hil test rig")
    group.addoption("--rig", default=None, help="rig file (TOML); default rigs/sim.toml")
    group.addoption("--firmware", default=None, help="firmware image to flash before the run")
    group.addoption(
        "--hil-summary", default=None, help="write a per-scenario summary JSON to this path"
    )
    group.addoption(
        "--hil-junit",
        default=None,
        help="write JUnit XML to this path, rewritten as each scenario ends, with an "
        "error entry while the run is not complete",
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


# First, so that a --clean-alluredir is taken over before allure-pytest-bdd acts on it.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hil_requires(*kinds): skip unless the rig has these instruments or channels"
    )
    # Step modules import each other (common, phrases); mark the whole package so
    # pytest rewrites their asserts whichever is imported first.
    pytest.register_assert_rewrite("hil.steps")
    for module in step_modules():
        config.pluginmanager.import_plugin(module)
    try:
        this_run = run_id()
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None

    def environment() -> Mapping[str, str]:
        rig = config.stash.get(_rig_key, None)
        return {"run_id": this_run, **(rig.environment() if rig is not None else {})}

    summary = RunSummary(this_run, environment)
    config.stash[_summary_key] = summary
    config.pluginmanager.register(summary, "hil-summary")
    if config.getoption("hil_progress"):
        from hil.progress import LiveProgress

        config.pluginmanager.register(LiveProgress(config, summary), "hil-progress")
    alluredir = getattr(config.option, "allure_report_dir", None)
    clean = bool(getattr(config.option, "clean_alluredir", False))
    if clean:
        # allure-pytest-bdd would empty the folder now, before collection: a usage
        # error found then would leave an earlier run's report half gone.
        config.option.clean_alluredir = False
    outputs = RunOutputs(
        summary=_path_option(config, "hil_summary"),
        junit=_path_option(config, "hil_junit"),
        alluredir=Path(alluredir).absolute() if alluredir else None,
        clean_alluredir=clean,
        started_ms=int(time.time() * 1000),
    )
    config.stash[_outputs_key] = outputs
    config.pluginmanager.register(RunReports(config, summary, outputs), "hil-reports")
    if outputs.alluredir is not None:
        sink = AllureSink()
        reporting.add_sink(sink)
        config.add_cleanup(lambda: reporting.remove_sink(sink))


def _path_option(config: pytest.Config, name: str) -> Path | None:
    value = config.getoption(name)
    return Path(value) if value else None


def _is_hil_session(config: pytest.Config) -> bool:
    """A session run for a rig or for hil's feature files (not another project's suite
    in the same environment, whose output the plugin leaves as it is)."""
    options = ("rig", "firmware", "hil_summary", "hil_junit", "hil_progress")
    return bool(config.getini(features.INI_OPTION)) or any(config.getoption(o) for o in options)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_hil_session(session.config):
        _guard_outputs(session.config)


def _guard_outputs(config: pytest.Config) -> None:
    """The last gate: from now on, pytest's reports, the terminal writer of plain pytest
    and Allure's file writer pass every text through the PAN mask. Installed once every
    plug-in is configured, and before any scenario reports."""
    outputs = config.stash[_outputs_key]
    if outputs.guarded:
        return
    outputs.guarded = True
    if config.pluginmanager.get_plugin("terminalreporter") is not None:
        reporting.mask_terminal_writer(config.get_terminal_writer())
    if outputs.alluredir is not None:
        summary = config.stash[_summary_key]
        undo = reporting.install_allure_gate(outputs.alluredir, _blame_restated(summary))
        config.add_cleanup(undo)


def _blame_restated(summary: RunSummary) -> reporting.ResultAmendment:
    """An Allure result restated with pos-hil's blame: status, and the blame's title
    leading the message (what the Allure categories match)."""

    def amend(result: dict[str, Any]) -> None:
        blame = summary.blame_now()
        if blame is None or result.get("status") not in ("failed", "broken"):
            return
        result["status"] = "failed" if blame == "terminal" else "broken"
        if blame != "terminal":
            details = result.setdefault("statusDetails", {})
            details["message"] = f"{BLAME_TITLES[blame]}: {details.get('message', '')}"

    return amend


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
    wanted = {name for item in items for name in getattr(item, "fixturenames", ())}
    if ours or "hil_rig" in wanted:
        _guard_outputs(config)
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
    _guard_outputs(config)  # a step that asked for the rig at run time: guard from now on
    rig_option = config.getoption("rig")
    firmware_option = config.getoption("firmware")
    try:
        rig = Rig.from_file(
            Path(rig_option) if rig_option else default_rig_path(),
            firmware=Path(firmware_option) if firmware_option else None,
        )
    except ConfigError as e:
        pytest.exit(f"configuration error: {e}", returncode=CONFIG_STOP_RETURNCODE)
    config.stash[_rig_key] = rig
    try:
        lifecycle.watch_runner(config)
        try:
            rig.start()
        except ConfigError as e:
            # Found only while building (a parameter file that does not parse, a
            # command a driver cannot find): still the lab's input, not the terminal.
            pytest.exit(f"configuration error: {e}", returncode=CONFIG_STOP_RETURNCODE)
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
    assert hil_rig.terminal is not None
    # A pos-hil test-port console keeps a transcript; a console driver that brings its
    # own TerminalPort (another protocol) may not.
    transcript = hil_rig.console.transcript if hil_rig.console is not None else None
    if transcript is not None:
        transcript.clear()
    try:
        yield hil_rig.terminal
    finally:
        if transcript is not None:
            reporting.attach_text("test-port transcript", transcript.render())
        stderr = hil_rig.dut_stderr()
        if stderr:
            reporting.attach_text("terminal process output", stderr)
        hil_rig.put_back()


# --- the run's reports ----------------------------------------------------------


# Inner wrappers (trylast): the report is masked before any other hook wrapper (the
# summary's, Allure's) or pytest's junit and terminal reporters read it.
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    if item.config.stash[_outputs_key].guarded:
        reporting.mask_report(outcome.get_result())


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    ours = isinstance(collector, features.FeatureFile)
    if ours or collector.config.stash[_outputs_key].guarded:
        reporting.mask_report(outcome.get_result())


class RunReports:
    """Writes the run's reports: when it starts, as each scenario ends, at the end."""

    def __init__(self, config: pytest.Config, summary: RunSummary, outputs: RunOutputs) -> None:
        self.config = config
        self.summary = summary
        self.outputs = outputs

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """The run starts here, if it starts at all: earlier reports are replaced now."""
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            return  # pytest stops on the collection errors: the run never starts
        if not session.items or self.config.option.collectonly:
            return
        self.summary.begin(session.items)
        alluredir = self.outputs.alluredir
        if alluredir is not None:
            if self.outputs.clean_alluredir:
                shutil.rmtree(alluredir, ignore_errors=True)
            reporting.write_allure_categories(alluredir)
        self.write()
        self.config.hook.pytest_hil_run_started(session=session)

    def pytest_runtest_logfinish(self) -> None:
        """Each scenario's end is on disk at once: a killed run leaves what it had done."""
        if self.summary.status == "running":
            self.write()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if self.summary.status != "not started":
            self.write()
        # pytest's own --junitxml (written just before, by its own sessionfinish) names
        # tests by node ID, and an Examples row can put a card number there.
        xmlpath = getattr(self.config.option, "xmlpath", None)
        if xmlpath and Path(xmlpath).is_file():
            junit = Path(xmlpath)
            reporting.write_atomically(junit, reporting.masked_bytes(junit.read_bytes()))

    def write(self) -> None:
        """summary.json, junit.xml and the Allure run files as the run stands now."""
        summary, outputs = self.summary, self.outputs
        if outputs.summary is not None:
            summary.write(outputs.summary)
        if outputs.junit is not None:
            summary.write_junit(outputs.junit)
        if outputs.alluredir is not None:
            environment = {**summary.environment(), "run_status": summary.status}
            reporting.write_allure_environment(outputs.alluredir, environment)
            if summary.complete:
                reporting.run_marker_path(outputs.alluredir, summary.run_id).unlink(missing_ok=True)
            else:
                reporting.write_run_marker(
                    outputs.alluredir,
                    summary.run_id,
                    summary.incomplete_reason(),
                    outputs.started_ms,
                )


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
