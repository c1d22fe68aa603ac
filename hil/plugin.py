"""pytest plugin: options, fixtures and hooks; the work is done by hil's library.

Loaded through the ``pytest11`` entry point. It stays inert until a test asks for a
rig fixture, so installing pos-hil never changes unrelated test suites.

Gherkin tags become markers to select by, Allure labels and links, and rig
requirements (hil.tags); ``--hil-tags EXPR`` selects scenarios by them and
``--hil-repeat N`` runs each selected scenario N times (hil.repeats).

The reports of a run (``--hil-summary``, ``--hil-junit``, ``--alluredir``) say the
truth about it at every moment: an earlier run's reports are replaced only when this
run starts (its first scenario is about to run; a usage error before that touches no
report), they are rewritten as each scenario ends, and until the run finishes they say
it is incomplete. Every text they hold passes the PAN mask on its way out
(``hil.reporting``'s last gate).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil import features, lifecycle, reporting, rigset, runinfo, tags
from hil.allurebdd import StepParameters, add_measurements, organise_suites
from hil.errors import ConfigError, RigError
from hil.repeats import REPEAT_ARG, repeat_count, repeats
from hil.rig import Rig, default_rig_path
from hil.runinfo import run_id
from hil.secrets import Secret
from hil.summary import BLAME_TITLES, CONFIG_STOP_RETURNCODE, RunSummary
from hil.terminal import Terminal

log = logging.getLogger(__name__)

#: Where a requirement link's URL pattern comes from when ``--hil-req-url`` is not given.
REQUIREMENT_URL_ENV = "HIL_REQ_URL"

_summary_key = pytest.StashKey["RunSummary"]()
_rig_key = pytest.StashKey["Rig"]()
_outputs_key = pytest.StashKey["RunOutputs"]()
#: marker name -> the Gherkin tag it came from (without "@"): the tags ``--hil-tags`` knows
_tag_markers_key = pytest.StashKey[dict[str, str]]()
_selection_key = pytest.StashKey["RunSelection"]()


@dataclass(frozen=True)
class RunSelection:
    """What this session runs, from hil's options."""

    #: ``--hil-tags``
    tags: tags.TagSelection | None
    #: ``--hil-repeat``
    repeat: int
    #: ``--hil-req-url`` or $HIL_REQ_URL: a requirement's link, ``{}`` standing for its ID
    requirement_url: str | None


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
    #: the file writer that replaced Allure's, once guarded
    allure_files: reporting.MaskedAllureFiles | None = None
    #: the reporting adapter that feeds the Allure results (steps, measurements)
    allure_sink: AllureSink | None = None
    #: list every selected scenario as pending when the run starts (a worker of a run
    #: whose rigs share the scenarios lists only those it is given)
    list_all: bool = True
    #: a worker of a run over several rigs: each test's failure text, for the run's junit
    details: Path | None = None


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
    group.addoption(
        "--hil-tags",
        default=None,
        metavar="EXPR",
        help="run the scenarios whose Gherkin tags match EXPR, a marker expression such as "
        "'smoke and not slow' (docs/tags.md); an unknown tag is a usage error",
    )
    group.addoption(
        "--hil-repeat",
        default="1",
        metavar="N",
        help="run each selected scenario N times; a scenario that fails any repeat failed",
    )
    group.addoption(
        "--hil-operator",
        default=None,
        metavar="NAME",
        help=f"who runs the run, for the report (default ${runinfo.OPERATOR_ENV}, else the "
        "login name)",
    )
    group.addoption(
        "--hil-rigs",
        default=None,
        metavar="JSON",
        help="several rigs, one xdist worker each ('hil run --rigs' sets it; hil.rigset)",
    )
    group.addoption(
        "--hil-rigs-each",
        action="store_true",
        default=False,
        help="with --hil-rigs: every rig runs every scenario (else they share them out)",
    )
    group.addoption(
        "--hil-req-url",
        default=None,
        metavar="PATTERN",
        help="link each @req:ID to PATTERN with {} replaced by the ID, e.g. "
        f"'https://lab.example/req/{{}}' (default ${REQUIREMENT_URL_ENV})",
    )


