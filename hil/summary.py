"""The outcome of a run, scenario by scenario: summary.json, junit.xml and hil's exit code.

A pytest plugin object (registered by hil.plugin): it records each scenario's outcome,
who is to blame for a scenario that did not pass, its reason, duration and
measurements, and what kept scenarios from running at all (collection errors,
configuration errors, an interruption).

Blame decides the exit code, the Allure category and the words in every report; it is
decided here, once, from the exception:

- ``terminal``: a ``DutError`` or an assertion of a step: the terminal failed (exit 1);
- ``rig``: a ``RigError``: an instrument or the rig failed (exit 3);
- ``config``: a ``ConfigError`` or an authoring error in a feature or step module (a
  step pytest-bdd cannot find, a fixture that does not exist) (exit 2);
- ``framework``: anything else: a bug in pos-hil or in a step (a ``TypeError``, an
  ``OSError`` an instrument failed to turn into a ``RigError``, a bare ``assert`` of
  pos-hil's own library) (exit 70). Never the terminal's fault.

The run itself has a status: ``running`` while it runs (what a killed run leaves
behind), then ``finished`` (every selected scenario ran), ``interrupted`` (Ctrl-C) or
``stopped`` (a configuration error while the rig started, ``-x``...). Only a finished
run is ``complete``.

With ``--repeat N`` every scenario runs as N tests (hil.repeats). Each run is recorded
as it ends, and the reports aggregate per scenario: the scenario's outcome is the worst
of its repeats' (``broken``, then ``failed``: a scenario that failed one repeat of five
failed, and a rig fault in one repeat is a rig fault), with "failed k of n" and every
repeat's own outcome kept. junit.xml keeps one test case per run.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from pytest_bdd import exceptions as bdd_exceptions

import hil
from hil import __version__, reporting
from hil.errors import ConfigError, DutError, RigError
from hil.features import suite_fingerprint
from hil.masking import mask_data, mask_text
from hil.repeats import repeat_of, scenario_nodeid
from hil.tags import REQUIREMENT_MARKER

Blame = Literal["terminal", "rig", "config", "framework"]

#: How each blame reads in reports: Allure message prefix (its categories match on it),
#: junit error message, the console.
BLAME_TITLES: dict[Blame, str] = {
    "terminal": "Terminal failure",
    "rig": "Rig fault",
    "config": "Configuration or authoring error",
    "framework": "Framework bug",
}

#: hil's exit codes (README.md): the run's verdict, and what ``hil`` says about its input.
EXIT_OK = 0
EXIT_DUT_FAILED = 1
EXIT_USAGE = 2
EXIT_RIG_FAULT = 3
#: sysexits' EX_SOFTWARE: clear of pytest's 0-5 (4 is its usage error) and of 130.
EXIT_FRAMEWORK_BUG = 70
EXIT_INTERRUPTED = 130

#: ``pytest.exit`` return code the plugin stops a session with on a configuration error
#: found while the rig starts: sysexits' EX_CONFIG, clear of pytest's own 0-5 (pytest's
#: 2 means "interrupted", which a configuration error is not).
CONFIG_STOP_RETURNCODE = 78

#: Outcomes a scenario can have in summary.json. ``pending``: not over yet (seen in a
#: summary written during the run, or left by a killed one).
OUTCOMES = ("passed", "failed", "broken", "skipped", "interrupted", "not run", "pending")

RunStatus = Literal["not started", "running", "finished", "interrupted", "stopped"]

#: Which of a scenario's repeats decides its outcome: the first of these outcomes any
#: repeat had. A scenario that failed one repeat failed; one that broke broke.
DECIDING_OUTCOMES = ("broken", "failed", "interrupted", "not run", "pending", "skipped", "passed")
#: Among repeats with the same outcome, the blame that decides (the exit codes' order).
# Stands for the scenario list in summary.json while the rest is encoded; letters only,
# so the PAN mask leaves it alone, and random, so no text in a run can equal it.
_SPLICE = (
    "<scenarios-" + uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop")) + ">"
)
_DECIDING_BLAMES = ("config", "framework", "rig", "terminal", None)
# Stand for junit.xml's run properties and test cases while the rest is serialised: XML
# names of letters only, random as _SPLICE is.
_ENVIRONMENT_SPLICE = "<environment-" + _SPLICE[11:]
_PROPERTIES_SPLICE = "hil-properties-" + _SPLICE[11:-1]
_CASES_SPLICE = "hil-cases-" + _SPLICE[11:-1]
#: What a run's outcome counts as in junit.xml's totals.
_CASE_KINDS = {
    "failed": "failure",
    "broken": "error",
    "interrupted": "error",
    "skipped": "skipped",
    "not run": "skipped",
}


def _tally_of(entry: Mapping[str, Any]) -> tuple[str, bool, bool, bool]:
    """What a scenario's entry counts as in summary.json: its outcome, and whether it is
    a rig fault, a configuration error, a framework error."""
    return (
        entry["outcome"],
        bool(entry["rig_fault"]),
        bool(entry["config_error"]),
        bool(entry["framework_error"]),
    )


def _add_tally(tally: dict[str, int], counted: tuple[str, bool, bool, bool], sign: int) -> None:
    outcome, rig_fault, config_error, framework_error = counted
    for name, counts in (
        (outcome, True),
        ("rig_faults", rig_fault),
        ("config_errors", config_error),
        ("framework_errors", framework_error),
    ):
        if counts:
            tally[name] = tally.get(name, 0) + sign


#: Exceptions that mean a feature file or a step module is wrong, not the terminal.
_AUTHORING_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    bdd_exceptions.StepDefinitionNotFoundError,
    bdd_exceptions.ScenarioValidationError,
    bdd_exceptions.StepImplementationError,
    bdd_exceptions.GherkinParseError,
    pytest.FixtureLookupError,
)

_HIL_LIBRARY = Path(hil.__file__).resolve().parent
_HIL_STEPS = _HIL_LIBRARY / "steps"


def blame_of(excinfo: pytest.ExceptionInfo[BaseException], when: str) -> Blame:
    """Who is to blame for an exception that ended a scenario (see the module docstring).

    A plain ``AssertionError`` is a step's verdict on the terminal only while the steps
    run (the ``call`` phase) and only when pos-hil's library outside its step library did
    not raise it: there, an ``assert`` states an invariant of ours; the library reports
    a misbehaving terminal as a ``DutError``.
    """
    if excinfo.errisinstance(RigError):
        return "rig"
    if excinfo.errisinstance(_AUTHORING_ERRORS):
        return "config"
    if excinfo.errisinstance(DutError):
        return "terminal"
    verdict = excinfo.errisinstance((AssertionError, pytest.fail.Exception))
    if verdict and when == "call" and not _raised_in_hil_library(excinfo):
        return "terminal"
    return "framework"


def _raised_in_hil_library(excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    if not excinfo.traceback:
        return False
    path = Path(str(excinfo.traceback[-1].path)).resolve()
    return path.is_relative_to(_HIL_LIBRARY) and not path.is_relative_to(_HIL_STEPS)


def exit_code_for(summary: Mapping[str, Any]) -> int:
    """hil's documented exit code for a run, from its summary (``RunSummary.as_dict``).

    The first that applies: 130 interrupted; 2 a configuration or authoring error (the
    run's input is wrong, fix it first); 70 a framework bug; 3 a rig fault; 1 a terminal
    failure; 0 every selected scenario ran and none failed. A run that stopped for
    another reason with scenarios not run is not a pass: 2 (it was stopped on purpose,
    by ``-x`` or a hook's ``pytest.exit``, never by the terminal).
    """
    if summary.get("status") == "interrupted":
        return EXIT_INTERRUPTED
    if summary.get("errors") or summary.get("config_errors"):
        return EXIT_USAGE
    if summary.get("framework_errors"):
        return EXIT_FRAMEWORK_BUG
    if summary.get("rig_faults"):
        return EXIT_RIG_FAULT
    counts = summary.get("counts", {})
    if counts.get("failed") or counts.get("broken"):
        return EXIT_DUT_FAILED
    if summary.get("status") != "finished":
        return EXIT_USAGE
    return EXIT_OK


@dataclass(frozen=True)
class RunFacts:
    """What is known of one run of a scenario before it runs."""

    #: the scenario this is a run of: its node ID without the repeat
    scenario: str
    #: which repeat (1 without repeats)
    repeat: int
    #: requirement IDs it verifies (``@req:``)
    requirements: tuple[str, ...] = ()
    #: the markers ``--tags`` selects it by
    tags: tuple[str, ...] = ()


def scenario_entry(
    nodeid: str, runs: Sequence[tuple[RunFacts, Mapping[str, Any]]]
) -> dict[str, Any]:
    """One scenario's entry in the reports, from its runs (in repeat order; one run when
    the run has no repeats, and then the entry says what that run said)."""
    facts, first = runs[0]

    def deciding_order(run: tuple[RunFacts, Mapping[str, Any]]) -> tuple[int, int, int]:
        entry = run[1]
        blame = entry["blame"] if entry["blame"] in _DECIDING_BLAMES else None
        return (
            DECIDING_OUTCOMES.index(entry["outcome"]),
            _DECIDING_BLAMES.index(blame),
            run[0].repeat,
        )

    deciding_facts, deciding = min(runs, key=deciding_order)
    failed = sum(1 for _, entry in runs if entry["outcome"] in ("failed", "broken"))
    message = deciding["message"]
    if len(runs) > 1 and failed:
        message = (
            f"failed {failed} of {len(runs)} repeats; repeat {deciding_facts.repeat}: {message}"
        )
    measurements = [
        {**m, "repeat": run_facts.repeat} if len(runs) > 1 else m
        for run_facts, entry in runs
        for m in entry["measurements"]
    ]
    return {
        "nodeid": mask_text(nodeid),
        "feature": first["feature"],
        "scenario": first["scenario"],
        "outcome": deciding["outcome"],
        "blame": deciding["blame"],
        "rig_fault": any(entry["rig_fault"] for _, entry in runs),
        "config_error": any(entry["config_error"] for _, entry in runs),
        "framework_error": any(entry["framework_error"] for _, entry in runs),
        "message": message,
        "duration_s": round(sum(entry["duration_s"] for _, entry in runs), 3),
        "measurements": measurements,
        "requirements": list(facts.requirements),
        "tags": list(facts.tags),
        "repeat_count": len(runs),
        "failed_repeats": failed,
        "repeats": [
            {
                "repeat": run_facts.repeat,
                "nodeid": entry["nodeid"],
                "outcome": entry["outcome"],
                "blame": entry["blame"],
                "message": entry["message"],
                "duration_s": entry["duration_s"],
                "measurements": entry["measurements"],
            }
            for run_facts, entry in runs
        ],
    }


def pending_entry(nodeid: str, name: str) -> dict[str, Any]:
    """A run's entry before pytest has said anything of it."""
    return {
        "nodeid": mask_text(nodeid),
        "feature": mask_text(nodeid.split("::", maxsplit=1)[0]),
        "scenario": mask_text(name),
        # Until pytest reports the call phase, nothing is known: a scenario cut short
        # must not read as passed.
        "outcome": "pending",
        "blame": None,
        "rig_fault": False,
        "config_error": False,
        "framework_error": False,
        "message": "",
        "duration_s": 0.0,
        "measurements": [],
    }


class _TrackedEntry(dict[str, Any]):
    """One run's entry in ``RunSummary.results``: tells its summary when it changes, so
    the reports written after every scenario remake only what changed. Change an entry
    by assigning (``entry[key] = value``, ``update``), never a value in place."""

    __slots__ = ("_nodeid", "_touched")

    def __init__(self, nodeid: str, touched: Callable[[str], None], data: Mapping[str, Any]):
        super().__init__(data)
        self._nodeid = nodeid
        self._touched = touched

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._touched(self._nodeid)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._touched(self._nodeid)

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._touched(self._nodeid)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._touched(self._nodeid)
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self._touched(self._nodeid)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._touched(self._nodeid)
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        self._touched(self._nodeid)

    def __ior__(self, other: Any) -> _TrackedEntry:  # type: ignore[override,misc]
        super().__ior__(other)
        self._touched(self._nodeid)
        return self


class _TrackedDetails(dict[str, str]):
    """``RunSummary.details``: tells its summary which run's failure text changed."""

    __slots__ = ("_touched",)

    def __init__(self, touched: Callable[[str], None]) -> None:
        super().__init__()
        self._touched = touched

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self._touched(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._touched(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        before = dict(self)
        super().update(*args, **kwargs)
        for key in self:
            if before.get(key) != self[key]:
                self._touched(key)

    def setdefault(self, key: str, default: str = "") -> str:
        self._touched(key)
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self._touched(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, str]:
        key, value = super().popitem()
        self._touched(key)
        return key, value

    def clear(self) -> None:
        keys = list(self)
        super().clear()
        for key in keys:
            self._touched(key)

    def __ior__(self, other: Any) -> _TrackedDetails:  # type: ignore[override,misc]
        self.update(other)
        return self


@dataclass
class _Made:
    """What the reports were last made of, kept between writes (RunSummary._sync)."""

    #: what, changed, remakes every entry: the run's status, the run under way at its
    #: end, the facts (their identity and size)
    key: tuple[object, ...] = ()
    #: how many runs were listed when the order was last made
    listed: int = -1
    #: runs changed since this was made
    changed: set[str] | None = None


def _plain_copy(value: Any) -> Any:
    """``value``'s data with every dict and list its own: plain ``dict`` for a tracked
    entry (whose copy must not carry, or copy, the summary it reports to)."""
    if isinstance(value, dict):
        return {key: _plain_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain_copy(item) for item in value)
    return value


@dataclass(frozen=True)
class _MaskedEntry:
    """An entry as it was when it was masked, the masked entry, its JSON text as it
    stands in summary.json, and a number that changes each time it is made again."""

    entry: dict[str, Any]
    masked: dict[str, Any]
    text: str
    version: int


class RunSummary:
    """Per-scenario outcomes, written as summary.json and junit.xml, shown by ``hil run``.

    summary.json and junit.xml are written after every scenario, so what a write costs
    must not grow with the scenarios already written: each run's entry tells the summary
    when it changes (``_TrackedEntry``), and a write remakes (aggregates, masks,
    encodes) only the scenarios and test cases whose runs changed; the counts are kept
    as they change. A subclass that makes its entries another way (hil.rigset, which
    replaces ``results`` as a whole) is written the plain way, remade from the entries.
    """

    #: Whether entries are only ever replaced (a new dict), never changed in place: what
    #: was made of an entry can then be kept while the entry is the same object.
    ENTRIES_REPLACED = False

    def __init__(self, run_id: str, environment: Callable[[], Mapping[str, str]] = dict) -> None:
        self.run_id = run_id
        # Runs changed since each consumer last looked: the scenario list, junit's
        # test cases, the count of runs over.
        self._changed_for: tuple[set[str], set[str], set[str]] = (set(), set(), set())
        self._results: dict[str, dict[str, Any]] = {}
        self._details: dict[str, str] = _TrackedDetails(self._touch)
        # Whether the entries tell their changes (see the class docstring).
        self._tracked = all(
            getattr(type(self), name) is getattr(RunSummary, name)
            for name in ("_shown", "_scenarios", "_junit_case", "_as_dict")
        )
        #: per test node ID: which scenario and repeat it runs, its requirements and tags
        self.facts: dict[str, RunFacts] = {}
        #: (kind, node ID) -> the entry as last masked: the reports are rewritten after
        #: every scenario, and masking all each time grows with the square
        self._masked: dict[tuple[str, str], _MaskedEntry] = {}
        self._masked_versions = itertools.count(1)
        # junit.xml's <testcase> per run node ID, masked, with the facts it was made of.
        self._junit_made: dict[str, tuple[tuple[int, str, str], ET.Element]] = {}
        self._junit_cases: dict[str, ET.Element] = {}
        self._untracked_cases: dict[str, tuple[ET.Element, str]] = {}
        # The untracked way: per scenario the run entries and facts its entry was made of
        # (the entries held, so an identity check cannot meet a recycled object).
        self._untracked_made: dict[
            str, tuple[tuple[Mapping[str, Any], ...], tuple[RunFacts, ...], dict[str, Any]]
        ] = {}
        # The tracked way (``_sync_scenarios``, ``_sync_cases``): per scenario its entry,
        # masked JSON text and what it counts as; per run its <testcase> text.
        self._list_made = _Made(changed=self._changed_for[0])
        self._scenario_of: dict[str, str] = {}
        self._runs_of: dict[str, list[str]] = {}
        self._scenario_list: list[tuple[str, dict[str, Any]]] = []
        self._scenario_at: dict[str, int] = {}
        self._scenario_texts: list[str] = []
        self._scenario_tally: dict[str, tuple[str, bool, bool, bool]] = {}
        self._tally: dict[str, int] = {}
        self._cases_made = _Made(changed=self._changed_for[1])
        self._case_at: dict[str, int] = {}
        self._case_texts: list[str | None] = []
        self._case_text_of: dict[str, str | None] = {}
        self._case_kind: dict[str, str | None] = {}
        self._case_counts: dict[str | None, int] = {}
        self._runs_listed: tuple[tuple[int, int], dict[str, list[str]]] | None = None
        self._run_over: dict[str, bool] = {}
        self._runs_over = 0
        self._properties_made: tuple[tuple[tuple[str, str], ...], str] | None = None
        self._deselected_made: tuple[tuple[int, int, int], int] | None = None
        self._hostname: str | None = None
        self._holding_environment = False
        self._environment_held: dict[str, str] | None = None
        # summary.json's environment, masked and encoded, with what it was made of
        self._environment_made: tuple[tuple[tuple[str, str], ...], str] | None = None
        self.started = time.time()
        #: tests to run: scenarios x repeats
        self.total = 0
        #: how many times each scenario runs (``--repeat``)
        self.repeat = 1
        #: the ``--tags`` expression the scenarios were selected by, if any
        self.tags: str | None = None
        #: scenarios left out by -k, -m or --tags (each once, whatever its repeats)
        self._deselected: set[str] = set()
        self.status: RunStatus = "not started"
        #: why a run that did not finish ended: the interruption, the pytest.exit message
        self.ended_by = ""
        #: the scenario under way (node ID), if any
        self.current: str | None = None
        #: one line each: what kept scenarios from running (exit 2, not the terminal's fault)
        self.errors: list[str] = []
        self._interrupted = False
        self._under_way_at_end: str | None = None
        self._environment = environment
        self._suite: dict[str, str] = {"pos_hil_version": __version__}
        #: who ran it and where, with which pos-hil checkout (operator, station,
        #: pos_hil_commit: set by the plug-in)
        self.run_facts: dict[str, str] = {}
        #: when the run ended (finished, interrupted or stopped), if it has
        self.ended: float | None = None

    def environment(self) -> dict[str, str]:
        """The run's facts for every report: run ID, rig, terminal, firmware, the
        pos-hil version and commit, the fingerprint of the feature files that ran, the
        operator and station, start and (once over) end."""
        times = {"started": _iso(self.started)}
        if self.ended is not None:
            times["ended"] = _iso(self.ended)
        rig = self._environment_held
        if rig is None:
            rig = dict(self._environment())
            if self._holding_environment:
                self._environment_held = rig
        return {**rig, **self._suite, **self.run_facts, **times}

    @contextlib.contextmanager
    def environment_held(self) -> Iterator[None]:
        """Within it, the rig is asked for its facts once: the reports written together
        (summary.json, junit.xml, Allure's environment) state the same, at the cost of
        one."""
        self._holding_environment = True
        try:
            yield
        finally:
            self._holding_environment = False
            self._environment_held = None

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """Every run (test) by node ID: its entry (``pending_entry``'s keys)."""
        return self._results

    @results.setter
    def results(self, results: dict[str, dict[str, Any]]) -> None:
        # Entries that do not tell their changes: the reports are remade from them.
        self._results = results
        self._tracked = False

    @property
    def details(self) -> dict[str, str]:
        """Full failure text per run (masked), for junit.xml."""
        return self._details

    @details.setter
    def details(self, details: dict[str, str]) -> None:
        self._details = details
        self._tracked = False

    def _touch(self, nodeid: str) -> None:
        for changed in self._changed_for:
            changed.add(nodeid)

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"

    @property
    def complete(self) -> bool:
        return self.status == "finished"

    def _entry(self, nodeid: str, name: str) -> dict[str, Any]:
        entry = self._results.get(nodeid)
        if entry is None:
            entry = _TrackedEntry(nodeid, self._touch, pending_entry(nodeid, name))
            self._results[nodeid] = entry
            self._touch(nodeid)
        return entry

    # --- the run's life -------------------------------------------------------------

    def begin(
        self,
        items: Iterable[pytest.Item],
        tag_markers: Collection[str] = (),
        *,
        listed: bool = True,
    ) -> None:
        """The run starts: every selected scenario is listed, pending. ``tag_markers``:
        the marker names that come from Gherkin tags (listed as the scenario's tags).
        ``listed=False``: a worker of a run whose rigs share the scenarios out lists a
        scenario only once it is given it (hil.rigset)."""
        from hil.features import scenario_title

        items = list(items)
        for item in items:
            if listed:
                entry = self._entry(item.nodeid, item.name)
                title = scenario_title(item)
                if title is not None:
                    entry["feature"] = mask_text(title[0])
                    entry["scenario"] = mask_text(title[1])
            repeat = repeat_of(item)
            markers = list(item.iter_markers())
            requirements = [str(a) for m in markers if m.name == REQUIREMENT_MARKER for a in m.args]
            tags = {m.name for m in markers if m.name in tag_markers}
            self.facts[item.nodeid] = RunFacts(
                scenario=scenario_nodeid(item.nodeid, repeat),
                repeat=repeat.index if repeat is not None else 1,
                requirements=tuple(dict.fromkeys(requirements)),
                tags=tuple(sorted(tags)),
            )
        self.total = len(self.results) if listed else len(items)
        self.status = "running"

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self.current = nodeid

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        self.current = None

    def pytest_bdd_before_scenario(
        self, request: pytest.FixtureRequest, feature: Any, scenario: Any
    ) -> None:
        entry = self._entry(request.node.nodeid, request.node.name)
        entry["feature"] = mask_text(str(feature.name))
        entry["scenario"] = mask_text(str(scenario.name))

    # Inner wrapper (trylast): the entry is up to date before outer ones (Allure's) look.
    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        entry = self._entry(item.nodeid, item.name)
        entry["duration_s"] = round(entry["duration_s"] + report.duration, 3)
        if report.when == "call" and report.passed and entry["outcome"] == "pending":
            entry["outcome"] = "passed"
        if report.skipped and entry["outcome"] in ("pending", "passed"):
            entry["outcome"] = "skipped"
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            entry["message"] = mask_text(reason)
        elif report.failed and entry["outcome"] in ("pending", "passed", "skipped"):
            excinfo = call.excinfo
            blame: Blame = blame_of(excinfo, report.when) if excinfo else "framework"
            entry["outcome"] = "failed" if blame == "terminal" else "broken"
            entry["blame"] = blame
            entry["rig_fault"] = blame == "rig"
            entry["config_error"] = blame == "config"
            entry["framework_error"] = blame == "framework"
            message = excinfo.exconly() if excinfo is not None else report.longreprtext
            lines = message.strip().splitlines() or ["(no message)"]
            entry["message"] = mask_text(lines[0][:500])
            self.details[item.nodeid] = mask_text(report.longreprtext)
        if report.when == "teardown":
            entry["measurements"] = reporting.take_measurements()

    def blame_now(self) -> Blame | None:
        """Blame of the scenario under way (what Allure writes as it ends)."""
        entry = self.results.get(self.current) if self.current else None
        return None if entry is None else entry["blame"]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)
        suite_sha256, files = suite_fingerprint(session.items)
        self._suite = {
            "pos_hil_version": __version__,
            "suite_sha256": suite_sha256,
            "suite_files": str(files),
        }

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self._deselected.update(scenario_nodeid(item.nodeid, repeat_of(item)) for item in items)

    @property
    def deselected(self) -> int:
        """Scenarios no run of which was selected."""
        made_for = (id(self.facts), len(self.facts), len(self._deselected))
        if self._deselected_made is None or self._deselected_made[0] != made_for:
            selected = {facts.scenario for facts in self.facts.values()}
            self._deselected_made = (made_for, len(self._deselected - selected))
        return self._deselected_made[1]

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(mask_text(_one_line(report.longreprtext, report.nodeid)))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest reports pytest.exit() and "errors during collection" (its
        # Session.Interrupted) through this hook too; only Ctrl-C is an interruption.
        if isinstance(excinfo.value, pytest.Session.Interrupted):
            return  # the collection errors themselves are already recorded
        if isinstance(excinfo.value, KeyboardInterrupt):
            self._interrupted = True
            self.ended_by = "interrupted by Ctrl-C (SIGINT)"
            if excinfo.value.args == ("SIGTERM",):  # hil.lifecycle's SIGTERM handler
                self.ended_by = "interrupted by SIGTERM"
            elif type(excinfo.value) is not KeyboardInterrupt:
                self.ended_by = f"interrupted: {type(excinfo.value).__name__}: {excinfo.value}"
            return
        message = mask_text(str(getattr(excinfo.value, "msg", excinfo.value)))
        self.ended_by = f"stopped: {message}"
        if getattr(excinfo.value, "returncode", None) == CONFIG_STOP_RETURNCODE:
            self.errors.append(message)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """The run's status, before anyone writes or prints it."""
        if self.status != "running":
            return  # never started: nothing to tell
        self.ended = time.time()
        if self._interrupted:
            self.status = "interrupted"
        elif any(entry["outcome"] == "pending" for entry in self.results.values()):
            self.status = "stopped"
            if not self.ended_by:
                reason = session.shouldfail or session.shouldstop
                self.ended_by = f"stopped: {reason}" if reason else "stopped"
        else:
            self.status = "finished"
        self._under_way_at_end = self.current

    # --- what the reports say ---------------------------------------------------------

    def finished_results(self) -> list[dict[str, Any]]:
        """One entry per scenario, its repeats aggregated (``scenario_entry``), with runs
        that never finished marked: the one under way when the run was interrupted
        ``interrupted``, the others ``not run``. During the run (and in what a killed run
        leaves), ``pending``."""
        return [entry for _, entry in self._scenarios()]

    def _shown(self) -> list[tuple[str, dict[str, Any]]]:
        """Every run (test) as it stands, by node ID."""
        return [(nodeid, self._shown_entry(nodeid)) for nodeid in self._results]

    def _shown_entry(self, nodeid: str) -> dict[str, Any]:
        """One run as it stands: once the run is over, a run that never finished is
        ``interrupted`` (the one under way when the run was interrupted) or ``not run``."""
        entry = self._results[nodeid]
        if self.status in ("running", "not started") or entry["outcome"] != "pending":
            return entry
        interrupted = self.status == "interrupted" and nodeid == self._under_way_at_end
        return {**entry, "outcome": "interrupted" if interrupted else "not run"}

    def _scenarios(self) -> list[tuple[str, dict[str, Any]]]:
        """Every scenario, by node ID without the repeat, in the order they run."""
        if self._tracked:
            self._sync_scenarios()
            return list(self._scenario_list)
        runs: dict[str, list[tuple[RunFacts, dict[str, Any]]]] = {}
        for nodeid, entry in self._shown():
            facts = self.facts.get(nodeid) or RunFacts(scenario=nodeid, repeat=1)
            runs.setdefault(facts.scenario, []).append((facts, entry))
        return [
            (scenario, self._untracked_entry(scenario, sorted(its_runs, key=lambda r: r[0].repeat)))
            for scenario, its_runs in runs.items()
        ]

    def _untracked_entry(
        self, scenario: str, runs: list[tuple[RunFacts, dict[str, Any]]]
    ) -> dict[str, Any]:
        """``scenario_entry`` of ``runs``; where the entries are only ever replaced, never
        changed in place (``ENTRIES_REPLACED``: hil.rigset makes new ones from a worker's
        summary when it changed), made again only when a run's entry is another object
        or its facts changed: the --rigs controller made all 132 again after every
        scenario."""
        if not self.ENTRIES_REPLACED:
            return scenario_entry(scenario, runs)
        entries = tuple(entry for _, entry in runs)
        facts = tuple(fact for fact, _ in runs)
        made = self._untracked_made.get(scenario)
        if (
            made is not None
            and made[1] == facts
            and len(made[0]) == len(entries)
            and all(old is new for old, new in zip(made[0], entries, strict=True))
        ):
            return made[2]
        entry = scenario_entry(scenario, runs)
        self._untracked_made[scenario] = (entries, facts, entry)
        return entry

    # --- the tracked way: remade where runs changed -------------------------------------

    def _facts_of(self, nodeid: str) -> RunFacts:
        return self.facts.get(nodeid) or RunFacts(scenario=nodeid, repeat=1)

    def _sync_scenarios(self) -> None:
        """The scenario list, its JSON texts and counts, remade for the runs changed
        since the last time (all of them when the run's status or facts changed)."""
        made = self._list_made
        assert made.changed is not None
        key = (self.status, self._under_way_at_end, id(self.facts), len(self.facts))
        if key != made.key:
            made.key, made.listed = key, -1
            made.changed.update(self._results)
        if not made.changed and made.listed == len(self._results):
            return
        regroup = made.listed != len(self._results)
        if regroup:
            runs_of: dict[str, list[str]] = {}
            scenario_of: dict[str, str] = {}
            for nodeid in self._results:
                scenario = self._facts_of(nodeid).scenario
                runs_of.setdefault(scenario, []).append(nodeid)
                scenario_of[nodeid] = scenario
            for runs in runs_of.values():
                if len(runs) > 1:
                    runs.sort(key=lambda nodeid: self._facts_of(nodeid).repeat)
            self._runs_of, self._scenario_of = runs_of, scenario_of
        dirty = {self._scenario_of[n] for n in made.changed if n in self._scenario_of}
        made.changed.clear()
        if regroup:
            kept = {
                scenario: (self._scenario_list[index][1], self._scenario_texts[index])
                for scenario, index in self._scenario_at.items()
                if scenario not in dirty and scenario in self._runs_of
            }
            self._scenario_list, self._scenario_texts, self._scenario_at = [], [], {}
            self._scenario_tally = {}
            for scenario in self._runs_of:
                entry, text = kept.get(scenario) or self._make_scenario(scenario)
                self._scenario_at[scenario] = len(self._scenario_list)
                self._scenario_list.append((scenario, entry))
                self._scenario_texts.append(text)
                self._scenario_tally[scenario] = _tally_of(entry)
            self._tally = {}
            for tally in self._scenario_tally.values():
                _add_tally(self._tally, tally, 1)
            made.listed = len(self._results)
            return
        for scenario in dirty:
            entry, text = self._make_scenario(scenario)
            index = self._scenario_at[scenario]
            self._scenario_list[index] = (scenario, entry)
            self._scenario_texts[index] = text
            _add_tally(self._tally, self._scenario_tally[scenario], -1)
            self._scenario_tally[scenario] = _tally_of(entry)
            _add_tally(self._tally, self._scenario_tally[scenario], 1)

    def _make_scenario(self, scenario: str) -> tuple[dict[str, Any], str]:
        """One scenario's entry and its masked JSON as it stands in summary.json."""
        runs = [(self._facts_of(n), self._shown_entry(n)) for n in self._runs_of[scenario]]
        entry = scenario_entry(scenario, runs)
        text = json.dumps(mask_data(entry), ensure_ascii=False, indent=2)
        return entry, "    " + text.replace("\n", "\n    ")

    def _sync_cases(self) -> None:
        """junit.xml's test cases as text, remade for the runs changed since the last
        time (all of them when the run's status or end changed)."""
        made = self._cases_made
        assert made.changed is not None
        key = (self.status, self.ended_by, self._under_way_at_end)
        if key != made.key:
            made.key, made.listed = key, -1
            made.changed.update(self._results)
        changed = [n for n in made.changed if n in self._results]
        made.changed.clear()
        for nodeid in changed:
            kind, text = self._case_text(nodeid)
            if nodeid in self._case_kind:
                self._case_counts[self._case_kind[nodeid]] -= 1
            self._case_kind[nodeid] = kind
            self._case_counts[kind] = self._case_counts.get(kind, 0) + 1
            self._case_text_of[nodeid] = text
            index = self._case_at.get(nodeid)
            if index is not None:
                self._case_texts[index] = text
        if made.listed != len(self._results):
            self._case_at = {nodeid: index for index, nodeid in enumerate(self._results)}
            self._case_texts = [self._case_text_of.get(nodeid) for nodeid in self._results]
            made.listed = len(self._results)

    def _case_text(self, nodeid: str) -> tuple[str | None, str | None]:
        """What a run counts as in junit.xml (``failure``, ``error``, ``skipped``,
        ``passed``) and its <testcase> as text, indented as in the file; None while it
        is pending."""
        entry = mask_data(self._shown_entry(nodeid))
        if entry["outcome"] == "pending":
            return None, None
        case = self._build_case(entry, self._details.get(nodeid, ""))
        _mask_elements(case)
        ET.indent(case, level=2)
        return _CASE_KINDS.get(entry["outcome"], "passed"), ET.tostring(case, encoding="unicode")

    def _count_runs_over(self) -> int:
        """How many runs are over (not pending), kept as they change."""
        if not self._tracked:
            return sum(1 for e in self._results.values() if e["outcome"] != "pending")
        changed = self._changed_for[2]
        for nodeid in changed:
            entry = self._results.get(nodeid)
            over = entry is not None and entry["outcome"] != "pending"
            if over != self._run_over.get(nodeid, False):
                self._runs_over += 1 if over else -1
                self._run_over[nodeid] = over
        changed.clear()
        return self._runs_over

    # --- what the reports say, either way -------------------------------------------------

    def scenario_runs(self, nodeid: str) -> tuple[str, list[str]]:
        """The scenario a test runs, and the node IDs of all its runs (repeats)."""
        facts = self.facts.get(nodeid)
        if facts is None:
            return nodeid, [nodeid]
        made_for = (id(self.facts), len(self.facts))
        if self._runs_listed is None or self._runs_listed[0] != made_for:
            listed: dict[str, list[str]] = {}
            for run, its_facts in self.facts.items():
                listed.setdefault(its_facts.scenario, []).append(run)
            self._runs_listed = (made_for, listed)
        return facts.scenario, list(self._runs_listed[1].get(facts.scenario, [nodeid]))

    def scenario_result(self, scenario: str) -> dict[str, Any] | None:
        """One scenario's entry as the reports show it now."""
        if self._tracked:
            self._sync_scenarios()
            index = self._scenario_at.get(scenario)
            return None if index is None else self._scenario_list[index][1]
        return dict(self._scenarios()).get(scenario)

    def as_dict(self) -> dict[str, Any]:
        return self._as_dict(self._scenarios())

    def _as_dict(self, scenarios: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        return self._summary_dict(scenarios)

    def _summary_dict(
        self,
        scenarios: list[tuple[str, dict[str, Any]]],
        tally: Mapping[str, int] | None = None,
    ) -> dict[str, Any]:
        """The summary; ``tally``: the scenarios' counts, when kept (else counted)."""
        results = [entry for _, entry in scenarios]
        if tally is None:
            counted: dict[str, int] = {}
            for entry in results:
                _add_tally(counted, _tally_of(entry), 1)
            tally = counted
        return {
            "run_id": self.run_id,
            "status": self.status,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "ended_by": self.ended_by or None,
            "started": _iso(self.started),
            "updated": _iso(time.time()),
            "duration_s": round(time.time() - self.started, 3),
            "errors": list(self.errors),
            "tags": self.tags,
            "repeat": self.repeat,
            # scenarios selected; runs: scenarios x repeats
            "collected": len(results) if self.status != "not started" else self.total,
            "runs": self.total,
            "deselected": self.deselected,
            "counts": {k: tally.get(k, 0) for k in OUTCOMES},
            "rig_faults": tally.get("rig_faults", 0),
            "config_errors": tally.get("config_errors", 0),
            "framework_errors": tally.get("framework_errors", 0),
            "environment": self.environment(),
            "scenarios": results,
        }

    def _masked_entry(self, key: tuple[str, str], entry: dict[str, Any]) -> dict[str, Any]:
        """``entry`` PAN-masked value by value; masked again only when it changed."""
        return self._masked_and_text(key, entry)[0]

    def _masked_and_text(
        self, key: tuple[str, str], entry: dict[str, Any]
    ) -> tuple[dict[str, Any], str]:
        """``entry`` masked, and its JSON as it stands in summary.json's scenario list;
        both made again only when the entry changed (the untracked way).

        Whether it changed is asked of a plain copy of its data kept from last time
        (``==``, in C: 0.3 us an entry; its JSON text as the fingerprint cost 14 us, twice
        per run per write, about 0.5 s of the controller's CPU in a 4-rig run of the
        shipped suite). A copy, because an entry may be changed in place after it was
        masked (a tracked entry is)."""
        cached = self._masked.get(key)
        if cached is None or cached.entry != entry:
            masked = mask_data(entry)
            text = json.dumps(masked, ensure_ascii=False, indent=2).replace("\n", "\n    ")
            cached = _MaskedEntry(
                _plain_copy(entry), masked, "    " + text, next(self._masked_versions)
            )
            self._masked[key] = cached
        return cached.masked, cached.text

    def write(self, path: Path) -> None:
        """summary.json, PAN-masked value by value, replaced in one step (a reader, or
        a killed run, never sees half a file).

        Written after every scenario, so its cost must not grow with the run: each
        scenario's JSON is made once (json's indented encoder is pure Python) and
        spliced in; the text is the same as ``json.dumps(..., indent=2)`` of the whole.
        """
        if self._tracked:
            self._sync_scenarios()
            data = self._summary_dict(self._scenario_list, self._tally)
            entries = self._scenario_texts
        else:
            shown = self._scenarios()
            data = self._as_dict(shown)
            entries = [self._masked_and_text(("scenario", n), e)[1] for n, e in shown]
        environment = data["environment"]
        head = mask_data({**data, "environment": _ENVIRONMENT_SPLICE, "scenarios": _SPLICE})
        text = json.dumps(head, ensure_ascii=False, indent=2)
        text = text.replace(json.dumps(_ENVIRONMENT_SPLICE), self._environment_text(environment), 1)
        listed = "[\n" + ",\n".join(entries) + "\n  ]" if entries else "[]"
        text = text.replace(json.dumps(_SPLICE), listed, 1) + "\n"
        reporting.write_atomically(path, text.encode("utf-8"))

    def write_junit(self, path: Path) -> None:
        """junit.xml for CI: one test case per scenario run (each repeat its own, named by
        its node ID) that has an outcome, and while the run is not complete one more, an
        error naming why (so a killed or interrupted run never reads as a green one).
        Every text PAN-masked.

        Written after every scenario: each test case is made (masked, serialised) again
        only when its run changed, and the run's properties only when they did; both
        are spliced into the file, whose text is ElementTree's of the whole."""
        environment = self.environment()
        duration_s = round(time.time() - self.started, 3)
        if self._hostname is None:
            self._hostname = socket.gethostname()
        root = ET.Element("testsuites", name="pos-hil")
        suite = ET.SubElement(root, "testsuite", name="pos-hil", timestamp=_iso(self.started))
        suite.set("hostname", self._hostname)
        facts = {
            "run_id": self.run_id,
            "status": self.status,
            "complete": str(self.complete).lower(),
            **environment,
        }
        ET.SubElement(suite, _PROPERTIES_SPLICE)
        tests = failures = errors = skipped = 0
        if self._tracked:
            self._sync_cases()
            cases = [text for text in self._case_texts if text is not None]
            tests = len(cases)
            failures = self._case_counts.get("failure", 0)
            errors = self._case_counts.get("error", 0)
            skipped = self._case_counts.get("skipped", 0)
        else:
            cases = []
            for nodeid, recorded in self._shown():
                made = self._junit_case(nodeid, recorded)
                if made is None:
                    continue  # not over yet: the run-level entry below says so
                outcome, case = made
                cases.append(self._untracked_case_text(nodeid, case))
                tests += 1
                kind = _CASE_KINDS.get(outcome, "passed")
                failures += kind == "failure"
                errors += kind == "error"
                skipped += kind == "skipped"
        if cases:
            ET.SubElement(suite, _CASES_SPLICE)
        if not self.complete:
            tests += 1
            errors += 1
            case = ET.SubElement(
                suite, "testcase", classname="hil.run", name=f"run {self.run_id}", time="0"
            )
            ET.SubElement(case, "error", message=self.incomplete_reason())
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
        suite.set("time", f"{duration_s:.3f}")
        _mask_elements(root)
        ET.indent(root)
        text = ET.tostring(root, encoding="unicode", xml_declaration=True)
        text = text.replace(f"<{_PROPERTIES_SPLICE} />", self._properties_text(facts), 1)
        if cases:
            text = text.replace(f"<{_CASES_SPLICE} />", "\n    ".join(cases), 1)
        reporting.write_atomically(path, (text + "\n").encode("utf-8"))

    def _environment_text(self, environment: Mapping[str, Any]) -> str:
        """summary.json's environment, masked, as it stands in the file; made again only
        when it changed (a few times a run)."""
        items = tuple((str(key), str(value)) for key, value in environment.items())
        if self._environment_made is None or self._environment_made[0] != items:
            text = json.dumps(mask_data(dict(environment)), ensure_ascii=False, indent=2)
            self._environment_made = (items, text.replace("\n", "\n  "))
        return self._environment_made[1]

    def _untracked_case_text(self, nodeid: str, case: ET.Element) -> str:
        """A <testcase> as text, serialised again only when it is another element (its
        run changed: ``_junit_case`` makes a new one)."""
        cached = self._untracked_cases.get(nodeid)
        if cached is not None and cached[0] is case:
            return cached[1]
        ET.indent(case, level=2)
        case.tail = None
        text = ET.tostring(case, encoding="unicode")
        self._untracked_cases[nodeid] = (case, text)
        return text

    def _properties_text(self, facts: Mapping[str, object]) -> str:
        """junit.xml's <properties> of the run, masked, as text; made again only when
        the facts changed (a few times a run)."""
        items = tuple((name, str(value)) for name, value in facts.items())
        if self._properties_made is None or self._properties_made[0] != items:
            properties = ET.Element("properties")
            for name, value in items:
                ET.SubElement(properties, "property", name=name, value=value)
            _mask_elements(properties)
            ET.indent(properties, level=2)
            self._properties_made = (items, ET.tostring(properties, encoding="unicode"))
        return self._properties_made[1]

    def _junit_case(self, nodeid: str, recorded: dict[str, Any]) -> tuple[str, ET.Element] | None:
        """The masked <testcase> of one run and its outcome; None while it is pending
        (the untracked way: made again only when its entry changed)."""
        entry = self._masked_entry(("run", nodeid), recorded)
        outcome = entry["outcome"]
        if outcome == "pending":
            return None
        detail = self.details.get(nodeid, "")
        key = (self._masked[("run", nodeid)].version, detail, str(self.ended_by))
        cached = self._junit_made.get(nodeid)
        if cached is not None and cached[0] == key:
            return outcome, cached[1]
        case = self._build_case(entry, detail)
        _mask_elements(case)
        self._junit_made[nodeid] = (key, case)
        self._junit_cases[nodeid] = case
        return outcome, case

    def _build_case(self, entry: Mapping[str, Any], detail: str) -> ET.Element:
        """A run's <testcase> from its masked entry (not masked itself yet)."""
        outcome = entry["outcome"]
        # Jenkins and GitLab group by classname and show the name: the feature and
        # the scenario as the Gherkin titles them, an outline row's values and the
        # repeat in brackets as in the node ID; the file stays in the "file" attribute.
        feature_path, _, test_name = entry["nodeid"].partition("::")
        row = test_name.partition("[")[2].rpartition("]")[0]
        case = ET.Element(
            "testcase",
            classname=entry["feature"] or feature_path,
            name=_case_name(entry["scenario"] or test_name, row),
            file=feature_path,
            time=f"{entry['duration_s']:.3f}",
        )
        if outcome == "failed":
            ET.SubElement(case, "failure", message=entry["message"]).text = detail
        elif outcome == "broken":
            title = BLAME_TITLES[entry["blame"] or "framework"]
            message = f"{title}: {entry['message']}"
            ET.SubElement(case, "error", message=message).text = detail
        elif outcome == "interrupted":
            ET.SubElement(case, "error", message=f"{self.ended_by} during this scenario")
        elif outcome in ("skipped", "not run"):
            reason = entry["message"] if outcome == "skipped" else f"not run: {self.ended_by}"
            ET.SubElement(case, "skipped", message=reason)
        return case

    def incomplete_reason(self, *, counted: bool = True) -> str:
        """One line: why this run is not complete (empty when it is). ``counted=False``:
        while the run runs, without how many scenarios are over (which changes with
        every scenario; the Allure run marker is written only when its text changes)."""
        done = self._count_runs_over()
        progress = f"{done} of {self.total} scenarios over"
        if self.repeat > 1:
            progress = f"{done} of {self.total} scenario runs over, {self.repeat} per scenario"
        if self.status == "running":
            said = f" ({progress})" if counted else ""
            return (
                f"Run incomplete: run {self.run_id} had not finished when this was "
                f"written{said}; if it is no longer running, it was killed"
            )
        if self.status in ("interrupted", "stopped"):
            under_way = self.results.get(self._under_way_at_end or "")
            during = f" during '{under_way['scenario']}'" if under_way is not None else ""
            return f"Run incomplete: run {self.run_id} {self.ended_by}{during} ({progress})"
        return ""


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _xml_safe(text: str) -> str:
    """XML 1.0 cannot hold most control characters, even escaped; a terminal's garbage
    in a failure message must not make junit.xml unreadable."""
    return "".join(
        c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") else "?"
        for c in text
    )


def _one_line(text: str, where: str) -> str:
    """A collection error as one line: the error's own text when it is one line (hil's
    feature errors are), else where it happened and the last line of the traceback."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 1:
        return lines[0]
    last = lines[-1].removeprefix("E").strip() if lines else "collection failed"
    return f"{where}: {last}"


def _mask_elements(root: ET.Element, skip: Callable[[ET.Element], bool] | None = None) -> None:
    """PAN-mask (and make XML-safe) every attribute and text under ``root``; a subtree
    for which ``skip`` is true is left as it is (masked already)."""
    stack = [root]
    while stack:
        element = stack.pop()
        if skip is not None and skip(element):
            continue
        for key, value in element.attrib.items():
            element.set(key, mask_text(_xml_safe(value)))
        if element.text:
            element.text = mask_text(_xml_safe(element.text))
        stack.extend(element)


def _case_name(title: str, row: str) -> str:
    """The scenario's title with its outline row and repeat, unless it already says them
    (a plain pytest test is titled by its own name, brackets included)."""
    return f"{title} [{row}]" if row and not title.endswith(f"[{row}]") else title
