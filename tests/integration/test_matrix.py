"""End to end: ``hil matrix`` over the healthy build and two defect builds, each build a
real ``hil run`` on the sim rig (pty, processes, pcscd, host on loopback), narrowed by
--tags to the scenarios that concern those two defects so the test stays short."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.integration.test_truthful_reports import HIL

pytestmark = pytest.mark.integration

HEALTHY = "pos-sim-healthy-1.4.2"
PARTIAL_SYNC = "pos-sim-partial-sync-1.4.2"
QR_CRC = "pos-sim-qr-crc-unchecked-1.4.2"


def _matrix(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIL), "matrix", "--reports", str(tmp_path / "reports"), "--jobs", "2", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_a_small_matrix_catches_both_defects_and_passes_the_healthy_build(
    tmp_path: Path,
) -> None:
    result = _matrix(
        tmp_path,
        "--build",
        PARTIAL_SYNC,
        "--build",
        QR_CRC,
        "--tags",
        "req_SC-SYNC-03 or req_SC-QR-04",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "every defect build was caught in its area" in result.stdout
    reports = tmp_path / "reports"
    data = json.loads((reports / "matrix.json").read_text())
    assert data["format"] == "pos-hil-matrix/1"
    assert data["exit_code"] == 0 and data["problems"] == []
    builds = {b["build"]: b for b in data["builds"]}
    assert set(builds) == {HEALTHY, PARTIAL_SYNC, QR_CRC}
    healthy = builds[HEALTHY]
    assert healthy["verdict"] == "clean" and healthy["exit_code"] == 0
    assert healthy["declared_defects"] == [] and len(healthy["sha256"]) == 64
    assert healthy["outcomes_per_area"] == {"data_sync": {"passed": 1}, "qr_scanner": {"passed": 1}}
    sync = builds[PARTIAL_SYNC]
    assert sync["declared_defects"] == ["sync_keeps_partial_parameters"]
    assert sync["verdict"] == "caught" and sync["exit_code"] == 1
    assert sync["expected_area"] == "data_sync"
    assert sync["failures_per_area"] == {"data_sync": 1}
    assert sync["failed_scenarios"][0]["scenario"] == (
        "An interrupted download keeps the old parameters and reports it"
    )
    qr = builds[QR_CRC]
    assert qr["verdict"] == "caught" and qr["failures_per_area"] == {"qr_scanner": 1}
    for name in builds:  # every build's run has its own reports
        summary = json.loads((reports / "matrix" / name / "summary.json").read_text())
        assert summary["environment"]["firmware_image"] == f"{name}.fw.json"
        assert (reports / "matrix" / name / "hil-run.log").is_file()
    assert ET.parse(reports / "matrix.svg").getroot().tag.endswith("svg")


def test_a_defect_the_selection_cannot_catch_is_reported_missed(tmp_path: Path) -> None:
    # Only the QR scenario runs: the partial-sync defect cannot show, and the matrix
    # must say so rather than pass.
    result = _matrix(tmp_path, "--build", PARTIAL_SYNC, "--tags", "req_SC-QR-04")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    assert (
        f"hil: {PARTIAL_SYNC}: no failure in area data_sync (requirements SC-SYNC-03) — the "
        "suite did not catch sync_keeps_partial_parameters" in result.stderr
    )


def test_bad_matrix_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _matrix(tmp_path, "--build", "pos-sim-nope")
    assert result.returncode == 2
    assert result.stderr.startswith("hil: --build: unknown build 'pos-sim-nope'; known: ")
    assert not (tmp_path / "reports").exists()
