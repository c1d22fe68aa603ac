"""End to end: the boot feature through pytest-bdd on the real sim rig (pty, process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hil.summary import CONFIG_STOP_RETURNCODE
from tests.conftest import FIRMWARE, run_features

pytestmark = pytest.mark.integration

BOOT_SCENARIOS = 5
BOOT = ("boot_self_check.feature",)


def test_boot_feature_green_on_healthy_build(pytester: pytest.Pytester) -> None:
    feature_run = run_features(pytester, BOOT)
    feature_run.result.assert_outcomes(passed=BOOT_SCENARIOS)
    results = feature_run.results

    data = feature_run.summary()
    assert data["counts"]["passed"] == BOOT_SCENARIOS
    assert data["environment"]["firmware_version"] == "1.4.2"
    names = {s["scenario"] for s in data["scenarios"]}
    assert "A reboot runs the self-check again" in names
    boot = [
        m for s in data["scenarios"] for m in s["measurements"] if m["name"] == "boot_selfcheck"
    ]
    assert boot and all(m["passed"] for m in boot)

    # Allure: scenarios appear with their Gherkin steps and the transcript attached.
    cases = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert len(cases) == BOOT_SCENARIOS
    for case in cases:
        assert case["status"] == "passed"
        assert any(step["name"].startswith(("Given", "When")) for step in case["steps"])
        attachments = [a["name"] for a in case.get("attachments", [])]
        assert "test-port transcript" in attachments, attachments
        labels = {(label["name"], label["value"]) for label in case["labels"]}
        assert ("epic", "power_on_self_check") in labels
    assert (results / "categories.json").is_file()
    environment = (results / "environment.properties").read_text()
    assert "firmware_version=1.4.2" in environment


def _run_single_scenario(pytester: pytest.Pytester, firmware: str, keyword: str) -> dict[str, Any]:
    """Run one boot scenario against ``firmware``; it must fail; return its summary entry."""
    feature_run = run_features(pytester, BOOT, f"--firmware={FIRMWARE / firmware}", "-k", keyword)
    feature_run.result.assert_outcomes(failed=1)
    (scenario,) = feature_run.summary()["scenarios"]
    assert scenario["outcome"] == "failed", scenario
    assert not scenario["rig_fault"], scenario
    message: str = scenario["message"]
    return {"message": message}


def test_seeded_defect_is_detected_with_a_diagnosis(pytester: pytest.Pytester) -> None:
    """A build whose comm item lies must fail the boot scenario, naming comm."""
    result = _run_single_scenario(pytester, "pos-sim-comm-lies-1.4.2.fw.json", "healthy")
    assert "comm" in result["message"] and "E_COMM_NO_HOST" in result["message"]


def test_tampered_firmware_fails_boot_as_terminal_fault(pytester: pytest.Pytester) -> None:
    result = _run_single_scenario(pytester, "tampered-1.4.2.fw.json", "identity")
    assert "E_FW_SIGNATURE" in result["message"]


def test_missing_rig_file_exits_2(pytester: pytest.Pytester, tmp_path: Path) -> None:
    run = run_features(pytester, BOOT, rig=tmp_path / "nope.toml").result
    # Plain pytest: the plugin's own stop code, not pytest's 2 (interrupted); hil run
    # turns it into its 2.
    assert run.ret == CONFIG_STOP_RETURNCODE
    assert "nope.toml: rig file not found" in run.stderr.str() + run.stdout.str()
