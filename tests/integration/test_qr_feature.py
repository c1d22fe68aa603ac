"""End to end: the QR scanner feature through pytest-bdd on the sim rig with its QR screen."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_features

pytestmark = pytest.mark.integration

QR_SCREEN = '\n[qr_screen]\ndriver = "sim"\n'
QR_SCENARIOS = 23  # scenarios and outline examples in features/qr_scanner.feature


def _run(
    pytester: pytest.Pytester, feature: str, extra: str, *args: str
) -> tuple[pytest.RunResult, dict[str, Any], Path]:
    feature_run = run_features(pytester, (feature,), *args, extra=extra)
    return feature_run.result, feature_run.summary(), feature_run.results


def _attachments(case: dict[str, Any]) -> list[str]:
    names = [a["name"] for a in case.get("attachments", [])]
    stack = list(case.get("steps", []))
    while stack:
        step = stack.pop()
        names += [a["name"] for a in step.get("attachments", [])]
        stack += step.get("steps", [])
    return names


def test_qr_feature_green_with_image_and_answer_on_every_scenario(
    pytester: pytest.Pytester,
) -> None:
    run, summary, results = _run(pytester, "qr_scanner.feature", QR_SCREEN)
    run.assert_outcomes(passed=QR_SCENARIOS)

    cases = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    assert len(cases) == QR_SCENARIOS
    for case in cases:
        names = _attachments(case)
        assert "QR image shown" in names, (case["name"], names)
        # the answer to a scan, or the scanner's self-check result
        assert {"terminal answer", "self-check qr_scanner"} & set(names), (case["name"], names)
        labels = {(label["name"], label["value"]) for label in case["labels"]}
        assert ("epic", "qr_scanner") in labels
        # the image attachment is a real PNG
        image = next(a for a in _all_attachment_records(case) if a["name"] == "QR image shown")
        assert (results / image["source"]).read_bytes()[:4] == b"\x89PNG"
    sweep = next(c for c in cases if c["name"].startswith("Decode rate against blur"))
    assert {"decode-rate table", "decode-rate plot", "decode-rate table (CSV)"} <= set(
        _attachments(sweep)
    )

    measured = [
        m for s in summary["scenarios"] for m in s["measurements"] if m["name"] == "qr_decode_time"
    ]
    assert len(measured) == 11  # nominal, the EMVCo sample, nine in-spec examples
    assert all(m["passed"] and m["high"] == 300 for m in measured)


def _all_attachment_records(case: dict[str, Any]) -> list[dict[str, Any]]:
    records = list(case.get("attachments", []))
    stack = list(case.get("steps", []))
    while stack:
        step = stack.pop()
        records += step.get("attachments", [])
        stack += step.get("steps", [])
    return records


def test_qr_feature_skips_on_a_rig_without_a_qr_screen(pytester: pytest.Pytester) -> None:
    run, summary, _ = _run(pytester, "qr_scanner.feature", "")
    run.assert_outcomes(skipped=QR_SCENARIOS)
    assert all("lacks qr_screen, camera" in s["message"] for s in summary["scenarios"])


def test_boot_self_check_passes_qr_scanner_when_the_camera_is_wired(
    pytester: pytest.Pytester,
) -> None:
    run, _, results = _run(pytester, "boot_self_check.feature", QR_SCREEN, "-k", "healthy")
    run.assert_outcomes(passed=1)
    (case,) = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    record = next(a for a in _all_attachment_records(case) if a["name"] == "boot record")
    boot = json.loads((results / record["source"]).read_text())
    (item,) = [i for i in boot["items"] if i["item"] == "qr_scanner"]
    assert (item["status"], item["code"]) == ("pass", "OK")
    assert "calibration target read" in item["message"]
