"""End to end: the firmware update and fault diagnosis features on the real sim rig
(pty, process, SIGKILL power cuts, the fault-line channel), healthy and defective."""

from __future__ import annotations

import pytest

from tests.conftest import FIRMWARE, run_features

pytestmark = pytest.mark.integration

UPDATE = ("firmware_update.feature",)
DIAGNOSIS = ("fault_diagnosis.feature",)
UPDATES = '\n[updates]\ndriver = "folder"\n'
FAULT_LINES = '\n[faultlines]\ndriver = "sim"\n'


def test_the_update_feature_is_green_on_the_healthy_build(pytester: pytest.Pytester) -> None:
    run = run_features(pytester, UPDATE, extra=UPDATES)
    run.result.assert_outcomes(passed=9)
    scenarios = run.summary()["scenarios"]
    assert {r for s in scenarios for r in s["requirements"]} == {
        "SC-FW-02",
        "SC-FW-03",
        "SC-FW-04",
        "SC-FW-05",
    }


def test_a_build_that_skips_the_signature_check_is_caught(pytester: pytest.Pytester) -> None:
    """The seeded defect update_skips_signature: the unsigned image is not refused as
    unsigned, the tampered one is installed; the other refusals still hold, and the
    rig puts its own image back after the scenario that installed the tampered one."""
    run = run_features(
        pytester,
        UPDATE,
        f"--firmware={FIRMWARE / 'pos-sim-update-unchecked-1.4.2.fw.json'}",
        "-k",
        "refused",
        extra=UPDATES,
    )
    run.result.assert_outcomes(passed=2, failed=2)
    failed = {
        s["scenario"]: s["message"] for s in run.summary()["scenarios"] if s["outcome"] == "failed"
    }
    assert not any(s["rig_fault"] for s in run.summary()["scenarios"])
    unsigned = failed["An image that is unsigned is refused and the old version runs on"]
    assert "expected E_FW_UNSIGNED" in unsigned
    tampered = failed[
        "An image that is tampered after signing is refused and the old version runs on"
    ]
    assert "installed an image it must refuse with E_FW_SIGNATURE" in tampered


def test_the_diagnosis_feature_is_green_and_skips_what_the_rig_lacks(
    pytester: pytest.Pytester,
) -> None:
    """No host on this rig: the crash and hang scenarios (which end with a sale) are
    skipped, the quiet watch runs."""
    run = run_features(pytester, DIAGNOSIS, extra=FAULT_LINES)
    run.result.assert_outcomes(passed=1, skipped=2)
