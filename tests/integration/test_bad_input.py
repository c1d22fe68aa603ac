"""Bad input to ``hil``: exit 2 (never 1, 3 or 130) with one line on stderr that names
what is wrong, and, when the run never started, every earlier report left as it was.

Most cases never start a rig; the ones found while the rig starts (a host parameter or
key file that does not parse) or while a scenario runs (a card profile with an unknown
key) run on the real sim rig.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.suite import DEFAULT_RIG, FEATURES, FIXTURES
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"
SIM = DEFAULT_RIG.read_text().replace("../fixtures", str(FIXTURES))
BROKEN_IMAGE = '{"format": "pos-hil-fw/1", "manifest": '


def _hil(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIL), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hil: ") and "Traceback" not in result.stderr
    return lines[0]


def _earlier_reports(reports: Path) -> dict[str, str]:
    """A folder of reports from an earlier run; returns what it holds (path -> hash)."""
    (reports / "allure-results").mkdir(parents=True)
    (reports / "html").mkdir()
    (reports / "summary.json").write_text('{"run_id": "earlier", "complete": true}\n')
    (reports / "junit.xml").write_text('<testsuites name="earlier"/>\n')
    (reports / "allure-results" / "0-result.json").write_text('{"name": "earlier"}')
    (reports / "html" / "index.html").write_text("<html>earlier</html>")
    return _tree(reports)


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "/"
        for p in sorted(folder.rglob("*"))
    }


def _project(tmp_path: Path) -> Path:
    """Features, a broken image and a broken feature folder or two to point at."""
    shutil.copytree(FEATURES, tmp_path / "features", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "broken.fw.json").write_text(BROKEN_IMAGE)
    (tmp_path / "empty").mkdir()
    (tmp_path / "syntax").mkdir()
    (tmp_path / "syntax" / "boot.feature").write_text(
        "Feature: Boot\n  Scenario: a\n    Given the terminal is idle\n  Scenaro: b\n"
    )
    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "boot.feature").write_text(
        "Feature: Boot\n  Scenario: a\n    Given the terminal is idel\n"
    )
    (tmp_path / "rig.toml").write_text(SIM)
    (tmp_path / "badfw.toml").write_text(
        SIM.replace(str(FIXTURES / "firmware" / "pos-sim-healthy-1.4.2.fw.json"), "broken.fw.json")
    )
    (tmp_path / "nocards.toml").write_text(
        SIM.replace(f'profiles = "{FIXTURES / "cards"}"', 'profiles = "no-such-cards"', 1)
    )
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path


#: (arguments, extra environment, exit code, what the one line says)
BEFORE_THE_RUN: dict[str, tuple[list[str], dict[str, str], str]] = {
    "unknown pytest option": (
        ["run", "--", "--bogus"],
        {},
        "hil: pytest: unrecognized arguments: --bogus",
    ),
    "-k matching nothing": (
        ["run", "--", "-k", "no_such_scenario"],
        {},
        "hil: no scenario matches -k 'no_such_scenario' (",
    ),
    "--reports is a file": (
        ["run", "--reports", "a-file"],
        {},
        "hil: --reports: a-file exists and is not a folder",
    ),
    "--firmware is a folder": (
        ["run", "--firmware", "empty"],
        {},
        "hil: --firmware: empty is a folder, not a firmware image file",
    ),
    "--firmware missing": (
        ["run", "--firmware", "nope.fw.json"],
        {},
        "hil: --firmware: file not found",
    ),
    "--firmware malformed": (
        ["run", "--firmware", "broken.fw.json"],
        {},
        "hil: --firmware: broken.fw.json: firmware image: invalid JSON: Expecting value: line 1",
    ),
    "rig names a malformed image": (
        ["run", "--rig", "badfw.toml"],
        {},
        "hil: badfw.toml: dut.firmware: ",
    ),
    "missing cards.profiles folder": (
        ["run", "--rig", "nocards.toml"],
        {},
        "hil: nocards.toml: cards.profiles: folder not found",
    ),
    "Gherkin syntax error": (
        ["run", "--features", "syntax"],
        {},
        "hil: syntax/boot.feature:4: Gherkin syntax error: ",
    ),
    "unknown step": (
        ["run", "--features", "typo"],
        {},
        'hil: typo/boot.feature:3: unknown step "Given the terminal is idel"; closest known: ',
    ),
    "empty features folder": (
        ["run", "--features", "empty"],
        {},
        "hil: no scenarios collected from empty",
    ),
    "missing features folder": (
        ["run", "--features", "nope"],
        {},
        "hil: --features: no such folder: nope",
    ),
    "malformed run ID": (
        ["run"],
        {"HIL_RUN_ID": "../../etc"},
        "hil: HIL_RUN_ID: '../../etc' is not a run ID",
    ),
}


@pytest.mark.parametrize("case", list(BEFORE_THE_RUN))
def test_bad_input_before_the_run_exits_2_and_touches_no_report(tmp_path: Path, case: str) -> None:
    project = _project(tmp_path)
    before = _earlier_reports(project / "reports")
    args, env, expected = BEFORE_THE_RUN[case]
    result = _hil(project, *args, env=env)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert _one_line(result).startswith(expected), result.stderr
    assert _tree(project / "reports") == before


@pytest.fixture
def results_folder(tmp_path: Path) -> Path:
    results = tmp_path / "reports" / "allure-results"
    results.mkdir(parents=True)
    (results / "0-result.json").write_text('{"name": "x", "status": "passed"}')
    return results


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("reports/allure-results", "would contain the results"),
        ("reports", "would contain the results"),
        ("reports/allure-results/html", "would contain the results"),
    ],
)
def test_hil_report_over_its_results_is_a_usage_error(
    tmp_path: Path, results_folder: Path, out: str, expected: str
) -> None:
    before = _tree(tmp_path / "reports")
    result = _hil(tmp_path, "report", "--results", "reports/allure-results", "--out", out)
    assert result.returncode == 2, result.stderr
    assert expected in _one_line(result)
    assert _tree(tmp_path / "reports") == before


def test_hil_report_without_results_is_a_usage_error(tmp_path: Path) -> None:
    result = _hil(tmp_path, "report", "--results", "nope", "--out", "html")
    assert result.returncode == 2
    assert _one_line(result) == "hil: allure results directory not found: nope"


# --- found once the run started -----------------------------------------------------------


def _host_file(name: str, text: str) -> Callable[[Path], str]:
    def edit(project: Path) -> str:
        (project / name).write_text(text)
        key = "keys" if "keys" in name else "parameters"
        original = FIXTURES / "host" / ("keys-test.json" if key == "keys" else "params-v1.json")
        return SIM.replace(f'{key} = "{original}"', f'{key} = "{name}"', 1)

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            _host_file("params.json", '{"version": 1'),
            "hil: configuration error: rig.toml: host.parameters: ",
        ),
        (
            _host_file("keys.json", '{"tmk": "zz"}'),
            "hil: configuration error: rig.toml: host.keys: ",
        ),
    ],
    ids=["host-parameters", "host-keys"],
)
def test_misconfiguration_found_as_the_rig_starts_exits_2_and_the_reports_say_stopped(
    tmp_path: Path, edit: Callable[[Path], str], expected: str
) -> None:
    project = _project(tmp_path)
    (project / "rig.toml").write_text(edit(project))
    result = _hil(project, "run", "--rig", "rig.toml", "--no-html", "--", "-k", "reboot")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert _one_line(result).startswith(expected)
    summary = json.loads((project / "reports" / "summary.json").read_text())
    assert (summary["status"], summary["complete"], summary["rig_faults"]) == ("stopped", False, 0)
    assert summary["counts"]["not run"] == summary["collected"] == 1
    assert summary["counts"]["failed"] == summary["counts"]["broken"] == 0


def test_a_card_profile_with_an_unknown_key_exits_2_not_1(tmp_path: Path) -> None:
    """Found when a scenario loads the profile: the scenarios using it are broken with a
    configuration error, the terminal is not blamed, one line says which file and key."""
    cards = tmp_path / "cards"
    shutil.copytree(FIXTURES / "cards", cards)
    with (cards / "visa-credit.yaml").open("a") as profile:
        profile.write("bogus: 1\n")
    shutil.copytree(FEATURES, tmp_path / "features", ignore=shutil.ignore_patterns("__pycache__"))
    rig = write_sim_rig(
        tmp_path / "rig.toml",
        extra=f'[cards]\ndriver = "vpcd"\nprofiles = "{cards}"\n',
    )
    result = _hil(
        tmp_path, "run", "--rig", str(rig), "--no-html", "--", "-k", "chip_card_is_read or atc"
    )
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr
    line = _one_line(result)
    assert (
        line.startswith("hil: configuration error: ")
        and "visa-credit.yaml: bogus: unknown key" in line
    )
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["config_errors"] >= 1 and summary["rig_faults"] == 0
    assert summary["counts"]["failed"] == 0
    assert all(s["blame"] in (None, "config") for s in summary["scenarios"])
