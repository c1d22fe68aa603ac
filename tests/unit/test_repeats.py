"""Repeats: node IDs, the count option, and how a scenario's repeats add up in the
reports (hil.repeats, hil.summary)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from hil.errors import ConfigError
from hil.repeats import REPEAT_ARG, Repeat, repeat_count, repeats, scenario_nodeid
from hil.summary import RunFacts, RunSummary, exit_code_for, scenario_entry
from hil.tags import REQUIREMENT_MARKER

FEATURE = "features/comm.feature"


def test_a_repeat_names_itself_in_the_node_id_and_in_allure() -> None:
    assert [r.id for r in repeats(3)] == ["repeat 1/3", "repeat 2/3", "repeat 3/3"]
    assert repr(Repeat(2, 5)) == "2 of 5"  # Allure's parameter value
    assert [r.last for r in repeats(2)] == [False, True]


@pytest.mark.parametrize(
    ("nodeid", "repeat", "scenario"),
    [
        (f"{FEATURE}::test_a[repeat 2/5]", Repeat(2, 5), f"{FEATURE}::test_a"),
        (
            f"{FEATURE}::test_b[mute-E_CARD_MUTE-repeat 1/2]",
            Repeat(1, 2),
            f"{FEATURE}::test_b[mute-E_CARD_MUTE]",
        ),
        # an Examples value that looks like a repeat is left alone
        (
            f"{FEATURE}::test_c[repeat 1/2-x-repeat 2/2]",
            Repeat(2, 2),
            f"{FEATURE}::test_c[repeat 1/2-x]",
        ),
        (f"{FEATURE}::test_d", None, f"{FEATURE}::test_d"),
    ],
)
def test_the_scenario_of_a_repeat_is_its_node_id_without_the_repeat(
    nodeid: str, repeat: Repeat | None, scenario: str
) -> None:
    assert scenario_nodeid(nodeid, repeat) == scenario


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_a_repeat_count_is_a_whole_number_of_one_or_more(text: str) -> None:
    assert repeat_count("5", "--repeat") == 5
    with pytest.raises(
        ConfigError, match=rf"^--repeat: '{text}' is not a whole number of 1 or more$"
    ):
        repeat_count(text, "--repeat")


def _run(outcome: str, blame: str | None = None, message: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "nodeid": "x",
        "feature": "Comm",
        "scenario": "Echo",
        "outcome": outcome,
        "blame": blame,
        "rig_fault": blame == "rig",
        "config_error": blame == "config",
        "framework_error": blame == "framework",
        "message": message,
        "duration_s": 1.25,
        "measurements": [],
        **extra,
    }


def _entry(*runs: dict[str, Any]) -> dict[str, Any]:
    facts = [RunFacts(f"{FEATURE}::test_a", index) for index in range(1, len(runs) + 1)]
    return scenario_entry(f"{FEATURE}::test_a", list(zip(facts, runs, strict=True)))


def test_a_scenario_that_failed_one_repeat_failed_with_its_figure() -> None:
    entry = _entry(
        _run("passed"), _run("failed", "terminal", "AssertionError: no echo"), _run("passed")
    )
    assert (entry["outcome"], entry["blame"]) == ("failed", "terminal")
    assert (entry["failed_repeats"], entry["repeat_count"]) == (1, 3)
    assert entry["message"] == "failed 1 of 3 repeats; repeat 2: AssertionError: no echo"
    assert [r["outcome"] for r in entry["repeats"]] == ["passed", "failed", "passed"]
    assert [r["repeat"] for r in entry["repeats"]] == [1, 2, 3]
    assert entry["duration_s"] == 3.75


def test_a_rig_fault_in_one_repeat_is_a_rig_fault_of_the_scenario() -> None:
    entry = _entry(
        _run("failed", "terminal", "AssertionError: slow"),
        _run("broken", "rig", "RigError: proxy down"),
        _run("passed"),
    )
    assert (entry["outcome"], entry["blame"], entry["rig_fault"]) == ("broken", "rig", True)
    assert entry["message"] == "failed 2 of 3 repeats; repeat 2: RigError: proxy down"
    # the exit code follows the worst blame, as for scenarios
    summary = {"status": "finished", "counts": {"broken": 1}, "rig_faults": 1}
    assert exit_code_for(summary) == 3


def test_the_blame_that_decides_among_broken_repeats_is_the_exit_codes_order() -> None:
    entry = _entry(_run("broken", "rig", "rig"), _run("broken", "framework", "bug"))
    assert (entry["blame"], entry["rig_fault"], entry["framework_error"]) == (
        "framework",
        True,
        True,
    )


def test_a_repeat_cut_short_makes_the_scenario_interrupted_not_passed() -> None:
    entry = _entry(_run("passed"), _run("interrupted"), _run("not run"))
    assert (entry["outcome"], entry["failed_repeats"]) == ("interrupted", 0)
    assert _entry(_run("passed"), _run("pending"))["outcome"] == "pending"
    assert _entry(_run("skipped", message="rig lacks camera"))["message"] == "rig lacks camera"


def test_one_run_without_repeats_reads_as_it_always_did() -> None:
    run = _run("failed", "terminal", "AssertionError: x", measurements=[{"name": "rtt_ms"}])
    entry = _entry(run)
    assert {k: entry[k] for k in run if k != "nodeid"} == {
        k: v for k, v in run.items() if k != "nodeid"
    }
    assert (entry["repeat_count"], entry["failed_repeats"], len(entry["repeats"])) == (1, 1, 1)


def test_measurements_of_repeats_say_which_repeat_took_them() -> None:
    entry = _entry(
        _run("passed", measurements=[{"name": "rtt_ms", "value": 12.0}]),
        _run("passed", measurements=[{"name": "rtt_ms", "value": 14.0}]),
    )
    assert [(m["repeat"], m["value"]) for m in entry["measurements"]] == [(1, 12.0), (2, 14.0)]


class _Mark:
    def __init__(self, name: str, *args: str) -> None:
        self.name, self.args = name, args


class _Callspec:
    def __init__(self, repeat: Repeat) -> None:
        self.params = {REPEAT_ARG: repeat}


class _Item:
    """What RunSummary reads of a pytest item that runs one repeat of a scenario."""

    def __init__(self, test: str, repeat: Repeat) -> None:
        self.nodeid = f"{FEATURE}::{test}[{repeat.id}]"
        self.name = f"{test}[{repeat.id}]"
        self.callspec = _Callspec(repeat)

    def iter_markers(self) -> list[_Mark]:
        return [_Mark(REQUIREMENT_MARKER, "SC-COMM-01"), _Mark("smoke"), _Mark("parametrize")]


def test_summary_and_junit_of_a_repeated_run(tmp_path: Path) -> None:
    summary = RunSummary("nightly-8", lambda: {"rig": "sim"})
    summary.repeat = 2
    items = [_Item(test, repeat) for test in ("test_a", "test_b") for repeat in repeats(2)]
    summary.begin(items, tag_markers={"smoke"})  # type: ignore[arg-type]
    outcomes = {"test_a": ("passed", "failed"), "test_b": ("passed", "passed")}
    for item in items:
        test = item.name.split("[")[0]
        outcome = outcomes[test][item.callspec.params[REPEAT_ARG].index - 1]
        summary.results[item.nodeid].update(
            outcome=outcome,
            blame="terminal" if outcome == "failed" else None,
            message="AssertionError: flaky" if outcome == "failed" else "",
        )
    summary.status = "finished"
    summary.write(tmp_path / "summary.json")
    text = (tmp_path / "summary.json").read_text()
    data = json.loads(text)
    # Each scenario's JSON is spliced in from a cache: the text is still json's own.
    assert text == json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    assert (data["repeat"], data["collected"], data["runs"]) == (2, 2, 4)
    assert data["counts"]["failed"] == 1 and data["counts"]["passed"] == 1
    assert exit_code_for(data) == 1
    first, second = data["scenarios"]
    assert first["nodeid"] == f"{FEATURE}::test_a"
    assert (first["outcome"], first["failed_repeats"], first["repeat_count"]) == ("failed", 1, 2)
    assert [(r["nodeid"], r["outcome"]) for r in first["repeats"]] == [
        (f"{FEATURE}::test_a[repeat 1/2]", "passed"),
        (f"{FEATURE}::test_a[repeat 2/2]", "failed"),
    ]
    assert (second["outcome"], second["failed_repeats"]) == ("passed", 0)
    assert first["requirements"] == ["SC-COMM-01"] and first["tags"] == ["smoke"]

    summary.write_junit(tmp_path / "junit.xml")
    suite = ElementTree.parse(tmp_path / "junit.xml").getroot()[0]
    names = [case.get("name") for case in suite.iter("testcase")]
    assert names == [f"{t}[repeat {i}/2]" for t in ("test_a", "test_b") for i in (1, 2)]
    assert (suite.get("tests"), suite.get("failures")) == ("4", "1")


def test_an_interrupted_repeated_run_says_how_many_runs_were_over(tmp_path: Path) -> None:
    summary = RunSummary("nightly-9")
    summary.repeat = 3
    items = [_Item("test_a", repeat) for repeat in repeats(3)]
    summary.begin(items)  # type: ignore[arg-type]
    summary.results[items[0].nodeid]["outcome"] = "passed"
    summary.pytest_runtest_logstart(items[1].nodeid)
    with pytest.raises(KeyboardInterrupt) as ctrl_c:
        raise KeyboardInterrupt
    summary.pytest_keyboard_interrupt(ctrl_c)
    summary.pytest_sessionfinish(None)  # type: ignore[arg-type]
    (entry,) = summary.finished_results()
    assert entry["outcome"] == "interrupted"
    assert [r["outcome"] for r in entry["repeats"]] == ["passed", "interrupted", "not run"]
    assert summary.incomplete_reason().endswith(
        "interrupted by Ctrl-C (SIGINT) during 'test_a[repeat 2/3]' "
        "(1 of 3 scenario runs over, 3 per scenario)"
    )
