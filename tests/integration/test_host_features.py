"""End to end: the communication, terminal identity and data sync features (and the
boot feature with the host wired) through pytest-bdd on a sim rig with [host] and
[network]; and the seeded comm defect caught by the blackhole scenario."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import FIRMWARE, REPO, write_sim_rig

pytestmark = pytest.mark.integration

FEATURES = (
    "communication.feature",
    "terminal_identity.feature",
    "data_sync.feature",
    "boot_self_check.feature",
)
HOST_FIXTURES = REPO / "fixtures" / "host"
HOST_AND_NETWORK = f"""
[host]
driver = "sim"
parameters = "{HOST_FIXTURES / "params-v1.json"}"
keys = "{HOST_FIXTURES / "keys-test.json"}"

[network]
driver = "proxy"
"""


def _stage(pytester: pytest.Pytester) -> Path:
    features = pytester.path / "features"
    features.mkdir()
    for name in FEATURES:
        shutil.copy(REPO / "features" / name, features)
    shutil.copy(REPO / "features" / "test_features.py", features)
    return write_sim_rig(pytester.path / "rig.toml", extra=HOST_AND_NETWORK)


def test_host_features_green_on_the_healthy_build(pytester: pytest.Pytester) -> None:
    rig = _stage(pytester)
    results = pytester.path / "allure-results"
    summary = pytester.path / "summary.json"
    run = pytester.runpytest_subprocess(
        "features", f"--rig={rig}", f"--alluredir={results}", f"--hil-summary={summary}",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    data = json.loads(summary.read_text())
    failed = [(s["scenario"], s["message"]) for s in data["scenarios"] if s["outcome"] != "passed"]
    assert not failed, failed
    run.assert_outcomes(passed=len(data["scenarios"]))
    names = {s["scenario"] for s in data["scenarios"]}
    assert "A sale whose answer never comes is reversed exactly once" in names
    rtts = [m for s in data["scenarios"] for m in s["measurements"] if m["name"] == "echo RTT"]
    assert rtts and all(m["passed"] for m in rtts)
    # The report carries the masked ISO 8583 log and the fault timeline.
    attachments = {}
    for case in (json.loads(p.read_text()) for p in results.glob("*-result.json")):
        for a in case.get("attachments", []):
            attachments[a["name"]] = results / a["source"]
    assert "ISO 8583 message log (masked)" in attachments
    assert "network fault timeline" in attachments
    log_text = attachments["ISO 8583 message log (masked)"].read_text()
    assert "6212345678901232" not in log_text
    for body in results.glob("*-attachment*"):
        assert "6212345678901232" not in body.read_text(errors="replace")


def test_comm_lies_is_caught_by_the_blackhole_scenario(pytester: pytest.Pytester) -> None:
    rig = _stage(pytester)
    summary = pytester.path / "summary.json"
    run = pytester.runpytest_subprocess(
        "features", f"--rig={rig}", f"--hil-summary={summary}", "-p", "no:cacheprovider",
        f"--firmware={FIRMWARE / 'pos-sim-comm-lies-1.4.2.fw.json'}", "-k", "blackholed",
    )  # fmt: skip
    run.assert_outcomes(failed=1)
    (scenario,) = json.loads(summary.read_text())["scenarios"]
    assert scenario["outcome"] == "failed" and not scenario["rig_fault"]
    assert "comm reported pass OK" in scenario["message"]
    assert "E_COMM_TIMEOUT" in scenario["message"]