# First, so that a --clean-alluredir is taken over before allure-pytest-bdd acts on it.
@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "hil_requires(*kinds): skip unless the rig has these instruments or channels"
    )
    config.addinivalue_line(
        "markers", f"{tags.REQUIREMENT_MARKER}(id): the requirement a scenario verifies (@req:ID)"
    )
    config.addinivalue_line(
        "markers", f"{tags.LINK_MARKER}(kind, id): a report link (@issue:ID, @tms:ID)"
    )
    config.stash[_tag_markers_key] = {}
    for tag, meaning in tags.VOCABULARY.items():
        _register_tag_marker(config, tag, tag, meaning)
    try:
        selection = _run_selection(config)
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[_selection_key] = selection
    # Step modules import each other (common, phrases); mark the whole package so
    # pytest rewrites their asserts whichever is imported first.
    pytest.register_assert_rewrite("hil.steps")
    if config.getini(features.INI_OPTION) or config.getoption("rig"):
        features.install_step_lookup(config)  # a hil session: the step lookup, once
    rig_set = _rig_set(config)
    # The controller of --rigs runs no step, but checks every step is known: it imports
    # the step library when it collects, after xdist has started the workers (rigset).
    if rig_set is None or not rig_set.controller:
        import_step_library(config)
    try:
        this_run = run_id()
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None

    def environment() -> Mapping[str, str]:
        rig = config.stash.get(_rig_key, None)
        return {"run_id": this_run, **(rig.environment() if rig is not None else {})}

    summary: RunSummary
    if rig_set is not None and rig_set.controller:
        summary = rigset.RigSetSummary(
            this_run,
            rig_set.slots,
            rig_set.run_folder,
            each=bool(config.getoption("hil_rigs_each")),
            environment=environment,
        )
    else:
        summary = RunSummary(this_run, environment)
    summary.run_facts = {
        "operator": runinfo.operator(config.getoption("hil_operator")),
        "station": runinfo.station(),
        "pos_hil_commit": runinfo.pos_hil_commit(),
    }
    summary.repeat = selection.repeat
    summary.tags = selection.tags.text if selection.tags is not None else None
    if rig_set is not None and rig_set.worker is not None:
        summary.run_facts["rig_slot"] = rig_set.worker.label
        # xdist's controller waits for every worker process to be gone before the run
        # can end: four workers' interpreter shutdowns were 0.8-1.0 s at its end.
        lifecycle.end_process_at_exit(0)
    config.stash[_summary_key] = summary
    config.pluginmanager.register(summary, "hil-summary")
    if config.getoption("hil_progress"):
        from hil.progress import LiveProgress, RigSetProgress

        progress = LiveProgress(config, summary)
        if isinstance(summary, rigset.RigSetSummary):
            progress = RigSetProgress(config, summary)
        config.pluginmanager.register(progress, "hil-progress")
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
    if isinstance(summary, rigset.RigSetSummary):
        config.pluginmanager.register(RigSetReports(config, summary, outputs), "hil-reports")
        return  # the controller runs no scenario: no Allure steps of its own
    if rig_set is not None and rig_set.worker is not None:
        # A worker is told its scenarios one by one: it lists those it runs, not all.
        outputs.list_all = rig_set.each
        if outputs.summary is not None:
            outputs.details = outputs.summary.parent / rigset.DETAILS_FILE
    config.pluginmanager.register(RunReports(config, summary, outputs), "hil-reports")
    if outputs.alluredir is not None:
        sink = AllureSink()
        outputs.allure_sink = sink
        reporting.add_sink(sink)
        config.pluginmanager.register(sink, "hil-allure-sink")
        config.add_cleanup(lambda: reporting.remove_sink(sink))


def _run_selection(config: pytest.Config) -> RunSelection:
    """hil's selection options, checked: a ConfigError naming the option if one is bad."""
    repeat = repeat_count(str(config.getoption("hil_repeat")), "--hil-repeat")
    expression = config.getoption("hil_tags")
    selection = None
    if expression is not None:
        selection = tags.TagSelection.parse(expression, "--hil-tags")
    url = config.getoption("hil_req_url")
    where = "--hil-req-url"
    if url is None and os.environ.get(REQUIREMENT_URL_ENV):
        url, where = os.environ[REQUIREMENT_URL_ENV], REQUIREMENT_URL_ENV
    if url is not None:
        url = tags.check_requirement_url(url, where)
    return RunSelection(selection, repeat, url)


def _register_tag_marker(config: pytest.Config, marker: str, tag: str, description: str) -> None:
    """Register ``marker`` (from Gherkin tag ``tag``), once: pytest knows it (no unknown
    mark warning, ``--strict-markers`` passes) and ``--hil-tags`` accepts it."""
    known = config.stash[_tag_markers_key]
    if marker not in known:
        known[marker] = tag
        config.addinivalue_line("markers", f"{marker}: {description}")


