"""The run archive and the report's Trend (issue 12, part 1), end to end.

Two ``hil run`` in a row on the sim rig (one quick scenario each): each run gets its
folder under ``reports/runs/``, ``reports/latest`` and the flat layout's paths follow
the newest, the second report carries the first one's history, and opened in a real
headless Chromium its Trend widget has two points and the page requests nothing but
itself. Chromium is a system package (scripts/setup.sh installs Debian's): without it
this test fails, it never skips.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hil.archive import latest_run_folder, report_history
from hil.runrecord import load_run
from tests.chromium import find_chromium, visit
from tests.conftest import REPO

pytestmark = pytest.mark.integration

HIL = [sys.executable, "-m", "hil"]
#: One quick scenario of the shipped suite.
QUICK = ["--tags", "smoke", "--", "-k", "unique_terminal_id"]
TREND = '[data-id="history-trend"]'


def _env() -> dict[str, str]:
    """Outside any CI (the executor is this station's), with the checkout's report tools."""
    ci = ("HIL_RUN_ID", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "BUILD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ci)}
    if (REPO / ".tools").is_dir():
        env.setdefault("HIL_TOOLS_DIR", str(REPO / ".tools"))
    return {**env, "HIL_OPERATOR": "lab-operator-7", "HIL_STATION": "bench-station-3"}


def report_data(index: Path, name: str) -> Any:
    """One data file a single-file report embeds."""
    found = re.search(rf"d\('{re.escape(name)}','([A-Za-z0-9+/=]*)'\)", index.read_text())
    assert found is not None, f"{index} embeds no {name}"
    return json.loads(base64.b64decode(found.group(1)))


def _run(reports: Path, *extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HIL, "run", "--reports", str(reports), *extra, *QUICK],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_two_runs_in_a_row_archive_each_and_show_a_trend(tmp_path: Path) -> None:
    assert find_chromium() is not None, "no chromium: run scripts/setup.sh (Debian's chromium)"
    reports = tmp_path / "reports"
    first = _run(reports, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    first_folder = latest_run_folder(reports)
    assert first_folder is not None and first_folder.parent == (reports / "runs").resolve()

    # A usage error leaves the archive and latest as they were.
    refused = _run(reports, "--repeat", "0", cwd=tmp_path)
    assert refused.returncode == 2
    assert latest_run_folder(reports) == first_folder
    assert len(list((reports / "runs").iterdir())) == 1

    second = _run(reports, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    runs = sorted((reports / "runs").iterdir())
    assert len(runs) == 2
    second_folder = latest_run_folder(reports)
    assert second_folder is not None and second_folder != first_folder
    assert (reports / "latest").is_symlink()
    # The flat layout's paths are the newest run's.
    top = json.loads((reports / "summary.json").read_text())
    assert top["run_id"] == second_folder.name
    assert (reports / "html" / "index.html").resolve() == second_folder / "html" / "index.html"
    for folder in runs:
        for name in ("summary.json", "junit.xml", "allure-results", "html/index.html"):
            assert (folder / name).exists(), f"{folder.name}/{name}"
    # The earlier run is still whole, and names itself.
    assert json.loads((first_folder / "summary.json").read_text())["run_id"] == first_folder.name

    executor = json.loads((second_folder / "allure-results" / "executor.json").read_text())
    assert executor["buildOrder"] == 2 and executor["type"] == "hil"
    trend = json.loads(report_history(second_folder / "html" / "index.html")["history-trend.json"])
    assert [point["buildOrder"] for point in trend] == [2, 1]

    # hil compare takes run IDs (resolved under reports/runs) and "latest".
    compared = subprocess.run(
        [*HIL, "compare", first_folder.name, "latest"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert compared.returncode == 0, compared.stderr
    assert "no regression" in compared.stdout
    assert load_run(Path("latest"), reports).run_id == second_folder.name

    # The environment names who ran it, where, with what.
    environment = top["environment"]
    for key in ("terminal_model", "terminal_serial", "terminal_id", "merchant_id"):
        assert environment[key], key
    for key in ("firmware_version", "firmware_sha256", "rig", "pos_hil_version"):
        assert environment[key], key
    assert re.fullmatch(r"[0-9a-f]{8}(:[0-9a-f]{8}){7}", environment["suite_sha256"])
    assert environment["operator"] == "lab-operator-7"
    assert environment["station"] == "bench-station-3"
    assert environment["pos_hil_commit"]  # git describe of this checkout, or "none"
    assert environment["started"] <= environment["ended"]

    # One report from both runs (a rerun on one rig: the first is the second's retry).
    merged = subprocess.run(
        [*HIL, "report", "--merge", first_folder.name, "latest", "--out", "merged"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert merged.returncode == 0, merged.stderr
    assert f"merged 2 runs: {first_folder.name}, {second_folder.name}" in merged.stdout
    merged_env = report_data(tmp_path / "merged" / "index.html", "widgets/environment.json")
    runs_named = {e["name"]: e["values"] for e in merged_env}["merged_runs"]
    assert runs_named == [f"{first_folder.name}, {second_folder.name}"]

    page = second_folder / "html" / "index.html"
    ticks = (
        f"Array.from(document.querySelectorAll('{TREND} .chart__axis_x .tick text'))"
        ".map(t => t.textContent)"
    )
    seen = visit(page, ticks, until=f"document.querySelector('{TREND} .chart__svg') !== null")
    assert seen.result == ["#1", "#2"]
    fetched = [url for url in seen.requests if not url.startswith("data:")]
    assert fetched == [page.resolve().as_uri()]
    assert seen.console_errors == []
