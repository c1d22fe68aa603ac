"""Selecting runs by tag and repeating scenarios (issue 11, items 5 and 8).

Plugin tests (pytester, trivial steps, no rig): what Gherkin tags become (registered
markers, Allure labels and links, summary.json's requirements and tags), ``--hil-tags``
selection and its unknown-tag error, ``--hil-repeat`` as tests of their own whose
outcomes add up per scenario in summary.json, junit and Allure.

End to end through ``hil run`` on the sim rig: ``--repeat 3`` with a real terminal (the
rig is put back between repeats), a scenario that fails every second run ("failed 1 of
2", exit 1), Ctrl-C in the middle of a repeat, and ``--tags`` over the shipped suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from hil.suite import DEFAULT_RIG, FEATURES, FIXTURES

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"

# --- plugin tests: trivial steps, no rig ---------------------------------------------------

STEPS = """
from pytest_bdd import given, then, when

CALLS = {"n": 0}


@given("nothing")
def nothing():
    pass


@when("the flaky step runs")
def flaky():
    # Fails every second time it runs in this process: an intermittent defect.
    CALLS["n"] += 1
    assert CALLS["n"] % 2 == 1, f"run {CALLS['n']}: the echo never came back"


@then("all is well")
def all_is_well():
    pass
"""

FEATURE = """\
@epic:billing @severity:critical @certification
Feature: Billing
  @smoke @req:SC-BILL-01
  Scenario: Quick
    Given nothing
    Then all is well

  @smoke @slow @req:SC-BILL-01 @req:SC-BILL-02
  Scenario: Quick but long
    Given nothing
    Then all is well

  @nightly
  Scenario: Sweep
    Given nothing
    Then all is well

  Scenario Outline: Rows
    Given nothing
    Then all is well

    Examples:
      | row |
      | a   |
      | b   |
"""

FLAKY_FEATURE = """\
@epic:comm
Feature: Flaky
  @req:SC-COMM-01
  Scenario: Echo
    Given nothing
    When the flaky step runs
    Then all is well
