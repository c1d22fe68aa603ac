"""End to end: the card reader and fault-line features through pytest-bdd on the sim rig,
with real pcscd + vpcd (started by the rig), the report checked for PCI masking."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.masking import contains_full_pan
from tests.conftest import run_features

pytestmark = pytest.mark.integration

CARD_SECTIONS = f"""
[cards]
driver = "vpcd"
profiles = "{DEFAULT_PROFILES}"

[magstripe]
driver = "sim"
profiles = "{DEFAULT_PROFILES}"

[faultlines]
driver = "sim"
"""
FEATURES = ("card_reader.feature", "fault_lines.feature", "boot_self_check.feature")


def _attachments(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Attachments of an Allure result and of all its (nested) steps."""
    found = list(node.get("attachments", []))
    for step in node.get("steps", []):
        found += _attachments(step)
    return found


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, Path, Path]:
    feature_run = run_features(pytester, FEATURES, *args, extra=CARD_SECTIONS)
    return feature_run.result, feature_run.results, feature_run.summary_path


def test_card_features_pass_with_masked_reports(pytester: pytest.Pytester) -> None:
    run, results, summary = _run(pytester)
    data = json.loads(summary.read_text())
    failed = [(s["scenario"], s["message"]) for s in data["scenarios"] if s["outcome"] != "passed"]
    assert not failed, failed
    run.assert_outcomes(passed=data["counts"]["passed"])
    assert data["counts"]["passed"] >= 20

    # The boot scenario demands power, tamper and card_reader PASS with the channels wired.
    reads = [
        m for s in data["scenarios"] for m in s["measurements"] if m["name"] == "insert_to_read"
    ]
    assert reads and all(m["passed"] and m["high"] == 2.0 for m in reads)

    # Every APDU trace is attached, and no report file holds a full PAN or a track.
    attachments = [
        a for p in results.glob("*-result.json") for a in _attachments(json.loads(p.read_text()))
    ]
    traces = [a for a in attachments if a["name"] == "APDU trace"]
    assert len(traces) >= 10  # every scenario that used the card slot
    assert any("GENERATE AC" in (results / a["source"]).read_text() for a in traces)
    pans = [p.pan for p in ProfileLibrary(DEFAULT_PROFILES).load_all()]
    for path in results.iterdir():
        text = path.read_text(errors="replace")
        if "-attachment" in path.name:  # result files hold 13-digit epoch timestamps
            assert not contains_full_pan(text), path.name
        assert not any(pan in text for pan in pans), path.name
        assert "=3012" not in text and "%B" not in text, f"track data in {path.name}"


def test_a_misread_pan_fails_the_scenario(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A mis-personalised card whose chip holds another PAN than its profile says: the
    masked compare must fail the scenario as a terminal-side failure, not pass it."""
    profiles = tmp_path / "cards"
    shutil.copytree(DEFAULT_PROFILES, profiles)
    visa = profiles / "visa-credit.yaml"
    visa.write_text(
        visa.read_text()
        + """  - sfi: 2
    record: 1
    tags:
      5A: "4761739001010028"
      5F24: "301231"
      5F30: "0201"
"""
    )
    feature_run = run_features(
        pytester,
        ("card_reader.feature",),
        "-k",
        "chip_card_is_read_and_equals",
        extra=CARD_SECTIONS.replace(str(DEFAULT_PROFILES), str(profiles)),
    )
    run, summary = feature_run.result, feature_run.summary_path
    run.assert_outcomes(failed=1)
    (scenario,) = json.loads(summary.read_text())["scenarios"]
    assert scenario["outcome"] == "failed" and not scenario["rig_fault"], scenario
    assert "476173******0028" in scenario["message"], scenario["message"]
    assert "476173******0010" in scenario["message"], scenario["message"]