def _path_option(config: pytest.Config, name: str) -> Path | None:
    value = config.getoption(name)
    return Path(value) if value else None


@dataclass(frozen=True)
class RigSet:
    """A run over several rigs (``--hil-rigs``): xdist worker K drives rig K."""

    slots: list[rigset.RigSlot]
    #: the run's folder: the workers' reports go under its ``rigs/``
    run_folder: Path
    each: bool
    #: this process's rig, on a worker; None on the controller
    worker: rigset.RigSlot | None

    @property
    def controller(self) -> bool:
        return self.worker is None


def _rig_set(config: pytest.Config) -> RigSet | None:
    """``--hil-rigs``, checked; on a worker, the worker's rig and report paths are put in
    place of the run's (before allure-pytest-bdd reads its folder)."""
    text = config.getoption("hil_rigs")
    workerinput = getattr(config, "workerinput", None)
    if not text:
        # xdist workers on one rig would fight over it (and over the reports).
        several = workerinput is None and getattr(config.option, "numprocesses", None)
        if several and _is_hil_session(config):
            raise pytest.UsageError(
                "-n: xdist workers need a rig each: use hil run --rigs N or --rigs "
                "'rigs/*.toml' (docs/parallel-rigs.md)"
            )
        return None
    summary = _path_option(config, "hil_summary")
    if summary is None:
        raise pytest.UsageError("--hil-rigs: needs --hil-summary (the run's summary.json)")
    if workerinput is None and not getattr(config.option, "numprocesses", None):
        raise pytest.UsageError("--hil-rigs: needs pytest-xdist's -n (hil run --rigs sets it)")
    try:
        slots = rigset.decode_slots(str(text))
        worker = None
        if workerinput is not None:
            worker = rigset.slot_of_worker(slots, str(workerinput["workerid"]))
    except ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    workers = getattr(config.option, "numprocesses", None)
    if worker is None and workers != len(slots):
        raise pytest.UsageError(
            f"-n {workers}: --rigs starts one worker per rig ({len(slots)}); leave -n out"
        )
    each = bool(config.getoption("hil_rigs_each"))
    if worker is not None:
        folder = rigset.slot_folder(summary.parent, worker)
        config.option.rig = str(worker.path)
        config.option.hil_summary = str(folder / "summary.json")
        config.option.hil_junit = str(folder / "junit.xml")
        if getattr(config.option, "allure_report_dir", None):
            config.option.allure_report_dir = str(folder / "allure-results")
        config.option.hil_progress = False  # the controller prints the progress
    return RigSet(slots, summary.parent, each, worker)


def _is_hil_session(config: pytest.Config) -> bool:
    """A session run for a rig or for hil's feature files (not another project's suite
    in the same environment, whose output the plugin leaves as it is)."""
    options = ("rig", "firmware", "hil_summary", "hil_junit", "hil_progress", "hil_tags")
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
        restatement = AllureRestatement(summary, outputs.alluredir, outputs.allure_sink)
        step_parameters = StepParameters.for_session(config)
        if step_parameters is not None:
            config.pluginmanager.register(step_parameters, "hil-allure-step-parameters")
        outputs.allure_files, undo = reporting.install_allure_gate(
            outputs.alluredir, restatement.amend
        )
        config.pluginmanager.register(
            AllureRepeats(summary, restatement, outputs.allure_files), "hil-allure-repeats"
        )
        config.add_cleanup(undo)


class AllureRestatement:
    """Allure results restated with pos-hil's blame as they are written: status, and the
    blame's title leading the message (what the Allure categories match). Remembers
    which result each test wrote, so a scenario's repeats can be restated together."""

    def __init__(
        self, summary: RunSummary, alluredir: Path, sink: AllureSink | None = None
    ) -> None:
        self.summary = summary
        self.alluredir = alluredir
        self.sink = sink
        #: test node ID -> the uuid of the Allure result it wrote
        self.result_of: dict[str, str] = {}

    def amend(self, result: dict[str, Any]) -> None:
        if self.summary.current is not None and "uuid" in result:
            self.result_of[self.summary.current] = str(result["uuid"])
        # Organised like the self-check, with the scenario's measurements (hil.allurebdd).
        organise_suites(result)
        if self.sink is not None:
            add_measurements(result, self.sink.take_measurements(), self.alluredir)
        blame = self.summary.blame_now()
        if blame is None or result.get("status") not in ("failed", "broken"):
            return
        result["status"] = "failed" if blame == "terminal" else "broken"
        if blame != "terminal":
            details = result.setdefault("statusDetails", {})
            details["message"] = f"{BLAME_TITLES[blame]}: {details.get('message', '')}"


