"""hil.plugin.RunReports: what is rewritten after every scenario, and what only when
it changes (the Allure run marker, the environment, a rig worker's failure details)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hil import reporting
from hil.plugin import RunOutputs, RunReports
from hil.summary import RunSummary


class _Item:
    def __init__(self, name: str) -> None:
        self.nodeid = f"features/a.feature::{name}"
        self.name = name

    def iter_markers(self) -> list[Any]:
        return []


class _Session:
    shouldfail = False
    shouldstop = False


def _reports(tmp_path: Path) -> tuple[RunReports, RunSummary]:
    summary = RunSummary("run-9", lambda: {"rig": "sim"})
    summary.begin([_Item(f"test_{n}") for n in "abc"])  # type: ignore[arg-type]
    outputs = RunOutputs(
        summary=tmp_path / "summary.json",
        junit=tmp_path / "junit.xml",
        alluredir=tmp_path / "allure-results",
        clean_alluredir=False,
        started_ms=1_790_000_000_000,
        details=tmp_path / "details.json",
    )
    return RunReports(None, summary, outputs), summary  # type: ignore[arg-type]


def _marker(tmp_path: Path) -> dict[str, Any]:
    path = reporting.run_marker_path(tmp_path / "allure-results", "run-9")
    return dict(json.loads(path.read_text()))


def test_the_run_marker_is_written_when_its_text_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports, summary = _reports(tmp_path)
    written: list[str] = []
    write_marker = reporting.write_run_marker

    def counted(alluredir: Path, run_id: str, reason: str, started_ms: int) -> None:
        written.append(reason)
        write_marker(alluredir, run_id, reason, started_ms)

    monkeypatch.setattr(reporting, "write_run_marker", counted)
    reports.write()
    message = _marker(tmp_path)["statusDetails"]["message"]
    assert message == (
        "Run incomplete: run run-9 had not finished when this was written; "
        "if it is no longer running, it was killed"
    )
    for nodeid in list(summary.results)[:2]:
        summary.results[nodeid]["outcome"] = "passed"
        reports.write()
    assert len(written) == 1  # the scenarios over are counted in summary.json and junit
    junit = (tmp_path / "junit.xml").read_text()
    assert "2 of 3 scenarios over" in junit
    summary.ended_by = "interrupted by SIGTERM"
    summary._interrupted = True
    summary.pytest_sessionfinish(_Session())  # type: ignore[arg-type]
    reports.write()
    assert len(written) == 2
    message = _marker(tmp_path)["statusDetails"]["message"]
    assert message.startswith("Run incomplete: run run-9 interrupted by SIGTERM")
    assert message.endswith("(2 of 3 scenarios over)")


def test_a_finished_run_has_no_marker_and_details_are_written_when_they_change(
    tmp_path: Path,
) -> None:
    reports, summary = _reports(tmp_path)
    reports.write()
    details = tmp_path / "details.json"
    assert json.loads(details.read_text()) == {}
    before = details.stat().st_ino
    first = next(iter(summary.results))
    summary.results[first]["outcome"] = "passed"
    reports.write()
    assert details.stat().st_ino == before  # nothing new to say: not rewritten
    summary.details[first] = "E   AssertionError: declined"
    reports.write()
    assert json.loads(details.read_text()) == {first: "E   AssertionError: declined"}
    for entry in summary.results.values():
        entry["outcome"] = "passed"
    summary.pytest_sessionfinish(_Session())  # type: ignore[arg-type]
    reports.write()
    assert summary.complete
    marker = reporting.run_marker_path(tmp_path / "allure-results", "run-9")
    assert not marker.exists()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "finished"
