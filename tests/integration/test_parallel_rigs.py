"""``hil run --rigs``: several sim rigs, one xdist worker each, one merged report with
the right exit code (issue 13, part 3); and a bench terminal another run drives is a
rig fault naming the holder (hil.riglock).

Real ``hil run`` subprocesses: real sim terminals on ptys, pcscd readers from the pool,
the HTML report made from the merged Allure results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hil.riglock import TerminalLock
from hil.suite import SUITE
from tests.conftest import FIRMWARE, REPO, write_sim_rig

pytestmark = pytest.mark.integration

HIL = [sys.executable, "-m", "hil"]


def _hil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HIL_RUN_ID"}
    if (REPO / ".tools").is_dir():  # the checkout's report tools, from any folder
        env.setdefault("HIL_TOOLS_DIR", str(REPO / ".tools"))
    return subprocess.run(
        [*HIL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _summary(reports: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((reports / "latest" / "summary.json").read_text())
    return data


def test_two_rigs_share_the_scenarios_and_report_as_one(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = _hil("run", "--rigs", "2", "--reports", str(reports), "--tags", "smoke", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    summary = _summary(reports)
    assert summary["status"] == "finished" and summary["complete"] is True
    scenarios = summary["scenarios"]
    assert summary["collected"] == len(scenarios) == summary["counts"]["passed"] >= 5
    # each scenario once, on one of the two rigs, said in the summary and the progress
    assert len({entry["nodeid"] for entry in scenarios}) == len(scenarios)
    assert {entry["rig"] for entry in scenarios} <= {"sim-1", "sim-2"}
    assert [rig["status"] for rig in summary["rigs"]] == ["finished", "finished"]
    assert sum(rig["counts"]["passed"] for rig in summary["rigs"]) == len(scenarios)
    assert summary["environment"]["rigs"] == "sim-1, sim-2"
    for entry in scenarios:
        assert f"{entry['rig']}: {entry['feature']}: " in done.stdout
    # junit: one case per scenario, each with its rig
    suite = ET.parse(reports / "latest" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == str(len(scenarios))
    cases = suite.findall("testcase")
    rigs = [c.find("properties/property[@name='rig']") for c in cases]
    assert all(r is not None and r.get("value") in ("sim-1", "sim-2") for r in rigs)
    # Allure: every worker's results in the run's folder, the rig as a label; the report
    results = reports / "latest" / "allure-results"
    merged = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert len(merged) == len(scenarios)
    for result in merged:
        labels = {label["name"]: label["value"] for label in result["labels"]}
        assert labels["rig"] in ("sim-1", "sim-2") and result["status"] == "passed"
    assert (reports / "latest" / "html" / "index.html").is_file()


def test_each_rig_runs_every_scenario_and_only_the_failing_terminal_is_blamed(
    tmp_path: Path,
) -> None:
    rigs = tmp_path / "rigs"
    rigs.mkdir()
    host = '\n[host]\ndriver = "sim"\n\n[network]\ndriver = "proxy"\n'
    write_sim_rig(rigs / "a-healthy.toml", extra=host)
    write_sim_rig(
        rigs / "b-refusal.toml",
        firmware=FIRMWARE / "pos-sim-refusal-as-conflict-1.4.2.fw.json",
        extra=host,
    )
    reports = tmp_path / "reports"
    done = _hil(
        "run",
        "--rigs",
        f"{rigs}/*.toml",
        "--each",
        "--no-html",
        "--reports",
        str(reports),
        "--",
        "-k",
        "host_refuses_fails_terminal_id or unique_terminal_id_signs_on",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    assert "the terminal failed 1 of 4 scenarios (on b-refusal)" in done.stderr
    summary = _summary(reports)
    outcomes = {(e["rig"], e["scenario"].split()[1]): e["outcome"] for e in summary["scenarios"]}
    assert outcomes == {
        ("a-healthy", "sign-on"): "passed",
        ("b-refusal", "sign-on"): "failed",
        ("a-healthy", "unique"): "passed",
        ("b-refusal", "unique"): "passed",
    }
    assert summary["rig_mode"] == "each" and summary["runs"] == 4
    failed = next(e for e in summary["scenarios"] if e["outcome"] == "failed")
    assert "E_TID_CONFLICT" in failed["message"]
    junit = (reports / "latest" / "junit.xml").read_text()
    assert junit.count("<failure") == 1 and "@ b-refusal" in junit


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--each"], "hil: --each: runs every scenario on each of --rigs; give --rigs"),
        (["--rigs", "nowhere/*.toml"], "hil: --rigs: 'nowhere/*.toml' matches no rig file"),
        (["--rigs", "{broken}"], "broken.toml: rig: required table missing"),
        (["--", "-n", "2"], "hil: -n: xdist workers need a rig each: use hil run --rigs N"),
        (
            ["--rigs", "2", "--", "-n", "3"],
            "hil: -n: --rigs starts one worker per rig (2); leave it out",
        ),
        (
            ["--rigs", "2", "--features", "{features}"],
            'bad.feature:3: unknown step "Given the terminal is idel"; closest known: "Given '
            'the terminal is idle"',
        ),
        (
            ["--rigs", "2", "--features", "{syntax}"],
            "bad.feature:4: Gherkin syntax error: ",
        ),
        (
            ["--rigs", "2", "--features", "{good}", "--tags", "slow"],
            "hil: no scenario matches --tags 'slow' (1 deselected)",
        ),
    ],
)
def test_a_bad_rigs_option_is_a_usage_error_that_touches_no_report(
    tmp_path: Path, args: list[str], said: str
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[dut]\ndriver = "sim"\n', encoding="utf-8")
    features = tmp_path / "features"
    features.mkdir()
    (features / "bad.feature").write_text(
        "Feature: Bad\n  Scenario: Unknown\n    Given the terminal is idel\n", encoding="utf-8"
    )
    syntax = tmp_path / "syntax"
    syntax.mkdir()
    (syntax / "bad.feature").write_text(
        "Feature: Bad\n  Scenario: Good\n    Given the terminal is idle\n  Scenaro: oops\n",
        encoding="utf-8",
    )
    good = tmp_path / "good"
    good.mkdir()
    (good / "good.feature").write_text(
        "Feature: Good\n  Scenario: Idle\n    Given the terminal is idle\n", encoding="utf-8"
    )
    reports = tmp_path / "reports"
    folders = {"broken": broken, "features": features, "syntax": syntax, "good": good}
    args = [a.format(**folders) for a in args]
    done = _hil("run", "--reports", str(reports), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], done.stderr
    assert not reports.exists() or not any(p.is_file() for p in reports.rglob("*"))


def test_a_bench_terminal_another_run_drives_is_a_rig_fault_naming_it(tmp_path: Path) -> None:
    bench = SUITE / "rigs" / "examples" / "bench-a.toml"
    held = TerminalLock.acquire(
        "POS-SIM-A8", "SIM8A0000107", rig_name="night-run", rig_file="lab/bench-a.toml"
    )
    try:
        done = _hil(
            "run",
            "--rig",
            str(bench),
            "--no-html",
            "--reports",
            str(tmp_path / "r"),
            "--",
            "-k",
            "unique_terminal_id_signs_on",
            cwd=tmp_path,
        )
    finally:
        held.release()
    assert done.returncode == 3, done.stdout[-2000:] + done.stderr
    assert (
        "hil: rig fault (says nothing about the firmware): rig 'bench-a': terminal POS-SIM-A8 "
        "SIM8A0000107 is in use by run " in done.stderr
    )
    assert (
        f"(pid {os.getpid()} on " in done.stderr
        and "rig 'night-run' from lab/bench-a.toml" in done.stderr
    )