class AllureRepeats:
    """When a scenario's last repeat is over, each of its repeats' Allure results gets
    the scenario's figure: parameter "failed repeats" = "k of n" (left out of the history
    ID), and Allure's *flaky* mark when some repeats failed and others passed.

    Each repeat is a result of its own, with the repeat as a parameter that feeds the
    history ID: Allure 2 folds results that share a history ID into one test showing only
    the latest as its status, so a scenario whose last repeat passed would count as
    passed. An intermittent failure must count as a failure (docs/decisions.md)."""

    def __init__(
        self,
        summary: RunSummary,
        restatement: AllureRestatement,
        files: reporting.MaskedAllureFiles,
    ) -> None:
        self.summary = summary
        self.restatement = restatement
        self.files = files

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        scenario, runs = self.summary.scenario_runs(nodeid)
        if len(runs) < 2 or nodeid != runs[-1]:
            return
        entry = self.summary.scenario_result(scenario)
        if entry is None:
            return
        failed, count = entry["failed_repeats"], entry["repeat_count"]
        figure = {"name": "failed repeats", "value": f"{failed} of {count}", "excluded": True}

        def add_figure(result: dict[str, Any]) -> None:
            parameters = [
                p for p in result.get("parameters", []) if p.get("name") != "failed repeats"
            ]
            result["parameters"] = [*parameters, figure]
            if 0 < failed < count:
                result.setdefault("statusDetails", {})["flaky"] = True

        for run in runs:
            result_uuid = self.restatement.result_of.get(run)
            if result_uuid is not None:
                self.files.restate(result_uuid, add_figure)


@pytest.hookimpl(tryfirst=True)
def pytest_bdd_apply_tag(tag: str, function: Callable[..., object]) -> object:
    """Every Gherkin tag, as hil.tags says: a registered marker to select by, Allure
    labels, a requirement, instruments the rig must have."""
    from pytest_bdd.utils import CONFIG_STACK  # the session pytest-bdd collects for

    meaning = tags.meaning(tag)
    marks = []
    if meaning.marker is not None:
        if CONFIG_STACK and _tag_markers_key in CONFIG_STACK[-1].stash:
            _register_tag_marker(CONFIG_STACK[-1], meaning.marker, tag, f"Gherkin tag @{tag}")
        marks.append(getattr(pytest.mark, meaning.marker))
    for label_type, value in meaning.labels:
        marks.append(pytest.mark.allure_label(value, label_type=label_type))
    if meaning.requirement is not None:
        marks.append(getattr(pytest.mark, tags.REQUIREMENT_MARKER)(meaning.requirement))
    if meaning.requires:
        marks.append(pytest.mark.hil_requires(*meaning.requires))
    for kind, target in meaning.links:
        marks.append(getattr(pytest.mark, tags.LINK_MARKER)(kind, target))
    for mark in marks:
        mark(function)
    return function


@pytest.hookimpl(trylast=True)  # after every other parametrisation: the repeat is last
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--hil-repeat N``: each scenario test becomes N tests, ``[repeat k/N]``."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    count = metafunc.config.stash[_selection_key].repeat
    if count < 2 or metafunc.function not in scenario_wrapper_template_registry:
        return
    metafunc.fixturenames.append(REPEAT_ARG)
    runs = repeats(count)
    metafunc.parametrize(REPEAT_ARG, runs, ids=[run.id for run in runs])


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
    selection = config.stash[_selection_key]
    patterns = _link_patterns(config, items)
    if selection.requirement_url is not None:
        patterns["req"] = selection.requirement_url
    if "req" in patterns:
        _link_requirements(items, patterns["req"])
    _link_tags(items, patterns)
    if selection.tags is not None:
        _select_by_tags(config, items, selection.tags)


def _link_requirements(items: list[pytest.Item], pattern: str) -> None:
    """An Allure link (type tms, named by the ID) for every requirement of a scenario."""
    for item in items:
        for marker in item.iter_markers(tags.REQUIREMENT_MARKER):
            for requirement in marker.args:
                url = tags.requirement_url(pattern, str(requirement))
                item.add_marker(
                    pytest.mark.allure_link(url, name=str(requirement), link_type="tms")
                )


