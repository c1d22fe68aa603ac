"""Feature files run with no glue module; mistakes in them stop the run as one line
each, before any rig starts (exit 2 from ``hil run``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"

STEPS = """
from pytest_bdd import given, then

@given("a counter at zero", target_fixture="counter")
def counter():
    return [0]

@then("the counter is still zero")
def still_zero(counter):
    assert counter == [0]
"""

FEATURE = """
Feature: Counting
  Scenario: Nothing happens
    Given a counter at zero
    Then the counter is still zero

  Scenario: Nothing happens again
    Given a counter at zero
    Then the counter is still zero
"""


def _project(pytester: pytest.Pytester, feature: str = FEATURE) -> None:
    pytester.makeconftest(STEPS)
    (pytester.path / "features").mkdir()
    (pytester.path / "features" / "counting.feature").write_text(textwrap.dedent(feature))


def test_a_folder_of_features_runs_without_glue(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest("features", "-o", "hil_features=true", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*features/counting.feature::test_nothing_happens PASSED*"])


def test_other_projects_are_left_alone(pytester: pytest.Pytester) -> None:
    _project(pytester)
    result = pytester.runpytest("features")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_feature_file_named_on_the_command_line_is_collected(pytester: pytest.Pytester) -> None:
    _project(pytester)
    pytester.runpytest("features/counting.feature").assert_outcomes(passed=2)


def test_a_scenario_a_glue_module_binds_runs_once(pytester: pytest.Pytester) -> None:
    _project(pytester)
    (pytester.path / "features" / "test_glue.py").write_text(
        "from pytest_bdd import scenarios\n\nscenarios('.')\n"
    )
    result = pytester.runpytest("features", "-o", "hil_features=true", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_glue.py::test_nothing_happens PASSED*"])


def test_a_gherkin_syntax_error_names_file_and_line(pytester: pytest.Pytester) -> None:
    _project(pytester, FEATURE.replace("  Scenario: Nothing happens again", "  Scenaro: oops"))
    result = pytester.runpytest("features", "-o", "hil_features=true")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's code for collection errors
    result.stdout.fnmatch_lines(
        ["*features/counting.feature:7: Gherkin syntax error: *(line: 'Scenaro: oops')*"]
    )


def test_an_unknown_step_names_the_closest_phrasings(pytester: pytest.Pytester) -> None:
    _project(
        pytester, FEATURE.replace("Then the counter is still zero", "Then the countr is zero", 1)
    )
    result = pytester.runpytest("features", "-o", "hil_features=true")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            '*features/counting.feature:5: unknown step "Then the countr is zero"; closest known: '
            '"Then the counter is still zero"; *'
        ]
    )


def _hil_run(folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(HIL),
            "run",
            "--features",
            str(folder),
            "--reports",
            str(cwd / "reports"),
            "--no-html",
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        (
            "Feature: Boot\n  Scenario: a\n    Given the terminal is idle\n  Scenaro: b\n",
            "hil: features/boot.feature:4: Gherkin syntax error: ",
        ),
        (
            "Feature: Boot\n  Scenario: a\n    Given the terminal is idel\n",
            'features/boot.feature:3: unknown step "Given the terminal is idel"; closest known: '
            '"Given the terminal is idle"',
        ),
        (None, "hil: no scenarios collected from features"),
    ],
)
def test_hil_run_blames_the_feature_files_with_exit_2(
    tmp_path: Path, feature: str | None, expected: str
) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    if feature is not None:
        (folder / "boot.feature").write_text(feature)
    result = _hil_run(Path("features"), tmp_path)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


VALUE_STEPS = """
from pytest_bdd import given, then

@given("a value", target_fixture="value")
def {name}_value():
    return "{name}"

@then("the value is {name}")
def is_{name}(value):
    assert value == "{name}"
"""

# Each step, looked up again by pytest-bdd's own lookup, twice by hil's (the second time
# from what it kept): the same definitions in the same order.
COMPARE_LOOKUPS = """
import importlib

from hil.features import StepLookup

def pytest_bdd_before_step(request, feature, scenario, step, step_func):
    lookup = importlib.import_module("pytest_bdd.scenario").find_fixturedefs_for_step
    assert isinstance(lookup, StepLookup)
    manager, node = request._fixturemanager, request.node
    for _ in range(2):
        kept = list(lookup(step=step, fixturemanager=manager, node=node))
        own = list(lookup.original(step=step, fixturemanager=manager, node=node))
        assert kept == own and kept, step.name
"""


def test_the_step_lookup_sees_what_pytest_bdd_sees_from_each_folder(
    pytester: pytest.Pytester,
) -> None:
    """hil's step lookup (hil.features.StepLookup, kept per place and step) finds the same
    definitions as pytest-bdd's own, in the same order, for every step it runs: a folder's
    conftest.py overrides a phrase for its own scenarios only, and a step seen again is
    answered as the first time."""
    pytester.makeconftest(VALUE_STEPS.format(name="top") + COMPARE_LOOKUPS)
    feature = "Feature: F\n  Scenario: S{n}\n    Given a value\n    Then the value is {v}\n"
    inner = pytester.path / "features" / "inner"
    inner.mkdir(parents=True)
    for n in (1, 2):
        (pytester.path / "features" / f"top{n}.feature").write_text(feature.format(n=n, v="top"))
        (inner / f"in{n}.feature").write_text(feature.format(n=n, v="inner"))
    (inner / "conftest.py").write_text(VALUE_STEPS.format(name="inner"))
    result = pytester.runpytest("features", "-o", "hil_features=true", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
