"""The ``hil`` command line, run as a user runs it (subprocess, real sim rig)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from hil.protocol.session import ConsoleSession
from hil.runtime import processes_of_run
from hil.suite import DEFAULT_RIG, FEATURES, FIXTURES
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = [sys.executable, "-m", "hil"]


def _hil(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HIL, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_commands(tmp_path: Path) -> None:
    result = _hil("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("run", "rig", "sim", "report"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("baud = 115200", 'baud = "fast"'), "console.baud: expected integer"),
        (('driver = "sim"\noff', 'driver = "relay"\noff'), "power.driver: unknown driver 'relay'"),
        (("[limits]", "[limits]\nboot_s = 3"), "limits.boot_s: unknown key"),
        (('terminal_id = "T0000001"', 'terminal_id = "T1"'), "dut.terminal_id: terminal ID must"),
    ],
)
def test_malformed_rig_exits_2_naming_the_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = (DEFAULT_RIG).read_text().replace(*edit)
    assert text != (DEFAULT_RIG).read_text()
    text = text.replace("../fixtures", str(FIXTURES))
    rig = tmp_path / "x.toml"
    rig.write_text(text)
    for command in (["run", "--rig", str(rig)], ["rig", "check", "--rig", str(rig)]):
        result = _hil(*command, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0] == f"hil: x.toml: {expected}" or lines[0].startswith(
            f"hil: x.toml: {expected}"
        ), lines[0]


def test_rig_check_prints_one_line_per_instrument(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml")
    result = _hil("rig", "check", "--rig", str(rig), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if re.match(r"^(ok|FAIL)\s", line)]
    assert [line.split()[1] for line in lines] == ["dut", "console", "power", "terminal"]
    assert "SN SIM8A0000001" in result.stdout


def test_run_writes_reports_and_exit_code(tmp_path: Path) -> None:
    shutil.copytree(FEATURES, tmp_path / "features", ignore=shutil.ignore_patterns("__pycache__"))
    rig = write_sim_rig(tmp_path / "rig.toml")
    result = _hil(
        "run",
        "--rig",
        str(rig),
        "--no-html",
        "--",
        "-k",
        "reports_the_identity or reboot",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\[1/2\] Boot self-check: ", result.stdout), result.stdout
    assert "Given the terminal is idle" in result.stdout
    assert "Self-check results" in result.stdout
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["counts"] == {
        "passed": 2,
        "failed": 0,
        "broken": 0,
        "skipped": 0,
        "interrupted": 0,
        "not run": 0,
        "pending": 0,
    }
    assert summary["status"] == "finished" and summary["complete"] is True
    junit = ElementTree.parse(tmp_path / "reports" / "junit.xml").getroot()
    suite = junit.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("errors") == "0"
    properties = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert properties["run_id"] == summary["run_id"] and properties["complete"] == "true"
    results = list((tmp_path / "reports" / "allure-results").glob("*-result.json"))
    assert len(results) == 2, "one result per scenario, and no run-incomplete marker"


def test_sim_prints_port_and_answers(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml")
    process = subprocess.Popen(
        [*HIL, "sim", "--rig", str(rig)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"console port: (\S+)", line)
        assert match, line
        with ConsoleSession.open_url(match.group(1)) as session:
            info = session.request("device.info", timeout=5.0)
        assert info["serial_number"] == "SIM8A0000001"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(15) in (0, 130)


def test_ctrl_c_mid_suite_tears_the_rig_down(tmp_path: Path) -> None:
    """SIGINT during a scenario: exit 130, the scenario is 'interrupted', no terminal left."""
    shutil.copytree(FEATURES, tmp_path / "features", ignore=shutil.ignore_patterns("__pycache__"))
    rig = write_sim_rig(tmp_path / "rig.toml", time_scale=1.0)  # slow enough to interrupt
    marker = f"ctrlc-{os.getpid()}"
    process = subprocess.Popen(
        [*HIL, "run", "--rig", str(rig), "--no-html"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "HIL_RUN_ID": marker},
        # CI may run us as a background job with SIGINT ignored, and an ignored signal
        # stays ignored across exec; a user's Ctrl-C is not. The child has no threads.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "When the terminal is powered on" in line:
            break
    assert processes_of_run(marker), "the simulated terminal should be running"
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130, rest
    assert "interrupted" in rest
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["counts"]["interrupted"] == 1
    assert summary["counts"]["passed"] == 0
    survivors = processes_of_run(marker)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes()[:120] for pid in survivors]
    assert survivors == [], f"terminal process survived Ctrl-C: {commands}"


def test_rig_check_reports_a_terminal_that_cannot_boot(tmp_path: Path) -> None:
    rig = write_sim_rig(tmp_path / "rig.toml")
    tampered = FIXTURES / "firmware" / "tampered-1.4.2.fw.json"
    result = _hil("rig", "check", "--rig", str(rig), "--firmware", str(tampered), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^FAIL boot .*E_FW_SIGNATURE", result.stdout, re.MULTILINE), result.stdout