"""


def _project(folder: Path, **features: str) -> Path:
    (folder / "conftest.py").write_text(STEPS)
    (folder / "features").mkdir(exist_ok=True)
    for name, text in features.items():
        (folder / "features" / f"{name}.feature").write_text(text)
    return folder


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_subprocess(
        "features",
        "-o",
        "hil_features=true",
        "-p",
        "no:cacheprovider",
        f"--hil-summary={summary}",
        "-v",
        *args,
    )
    data = json.loads(summary.read_text()) if summary.is_file() else {}
    return result, data


def test_tags_select_scenarios_and_every_tag_is_a_registered_marker(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester.path, billing=FEATURE)
    # strict markers and unknown-mark warnings as errors: every tag used is registered
    strict = ("-o", "strict_markers=true", "-W", "error::pytest.PytestUnknownMarkWarning")
    result, summary = _run(pytester, "--hil-tags", "smoke and not slow", *strict)
    result.assert_outcomes(passed=1, deselected=4)
    assert [s["scenario"] for s in summary["scenarios"]] == ["Quick"]
    assert (summary["tags"], summary["collected"], summary["deselected"]) == (
        "smoke and not slow",
        1,
        4,
    )
    (quick,) = summary["scenarios"]
    assert quick["requirements"] == ["SC-BILL-01"]
    assert quick["tags"] == ["area_billing", "certification", "req_SC-BILL-01", "smoke"]

    # a tag as the feature writes it, without its @; plain pytest's -m sees the same markers
    for args in (
        ["--hil-tags", "epic:billing and not nightly"],
        ["-m", "area_billing and not nightly"],
    ):
        result, _ = _run(pytester, *args, *strict)
        result.assert_outcomes(passed=4, deselected=1)
    result, summary = _run(pytester, "--hil-tags", "req:SC-BILL-02 or nightly")
    assert sorted(s["scenario"] for s in summary["scenarios"]) == ["Quick but long", "Sweep"]


def test_an_unknown_tag_is_a_usage_error_naming_it_and_the_known_tags(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester.path, billing=FEATURE)
    result, summary = _run(pytester, "--hil-tags", "smoke and not slwo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert summary == {}, "the run never started: no summary"
    lines = [line for line in result.stderr.lines if line.strip()]
    assert lines == [
        "ERROR: --hil-tags: unknown tag 'slwo' ('slwo': did you mean 'slow'?); known tags: "
        "area_billing, certification, nightly, slow, smoke, and 2 requirement tags req_<ID>"
    ]
    result, _ = _run(pytester, "--hil-tags", "smoke and")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --hil-tags: 'smoke and' is not a tag expression: *"])
    result, _ = _run(pytester, "--hil-repeat", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --hil-repeat: '0' is not a whole number of 1 or more"])


def _allure(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*-result.json"))]


def test_requirements_become_allure_links_or_labels(pytester: pytest.Pytester) -> None:
    _project(pytester.path, billing=FEATURE)
    pattern = "https://lab.example/req/{}"
    _run(pytester, "--alluredir=linked", f"--hil-req-url={pattern}", "-k", "Quick_but")
    (linked,) = _allure(pytester.path / "linked")
    assert sorted(linked["links"], key=lambda link: str(link["name"])) == [
        {"type": "tms", "url": f"https://lab.example/req/{req}", "name": req}
        for req in ("SC-BILL-01", "SC-BILL-02")
    ]
    labels = {(label["name"], label["value"]) for label in linked["labels"]}
    assert {("requirement", "SC-BILL-01"), ("requirement", "SC-BILL-02")} <= labels
    assert {("epic", "billing"), ("severity", "critical"), ("tag", "smoke")} <= labels

    # no pattern: the ID stays a label (and a tag), never a link that leads nowhere
    _run(pytester, "--alluredir=plain", "-k", "Quick_but")
    (plain,) = _allure(pytester.path / "plain")
    assert "links" not in plain or plain["links"] == []
    assert ("requirement", "SC-BILL-02") in {(lb["name"], lb["value"]) for lb in plain["labels"]}

    result = pytester.runpytest_subprocess(
        "features", "-o", "hil_features=true", "--hil-req-url=https://lab.example/req"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --hil-req-url: 'https://lab.example/req' has no {}*"])


def test_a_scenario_that_fails_one_repeat_of_two_failed_1_of_2(pytester: pytest.Pytester) -> None:
    _project(pytester.path, flaky=FLAKY_FEATURE, billing=FEATURE)
    (pytester.path / "test_plain.py").write_text("def test_not_a_scenario():\n    pass\n")
    result, summary = _run(
        pytester,
        "--hil-repeat=2",
        "--alluredir=allure",
        "--hil-junit=junit.xml",
        "-k",
        "Echo or not_a_scenario",
        "test_plain.py",
    )
    # each repeat is a test of its own; a test that is no scenario is not repeated
    result.stdout.fnmatch_lines(
        [
            "*flaky.feature::test_echo?repeat 1/2? PASSED*",
            "*flaky.feature::test_echo?repeat 2/2? FAILED*",
            "*test_plain.py::test_not_a_scenario PASSED*",
        ]
    )
    result.assert_outcomes(passed=2, failed=1)
    echo = next(s for s in summary["scenarios"] if s["scenario"] == "Echo")
    assert (echo["outcome"], echo["blame"]) == ("failed", "terminal")
    assert (echo["failed_repeats"], echo["repeat_count"]) == (1, 2)
    assert echo["message"].startswith("failed 1 of 2 repeats; repeat 2: AssertionError: run 2:")
    assert echo["nodeid"] == "features/flaky.feature::test_echo"
    assert [(r["repeat"], r["outcome"]) for r in echo["repeats"]] == [(1, "passed"), (2, "failed")]
    assert summary["repeat"] == 2 and summary["counts"]["failed"] == 1

    cases = ElementTree.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    failed = {c.get("name"): c.find("failure") is not None for c in cases}
    assert failed == {
        "Echo [repeat 1/2]": False,
        "Echo [repeat 2/2]": True,
        "test_not_a_scenario": False,
    }
    junit = ElementTree.parse(pytester.path / "junit.xml").getroot()
    classes = {c.get("name"): c.get("classname") for c in junit.iter("testcase")}
    assert classes["Echo [repeat 2/2]"] == "Flaky"  # grouped by the feature's title

    results = [r for r in _allure(pytester.path / "allure") if r["name"] == "Echo"]
    by_repeat = {
        next(p["value"] for p in r["parameters"] if p["name"] == "hil_repeat"): r for r in results
    }
    assert sorted(by_repeat) == ["1 of 2", "2 of 2"]
    assert (by_repeat["1 of 2"]["status"], by_repeat["2 of 2"]["status"]) == ("passed", "failed")
    # each repeat its own history (Allure would show one of two and call it passed) ...
    assert len({r["historyId"] for r in results}) == 2
    assert len({r["testCaseId"] for r in results}) == 1
    # ... and every repeat carries the scenario's figure and Allure's flaky mark
    for result_json in results:
        figure = [p for p in result_json["parameters"] if p["name"] == "failed repeats"]
        assert figure == [{"name": "failed repeats", "value": "1 of 2", "excluded": True}]
        assert result_json["statusDetails"]["flaky"] is True


# --- end to end: hil run on the sim rig ----------------------------------------------------

#: Leaves a fault asserted at the end: the next repeat passes only if the rig was put
#: back in between (faults cleared, terminal powered), as between scenarios.
LEFT_FAULT_FEATURE = """\
@epic:power_on_self_check
Feature: A fault left behind
  @requires:faultlines
  Scenario: The supply is left low
    Given the terminal is idle
    When the terminal runs its "power" self-check
    Then the "power" self-check passes
    When the rig asserts fault line "supply_low"
    And the terminal runs its "power" self-check
    Then the self-check reports fault line "supply_low" with its documented code, screen text \
