"""Who is to blame for a scenario that did not pass, and hil's exit code for a run.

The split is what keeps a mistake of ours, of the lab's or of the rig from reading as
a firmware failure: only the terminal's failures exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from pytest_bdd.exceptions import StepDefinitionNotFoundError

import hil
from hil.errors import CommandTimeout, ConfigError, DutError, RigError
from hil.summary import (
    EXIT_DUT_FAILED,
    EXIT_FRAMEWORK_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RIG_FAULT,
    EXIT_USAGE,
    Blame,
    RunSummary,
    blame_of,
    exit_code_for,
)

PAN = "4761739001010010"


def _caught(error: BaseException) -> pytest.ExceptionInfo[BaseException]:
    try:
        raise error
    except BaseException:
        return pytest.ExceptionInfo.from_current()


def _raised_by_code_in(path: Path) -> pytest.ExceptionInfo[BaseException]:
    """An AssertionError whose innermost frame is a module at ``path``."""
    namespace: dict[str, Any] = {}
    exec(compile("def check():\n    assert 1 == 2, 'invariant'\n", str(path), "exec"), namespace)
    try:
        namespace["check"]()
    except AssertionError:
        return pytest.ExceptionInfo.from_current()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("error", "blame"),
    [
        (DutError("wrong answer"), "terminal"),
        (CommandTimeout("no answer", command="device.info"), "terminal"),
        (AssertionError("PAN read differs"), "terminal"),
        (RigError("reader gone"), "rig"),
        (ConfigError("x.yaml: bogus: unknown key"), "config"),
        (StepDefinitionNotFoundError("no step"), "config"),
        (TypeError("unsupported operand"), "framework"),
        (KeyError("pan"), "framework"),
        (OSError(5, "I/O error"), "framework"),
    ],
)
def test_blame_follows_the_exception(error: BaseException, blame: Blame) -> None:
    assert blame_of(_caught(error), "call") == blame


def test_a_bare_assert_of_the_library_is_ours_but_a_steps_is_the_terminals(
    tmp_path: Path,
) -> None:
    library = Path(hil.__file__).parent
    assert blame_of(_raised_by_code_in(library / "rig.py"), "call") == "framework"
    assert blame_of(_raised_by_code_in(library / "steps" / "cards.py"), "call") == "terminal"
    assert blame_of(_raised_by_code_in(tmp_path / "conftest.py"), "call") == "terminal"


def test_an_assertion_outside_the_steps_is_never_a_verdict() -> None:
    assert blame_of(_caught(AssertionError("fixture")), "setup") == "framework"
    assert blame_of(_caught(DutError("no boot")), "setup") == "terminal"


def _summary(**overrides: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "status": "finished",
        "errors": [],
        "counts": {"passed": 3, "failed": 0, "broken": 0},
        "rig_faults": 0,
        "config_errors": 0,
        "framework_errors": 0,
    }
    summary.update(overrides)
    return summary


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({}, EXIT_OK),
        ({"counts": {"failed": 1}}, EXIT_DUT_FAILED),
        ({"counts": {"broken": 1}, "rig_faults": 1}, EXIT_RIG_FAULT),
        ({"counts": {"broken": 1}, "framework_errors": 1}, EXIT_FRAMEWORK_BUG),
        ({"counts": {"broken": 1}, "config_errors": 1}, EXIT_USAGE),
        ({"status": "stopped", "errors": ["configuration error: rig.toml: x"]}, EXIT_USAGE),
        # precedence: input first, then our bugs, then the rig, then the terminal
        ({"counts": {"failed": 2, "broken": 3}, "rig_faults": 1, "framework_errors": 1}, 70),
        ({"counts": {"failed": 2, "broken": 1}, "rig_faults": 1}, EXIT_RIG_FAULT),
        ({"counts": {"broken": 2}, "config_errors": 1, "framework_errors": 1}, EXIT_USAGE),
        ({"status": "interrupted", "counts": {"failed": 1}, "rig_faults": 1}, EXIT_INTERRUPTED),
        # stopped early (-x, a hook's pytest.exit) with nothing failed: not a pass
        ({"status": "stopped"}, EXIT_USAGE),
    ],
)
def test_exit_code_for_a_run(overrides: dict[str, Any], code: int) -> None:
    assert exit_code_for(_summary(**overrides)) == code


def test_exit_codes_stay_clear_of_pytests_and_each_other() -> None:
    codes = [EXIT_OK, EXIT_DUT_FAILED, EXIT_USAGE, EXIT_RIG_FAULT, EXIT_FRAMEWORK_BUG]
    assert len(set([*codes, EXIT_INTERRUPTED])) == 6
    # pytest's own: 0 ok, 1 failed, 2 interrupted, 3 internal, 4 usage, 5 none collected
    assert EXIT_FRAMEWORK_BUG not in range(6) and EXIT_FRAMEWORK_BUG != EXIT_INTERRUPTED


class _Item:
    """What RunSummary reads of a pytest item."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid
        self.name = nodeid.rsplit("::", 1)[-1]

    def iter_markers(self) -> list[pytest.Mark]:
        return []


def _running_summary(tmp_path: Path) -> RunSummary:
    summary = RunSummary("nightly-7", lambda: {"rig": "sim"})
    items = [_Item(f"features/boot.feature::test_{n}") for n in ("a", "b", "c")]
    summary.begin(items)  # type: ignore[arg-type]
    summary.results["features/boot.feature::test_a"].update(
        outcome="passed", measurements=[{"name": "boot_s", "low": None, "high": 2.0}]
    )
    return summary


def test_a_run_under_way_says_it_is_not_complete(tmp_path: Path) -> None:
    summary = _running_summary(tmp_path)
    summary.write(tmp_path / "summary.json")
    data = json.loads((tmp_path / "summary.json").read_text())
    assert (data["run_id"], data["status"], data["complete"]) == ("nightly-7", "running", False)
    assert data["counts"]["pending"] == 2 and data["counts"]["passed"] == 1
    assert data["scenarios"][0]["measurements"][0]["low"] is None  # null, not "None"

    summary.write_junit(tmp_path / "junit.xml")
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()[0]
    assert (suite.get("tests"), suite.get("errors"), suite.get("failures")) == ("2", "1", "0")
    (run_case,) = [c for c in suite.iter("testcase") if c.get("classname") == "hil.run"]
    error = run_case.find("error")
    assert error is not None
    assert "run nightly-7 had not finished" in (error.get("message") or "")
    assert "1 of 3 scenarios over" in (error.get("message") or "")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["run_id"] == "nightly-7" and properties["complete"] == "false"


def test_junit_text_is_masked_and_blame_named(tmp_path: Path) -> None:
    summary = _running_summary(tmp_path)
    entry = summary.results["features/boot.feature::test_b"]
    entry.update(outcome="broken", blame="rig", rig_fault=True, message=f"card {PAN} stuck")
    summary.details["features/boot.feature::test_b"] = f"data = {{'pan': '{PAN}'}}"
    summary.write_junit(tmp_path / "junit.xml")
    text = (tmp_path / "junit.xml").read_text()
    assert PAN not in text
    assert 'message="Rig fault: card 476173******0010 stuck"' in text