#: Environment variables with the URL pattern of a kind of link (``{}`` = the ID).
LINK_URL_ENV = {"issue": "HIL_ISSUE_URL", "tms": "HIL_TMS_URL"}


def _link_patterns(config: pytest.Config, items: list[pytest.Item]) -> dict[str, str]:
    """URL patterns per link kind: the rig file's ``[report] links`` (read only when a
    scenario has a link tag and the session runs for a rig), then the environment."""
    patterns: dict[str, str] = {}
    linked = any(
        item.get_closest_marker(tags.LINK_MARKER)
        or item.get_closest_marker(tags.REQUIREMENT_MARKER)
        for item in items
    )
    rig_option = config.getoption("rig")
    if linked and rig_option:
        from hil.config import load_rig

        try:
            patterns.update(load_rig(Path(rig_option)).report.links)
        except ConfigError as e:
            # The rig file's error, with the stop the rig's own loading would give: a
            # configuration stop (hil run: exit 2), not pytest's usage error.
            pytest.exit(f"configuration error: {e}", returncode=CONFIG_STOP_RETURNCODE)
    for kind, variable in LINK_URL_ENV.items():
        value = os.environ.get(variable)
        if value:
            try:
                patterns[kind] = tags.check_requirement_url(value, variable)
            except ConfigError as e:
                raise pytest.UsageError(str(e)) from None
    return patterns


def _link_tags(items: list[pytest.Item], patterns: Mapping[str, str]) -> None:
    """An Allure link for every ``@issue:ID`` and ``@tms:ID`` whose kind has a pattern."""
    for item in items:
        for marker in item.iter_markers(tags.LINK_MARKER):
            kind, target = str(marker.args[0]), str(marker.args[1])
            pattern = patterns.get(kind)
            if pattern is not None:
                url = tags.requirement_url(pattern, target)
                item.add_marker(pytest.mark.allure_link(url, name=target, link_type=kind))


