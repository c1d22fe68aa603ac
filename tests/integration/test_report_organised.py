"""The Allure results read like the self-check (issue 12, part 2).

Plugin tests (pytester, trivial steps, no rig): suites are area / feature / scenario,
a step's parameters are what the person typed (never a fixture object), measurements
are parameters with value, limit and verdict plus a table attachment, and ``@issue:``,
``@tms:`` and ``@req:`` tags become links through the rig file's ``[report] links`` and
the environment.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from hil.suite import DEFAULT_RIG, FIXTURES
from hil.summary import CONFIG_STOP_RETURNCODE

pytestmark = pytest.mark.integration

STEPS = """
import pytest
from pytest_bdd import given, parsers, then

from hil import reporting


class Gadget:
    '''A fixture object: its repr must never reach the report.'''


@pytest.fixture
def gadget():
    return Gadget()


@given(parsers.parse("the supply is set to {volts:d} V"))
def supply(gadget, volts):
    assert isinstance(gadget, Gadget)


@given(parsers.parse('the admin password is "{password}"'))
def admin_password(password):
    pass


@then(parsers.re(r"the boot takes (?P<seconds>[0-9.]+) s"), converters={"seconds": float})
def boot(gadget, seconds):
    measured = reporting.measure("boot time", seconds, "s", high=5.0)
    assert measured.passed, measured.describe()
"""

FEATURE = """\
@epic:power @issue:LAB-12
Feature: Power supply
  @tms:TC-7 @req:SC-PWR-01
  Scenario: Low supply is reported
    Given the supply is set to 11 V
    Then the boot takes 1.50 s

  Scenario: Boot too slow
    Given the supply is set to 12 V
    And the admin password is "hunter2-typed"
    Then the boot takes 7.25 s
"""


def _project(folder: Path) -> None:
    (folder / "conftest.py").write_text(STEPS)
    (folder / "features").mkdir()
    (folder / "features" / "power.feature").write_text(FEATURE)
    rig = DEFAULT_RIG.read_text().replace("../fixtures", str(FIXTURES))
    rig += (
        '\n[report]\nlinks = { issue = "https://tracker.example/browse/{}", '
        'req = "https://lab.example/req/{}" }\n'
    )
    (folder / "rig.toml").write_text(rig)


def _results(pytester: pytest.Pytester, *args: str) -> dict[str, dict[str, Any]]:
    pytester.runpytest_subprocess(
        "features",
        "-o",
        "hil_features=true",
        "-p",
        "no:cacheprovider",
        "--alluredir=out",
        *args,
    )
    results = [json.loads(p.read_text()) for p in (pytester.path / "out").glob("*-result.json")]
    return {str(r["name"]): r for r in results}


def test_suites_steps_measurements_and_links(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(pytester.path)
    monkeypatch.setenv("HIL_TMS_URL", "https://tms.example/case/{}")
    results = _results(pytester, "--rig=rig.toml")
    low, slow = results["Low supply is reported"], results["Boot too slow"]

    labels = {(label["name"], label["value"]) for label in low["labels"]}
    assert {
        ("parentSuite", "power"),
        ("suite", "Power supply"),
        ("subSuite", "Low supply is reported"),
    } <= labels
    assert sum(1 for name, _ in labels if name == "suite") == 1

    # What the person typed, as typed; never the fixture the step also takes.
    given, then = low["steps"]
    assert given["parameters"] == [{"name": "volts", "value": "11"}]
    assert then["parameters"] == [{"name": "seconds", "value": "1.50"}]
    assert "Gadget" not in json.dumps(low) and "object at 0x" not in json.dumps(low)

    (measured,) = [p for p in low["parameters"] if p["name"] == "boot time"]
    assert measured == {
        "name": "boot time",
        "value": "1.500 s (limit <= 5 s): PASS",
        "excluded": True,
    }
    (table,) = [a for a in low["attachments"] if a["name"] == "measurements"]
    assert table["type"] == "text/csv"
    rows = list(csv.reader((pytester.path / "out" / table["source"]).read_text().splitlines()))
    assert rows == [
        ["measurement", "value", "unit", "low limit", "high limit", "verdict"],
        ["boot time", "1.5", "s", "", "5", "PASS"],
    ]
    assert slow["status"] == "failed"
    assert slow["steps"][1]["parameters"] == [{"name": "password", "value": "<secret, 13 chars>"}]
    (too_slow,) = [p for p in slow["parameters"] if p["name"] == "boot time"]
    assert too_slow["value"] == "7.250 s (limit <= 5 s): FAIL"

    links = sorted((link["type"], link["name"], link["url"]) for link in low["links"])
    assert links == [
        ("issue", "LAB-12", "https://tracker.example/browse/LAB-12"),
        ("tms", "SC-PWR-01", "https://lab.example/req/SC-PWR-01"),
        ("tms", "TC-7", "https://tms.example/case/TC-7"),
    ]
    # The feature's issue tag reaches every scenario of the feature.
    assert [link["name"] for link in slow["links"]] == ["LAB-12"]


def test_without_patterns_tags_make_no_links_that_lead_nowhere(pytester: pytest.Pytester) -> None:
    _project(pytester.path)
    results = _results(pytester)
    low = results["Low supply is reported"]
    assert low.get("links", []) == []
    assert ("tag", "issue_LAB-12") in {(label["name"], label["value"]) for label in low["labels"]}


def test_a_bad_link_pattern_is_a_configuration_stop_naming_the_field(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester.path)
    rig = pytester.path / "rig.toml"
    rig.write_text(rig.read_text().replace("browse/{}", "browse/"))
    result = pytester.runpytest_subprocess(
        "features", "-o", "hil_features=true", "-p", "no:cacheprovider", "--rig=rig.toml"
    )
    assert result.ret == CONFIG_STOP_RETURNCODE  # a rig file error: hil run exits 2
    output = result.stdout.str() + result.stderr.str()
    assert "report.links: issue:" in output and "has no {} where the ID goes" in output
