"""End to end: the communication, terminal identity and data sync features (and the
boot feature with the host wired) through pytest-bdd on a sim rig with [host] and
[network]; and the seeded comm defect caught by the blackhole scenario."""

from __future__ import annotations

import json

import pytest

from hil.suite import FIXTURES
from tests.conftest import FIRMWARE, run_features

pytestmark = pytest.mark.integration

FEATURES = (
    "communication.feature",
    "terminal_identity.feature",
    "data_sync.feature",
    "boot_self_check.feature",
)
HOST_FIXTURES = FIXTURES / "host"
HOST_AND_NETWORK = f"""
[host]
driver = "sim"
parameters = "{HOST_FIXTURES / "params-v1.json"}"
keys = "{HOST_FIXTURES / "keys-test.json"}"

[network]
driver = "proxy"
"""


def test_host_features_green_on_the_healthy_build(pytester: pytest.Pytester) -> None:
    feature_run = run_features(pytester, FEATURES, extra=HOST_AND_NETWORK)
    run, results, data = feature_run.result, feature_run.results, feature_run.summary()
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
    feature_run = run_features(
        pytester,
        FEATURES,
        f"--firmware={FIRMWARE / 'pos-sim-comm-lies-1.4.2.fw.json'}",
        "-k",
        "blackholed",
        extra=HOST_AND_NETWORK,
    )
    feature_run.result.assert_outcomes(failed=1)
    (scenario,) = feature_run.summary()["scenarios"]
    assert scenario["outcome"] == "failed" and not scenario["rig_fault"]
    assert "comm reported pass OK" in scenario["message"]
    assert "E_COMM_TIMEOUT" in scenario["message"]
