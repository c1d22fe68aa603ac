"""The outcome of a run, scenario by scenario: summary.json and the basis of hil's exit code.

A pytest plugin object (registered by hil.plugin): it records each scenario's outcome,
reason, duration and measurements, and what kept scenarios from running at all
(collection errors, configuration errors), which ``hil run`` must report as exit 2,
never as a terminal failure or an interruption.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hil import reporting
from hil.errors import ConfigError, RigError
from hil.masking import mask_data, mask_text


class RunSummary:
    """Per-scenario outcomes, written as summary.json and shown by ``hil run``."""

    def __init__(self, environment: Callable[[], Mapping[str, str]] = dict) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        self.total = 0
        self.interrupted = False
        #: one line each: what kept scenarios from running (exit 2, not the terminal's fault)
        self.errors: list[str] = []
        self._environment = environment

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
                "config_error": False,
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
            config_error = excinfo is not None and excinfo.errisinstance(ConfigError)
            terminal_fault = excinfo is not None and excinfo.errisinstance(AssertionError)
            entry["outcome"] = "failed" if terminal_fault and not rig_fault else "broken"
            entry["rig_fault"] = rig_fault
            entry["config_error"] = config_error
            message = excinfo.exconly() if excinfo is not None else report.longreprtext
            entry["message"] = mask_text(message.strip().splitlines()[0][:500])
        if report.when == "teardown":
            entry["measurements"] = reporting.take_measurements()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(mask_text(_one_line(report.longreprtext, report.nodeid)))

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest reports pytest.exit() and "errors during collection" (its
        # Session.Interrupted) through this hook too; only Ctrl-C is an interruption.
        # An exit (e.g. a rig file the rig could not build) says why.
        if isinstance(excinfo.value, pytest.Session.Interrupted):
            return  # the collection errors themselves are already recorded
        if isinstance(excinfo.value, KeyboardInterrupt):
            self.interrupted = True
        else:
            self.errors.append(mask_text(str(getattr(excinfo.value, "msg", excinfo.value))))

    def finished_results(self) -> list[dict[str, Any]]:
        """Results with scenarios that never finished marked interrupted (Ctrl-C) or
        not run (the run stopped on a configuration error)."""
        return [
            {**entry, "outcome": "interrupted" if self.interrupted else "not run"}
            if entry["outcome"] == "pending"
            else entry
            for entry in self.results.values()
        ]

    def as_dict(self, environment: Mapping[str, str]) -> dict[str, Any]:
        results = self.finished_results()
        counts = {
            k: sum(1 for r in results if r["outcome"] == k)
            for k in ("passed", "failed", "broken", "skipped", "interrupted", "not run")
        }
        return {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_s": round(time.time() - self.started, 3),
            "interrupted": self.interrupted,
            "errors": list(self.errors),
            "collected": self.total,
            "counts": counts,
            "rig_faults": sum(1 for r in results if r["rig_fault"]),
            "config_errors": sum(1 for r in results if r["config_error"]),
            "environment": dict(environment),
            "scenarios": results,
        }

    def write(self, path: Path) -> None:
        """summary.json, PAN-masked value by value."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = mask_data(self.as_dict(self._environment()))
        path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


def _one_line(text: str, where: str) -> str:
    """A collection error as one line: the error's own text when it is one line (hil's
    feature errors are), else where it happened and the last line of the traceback."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 1:
        return lines[0]
    last = lines[-1].removeprefix("E").strip() if lines else "collection failed"
    return f"{where}: {last}"