and log entry
"""

TERMINAL_FLAKY_FEATURE = """\
Feature: Flaky on a real terminal
  Scenario: Echo
    Given the terminal is idle
    When the flaky step runs
    Then all is well
"""

SLOW_STEP = """

@when("the repeat waits for Ctrl-C the second time")
def wait_second_time(request):
    CALLS["n"] += 1
    if CALLS["n"] == 2:
        (request.config.rootpath / "waiting").write_text("repeat 2")
        time.sleep(60)
"""

WAITING_FEATURE = """\
Feature: Interrupted
  Scenario: Wait
    Given the terminal is idle
    When the repeat waits for Ctrl-C the second time
"""


def _sim_rig(folder: Path) -> Path:
    """The embedded sim rig (every instrument), with its fixtures where they are."""
    rig = folder / "rig.toml"
    rig.write_text(DEFAULT_RIG.read_text().replace("../fixtures", str(FIXTURES)))
    return rig


def _hil_run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIL), "run", "--rig", str(_sim_rig(folder)), "--no-html", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "reports" / "summary.json").read_text())
    return data


def _table_rows(stdout: str) -> list[list[str]]:
    table = stdout[stdout.index("Self-check results") :]
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in table.splitlines()
        if line.startswith("│") and line.split("│")[1].strip().isdigit()
    ]


def test_hil_run_repeat_3_puts_the_rig_back_between_repeats(tmp_path: Path) -> None:
    (tmp_path / "features").mkdir()
    (tmp_path / "features" / "left_fault.feature").write_text(LEFT_FAULT_FEATURE)
    result = _hil_run(tmp_path, "--repeat", "3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "1 scenario(s), 3 runs: each 3 times" in result.stdout
    for index in (1, 2, 3):
        assert f"The supply is left low (repeat {index} of 3)" in result.stdout
    (row,) = _table_rows(result.stdout)
    assert row[3:5] == ["passed", "failed 0 of 3"], row
    summary = _summary(tmp_path)
    (scenario,) = summary["scenarios"]
    assert [r["outcome"] for r in scenario["repeats"]] == ["passed"] * 3
    assert (summary["collected"], summary["runs"], summary["counts"]["passed"]) == (1, 3, 1)
    junit = ElementTree.parse(tmp_path / "reports" / "junit.xml").getroot()[0]
    assert junit.get("tests") == "3" and junit.get("failures") == "0"


def test_hil_run_counts_an_intermittent_failure_as_a_failure(tmp_path: Path) -> None:
    """Fails the second of three repeats: the last passed, and it is still no pass."""
    _project(tmp_path, flaky=TERMINAL_FLAKY_FEATURE)
    result = _hil_run(tmp_path, "--repeat", "3")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "hil: the terminal failed 1 of 1 scenarios, 1 of them intermittently (failed some "
        "repeats, passed others: a terminal defect, not a pass)"
    ]
    (row,) = _table_rows(result.stdout)
    assert row[3:5] == ["failed", "failed 1 of 3"], row
    (scenario,) = _summary(tmp_path)["scenarios"]
    assert [r["outcome"] for r in scenario["repeats"]] == ["passed", "failed", "passed"]


def test_ctrl_c_mid_repeat_interrupts_that_repeat_and_runs_no_other(tmp_path: Path) -> None:
    _project(tmp_path, waiting=WAITING_FEATURE)
    conftest = tmp_path / "conftest.py"
    conftest.write_text("import time\n" + conftest.read_text() + SLOW_STEP)
    process = subprocess.Popen(
        [str(HIL), "run", "--rig", str(_sim_rig(tmp_path)), "--no-html", "--repeat", "3"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # CI may run us with SIGINT ignored, which exec keeps; a user's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "waiting").exists():
            assert process.poll() is None and time.monotonic() < deadline, "repeat 2 never ran"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 130, errors
    summary = _summary(tmp_path)
    assert summary["status"] == "interrupted"
    (scenario,) = summary["scenarios"]
    assert scenario["outcome"] == "interrupted"
    assert [r["outcome"] for r in scenario["repeats"]] == ["passed", "interrupted", "not run"]


def test_hil_run_tags_select_the_shipped_smoke_scenarios(tmp_path: Path) -> None:
    result = _hil_run(tmp_path, "--features", str(FEATURES), "--tags", "smoke and not slow")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = _summary(tmp_path)
    selected = {(s["feature"], s["scenario"]) for s in summary["scenarios"]}
    assert selected == {
        ("Boot self-check", "A healthy build boots and every self-check item tells the truth"),
        (
            "Boot self-check",
            "The terminal reports the identity of the rig file and the firmware image",
        ),
        ("Card reader", "A chip card is read and equals the inserted profile"),
        (
            "Communication with the acquirer host",
            "A healthy link passes the comm check with its round trip recorded",
        ),
        ("Parameter and key download", "The terminal's parameters match the host's after a sync"),
        ("QR scanner", "A merchant QR code decodes to exactly the payload shown, in time"),
        ("Terminal identity", "A unique terminal ID signs on and passes"),
    }
    assert all("smoke" in s["tags"] and "slow" not in s["tags"] for s in summary["scenarios"])
    assert all(s["requirements"] for s in summary["scenarios"])
    assert summary["deselected"] + summary["collected"] >= 60


def test_hil_run_unknown_tag_exits_2_with_one_line_and_touches_no_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "summary.json").write_text('{"run_id": "earlier"}\n')
    result = _hil_run(tmp_path, "--features", str(FEATURES), "--tags", "smoke or nighlty")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "hil: --tags: unknown tag 'nighlty' ('nighlty': did you mean 'nightly'?); known tags: "
        "area_card_reader, area_communication, "
    ), lines[0]
    assert "requirement tags req_<ID>" in lines[0]
    assert (reports / "summary.json").read_text() == '{"run_id": "earlier"}\n'
    assert "Self-check results" not in result.stdout


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--repeat", "zero"], "hil: --repeat: 'zero' is not a whole number of 1 or more"),
        (["--tags", "smoke and"], "hil: --tags: 'smoke and' is not a tag expression: "),
        (["--req-url", "https://lab/req"], "hil: --req-url: 'https://lab/req' has no {}"),
    ],
)
def test_hil_run_refuses_bad_selection_options_before_anything_starts(
    tmp_path: Path, args: list[str], line: str
) -> None:
    result = _hil_run(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    lines = [text for text in result.stderr.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert not (tmp_path / "reports").exists()


def test_the_requirement_url_can_come_from_the_environment(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(HIL), "run", "--no-html", "--tags", "nothing_at_all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "HIL_REQ_URL": "https://lab/req"},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "hil: HIL_REQ_URL: 'https://lab/req' has no {} where the requirement ID goes "
        "(e.g. 'https://lab.example/req/{}')"
    )