def _select_by_tags(
    config: pytest.Config, items: list[pytest.Item], selection: tags.TagSelection
) -> None:
    """Keep the scenarios ``--hil-tags`` selects; a name that is no known tag (hil's
    vocabulary, a tag of a collected feature, or a marker registered by the project) is
    a usage error naming it, before any rig starts."""
    known = config.stash[_tag_markers_key]
    registered = (
        line.split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")
    )
    problem = selection.unknown(known, accepted=registered)
    if problem is not None:
        raise pytest.UsageError(problem)
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (kept if selection.matches(_marker_lookup(item), known) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _marker_lookup(item: pytest.Item) -> tags.MarkerLookup:
    """Whether ``item`` carries a marker of this name (with these keyword arguments)."""
    markers = list(item.iter_markers())

    def has_marker(name: str, kwargs: Mapping[str, object]) -> bool:
        return any(
            m.name == name and all(m.kwargs.get(k, _ABSENT) == v for k, v in kwargs.items())
            for m in markers
        )

    return has_marker


_ABSENT = object()


def import_step_library(config: pytest.Config) -> None:
    """pos-hil's step modules, as plug-ins of this session (their steps are fixtures)."""
    for module in step_modules():
        config.pluginmanager.import_plugin(module)


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
        # The Allure environment as last written: it changes a few times a run, not
        # with every scenario, so it is written only when it did.
        self._allure_environment: dict[str, Any] | None = None
        self._details_written: str | None = None
        self._marker_written: str | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """The run starts here, if it starts at all: earlier reports are replaced now."""
        if session.testsfailed and not self.config.option.continue_on_collection_errors:
            return  # pytest stops on the collection errors: the run never starts
        if not session.items or self.config.option.collectonly:
            return
        tag_markers: dict[str, str] = self.config.stash[_tag_markers_key]
        self.summary.begin(
            session.items, tag_markers=set(tag_markers), listed=self.outputs.list_all
        )
        alluredir = self.outputs.alluredir
        if alluredir is not None:
            if self.outputs.clean_alluredir:
                shutil.rmtree(alluredir, ignore_errors=True)
            reporting.write_allure_categories(alluredir)
        self.write()
        self.config.hook.pytest_hil_run_started(session=session)

    # First: on an xdist worker, the scenario's end is on disk before the controller
    # hears of it (it reads this worker's summary then).
    @pytest.hookimpl(tryfirst=True)
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
        with self.summary.environment_held():
            self._write()

    def _write(self) -> None:
        summary, outputs = self.summary, self.outputs
        if outputs.summary is not None:
            summary.write(outputs.summary)
        if outputs.junit is not None:
            summary.write_junit(outputs.junit)
        if outputs.details is not None:
            # Written when it changed (a scenario failed), and before the run's first
            # scenario: the controller reads it with each new summary.json.
            text = json.dumps(summary.details, ensure_ascii=False)
            if text != self._details_written:
                reporting.write_atomically(outputs.details, text.encode("utf-8"))
                self._details_written = text
        if outputs.alluredir is not None:
            environment = {**summary.environment(), "run_status": summary.status}
            if environment != self._allure_environment:
                reporting.write_allure_environment(outputs.alluredir, environment)
                self._allure_environment = environment
            if summary.complete:
                reporting.run_marker_path(outputs.alluredir, summary.run_id).unlink(missing_ok=True)
                self._marker_written = None
                return
            # Written when its text changes (the run starts, the run ends), not after
            # every scenario: each scenario over is a result beside it, and summary.json
            # and junit.xml count them (docs/decisions.md).
            reason = summary.incomplete_reason(counted=summary.status != "running")
            if reason != self._marker_written:
                reporting.write_run_marker(
                    outputs.alluredir, summary.run_id, reason, outputs.started_ms
                )
                self._marker_written = reason


class RigSetReports(RunReports):
    """The reports of a run over several rigs, written by the xdist controller: merged
    from the workers' own (hil.rigset) as each scenario ends, Allure's at the end."""

    def __init__(
        self, config: pytest.Config, summary: rigset.RigSetSummary, outputs: RunOutputs
    ) -> None:
        super().__init__(config, summary, outputs)
        self.rigs = summary
        self.session: pytest.Session | None = None
        alluredir = outputs.alluredir
        self.allure = rigset.AllureMerge(summary, alluredir) if alluredir is not None else None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        # SIGTERM (what CI sends) stops the rigs' run as Ctrl-C does: the workers are
        # told to stop, and the reports say the run was interrupted.
        lifecycle.watch_runner(self.config)

    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """The controller's loop hands scenarios out; the run starts once collected."""

    # Last: the summary has taken the collection first.
    @pytest.hookimpl(trylast=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The run starts when the first rig's worker has collected the scenarios, unless
        collection failed (pytest stops then; no report is touched)."""
        session = self.session
        if self.rigs.status != "not started" or session is None:
            return
        if session.testsfailed or self.rigs.errors or not ids or self.config.option.collectonly:
            return
        self.rigs.start()
        alluredir = self.outputs.alluredir
        if alluredir is not None:
            if self.outputs.clean_alluredir:
                shutil.rmtree(alluredir, ignore_errors=True)
            reporting.write_allure_categories(alluredir)
        self.rigs.refresh()
        self.write()
        self.config.hook.pytest_hil_run_started(session=session)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logfinish(self) -> None:
        if self.rigs.status == "running":
            self.rigs.refresh()
            self.write()
            if self.allure is not None:
                self.allure.sweep()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if self.rigs.status == "not started":
            return
        if self.allure is not None:
            self.allure.sweep(final=True)
        self.write()


class AllureSink:
    """Reporting adapter for allure-pytest-bdd (steps, attachments, measurements)."""

    def __init__(self) -> None:
        #: measurements of the scenario under way, until its result is written
        self._measured: list[reporting.Measurement] = []

    def take_measurements(self) -> list[reporting.Measurement]:
        taken, self._measured = self._measured, []
        return taken

    def pytest_runtest_logstart(self) -> None:
        self._measured = []  # a scenario that wrote no result must not pass its own on

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
        # A step where it was taken; and a test parameter (excluded from the history
        # ID: a measured value changes every run) with the table, when the result is
        # written (hil.allurebdd).
        self._measured.append(measurement)
        with self.action(f"measurement: {measurement.describe()}", {}):
            pass


@pytest.hookimpl(tryfirst=True)
def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """A failed comparison that involves a password shows no diff of the two: pytest's
    own explanation would print both strings in full."""
    if isinstance(left, Secret) or isinstance(right, Secret):
        return [f"{left!r} {op} {right!r}", "(a secret is compared: no diff shown)"]
    return None


def pytest_report_header(config: pytest.Config) -> str | None:
    rig_option = config.getoption("rig")
    return f"hil rig: {rig_option or default_rig_path()}" if rig_option else None
