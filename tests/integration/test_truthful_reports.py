"""Reports that tell the truth about their run (issue 9).

- A scenario that breaks while holding a full PAN: the PAN appears in no file the run
  writes (Allure results and attachments, pytest's junit, hil's junit, summary.json)
  and nowhere on the console, whatever path the text took (exception message,
  traceback with function arguments and locals, captured output, step parameters, a
  test ID made from an Examples row).
- Blame: only the terminal's failures exit 1; a configuration error 2, a rig fault 3,
  a bug of ours or of a step 70, each with one line on stderr, each in its own Allure
  category and junit entry.
- A terminal that dies is reported as dead, not as the symptom a step saw first.
- ``hil run`` interrupted (SIGINT) or killed (SIGKILL) mid-suite leaves reports that
  say the run is incomplete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from hil.htmlreport import ALLURE_BIN_ENV, ReportError, check_report_tools
from hil.masking import full_pans
from hil.runinfo import RUN_ID_ENV
from hil.runtime import processes_of_run
from hil.suite import FEATURES
from tests.conftest import write_sim_rig
from tests.urlscan import embedded_report_data

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"
REPO = Path(__file__).resolve().parents[2]
PAN = "4761739001010010"  # the Visa ADVT test card of fixtures/cards/visa-credit.yaml

# --- a scenario that breaks holding a card number -----------------------------------------

PAN_STEPS = f'''
import logging
import sys

from pytest_bdd import given, parsers, then, when

from hil.errors import ConfigError, DutError, RigError

PAN = "{PAN}"


@given(parsers.parse('a card "{{number}}" in hand'), target_fixture="card")
def card_in_hand(number):
    return {{"pan": number, "holder": "TEST/CARD"}}


@when(parsers.parse("the step breaks with a {{kind}}"))
def breaks(card, kind):
    pan = card["pan"]
    print(f"stdout: reading {{pan}}")
    sys.stderr.write(f"stderr: reading {{pan}}\\n")
    logging.getLogger("lab").warning("log: reading %s", pan)
    if kind == "failed assertion":
        # a rewritten assert shows both sides, the card's PAN among them
        assert card == {{"pan": "0"}}, f"read {{pan}} [E_CARD_TWICE]"
    raise {{
        "configuration error": ConfigError(f"profile with pan {{pan}}: bogus: unknown key"),
        "rig fault": RigError(f"reader jammed on {{pan}}"),
        "terminal failure": DutError(f"terminal read {{pan}} twice [E_CARD_TWICE]"),
        "framework bug": TypeError(f"cannot add {{pan}} and None"),
    }}[kind]


@then("nothing else happens")
def nothing_else():
    pass
'''

PAN_FEATURE = f"""\
Feature: Card data in failures
  Scenario Outline: A step breaks with a <kind> while it holds a card number
    Given a card "{PAN}" in hand
    When the step breaks with a <kind>
    Then nothing else happens

    Examples:
      | kind                |
      | configuration error |
      | rig fault           |
      | terminal failure    |
      | framework bug       |
      | failed assertion    |

  Scenario Outline: The card number is a row of the examples
    Given a card "<pan>" in hand
    When the step breaks with a framework bug

    Examples:
      | pan   |
      | {PAN} |
"""

#: kind -> (summary outcome, blame, Allure status, Allure message prefix, hil run exit)
KINDS: dict[str, tuple[str, str, str, str, int]] = {
    "configuration error": ("broken", "config", "broken", "Configuration or authoring error: ", 2),
    "rig fault": ("broken", "rig", "broken", "Rig fault: ", 3),
    "terminal failure": ("failed", "terminal", "failed", "", 1),
    "framework bug": ("broken", "framework", "broken", "Framework bug: ", 70),
    "failed assertion": ("failed", "terminal", "failed", "", 1),
}


def _pan_project(folder: Path) -> None:
    (folder / "conftest.py").write_text(PAN_STEPS)
    (folder / "features").mkdir()
    (folder / "features" / "cards.feature").write_text(PAN_FEATURE)


def _inputs(folder: Path) -> set[Path]:
    """What the test wrote itself (with the PAN in it, on purpose)."""
    return {folder / "conftest.py", folder / "features" / "cards.feature"}


def _scan_json(value: Any, key: str = "") -> list[str]:
    """Full PANs in a JSON document's strings and integers; Allure's epoch-millisecond
    ``start``/``stop`` integers are times, not card numbers."""
    if isinstance(value, dict):
        return [pan for k, v in value.items() for pan in _scan_json(v, k)]
    if isinstance(value, list):
        return [pan for v in value for pan in _scan_json(v, key)]
    if isinstance(value, bool):
        return []
    if isinstance(value, int) and key in ("start", "stop", "duration", "time"):
        return []
    return full_pans(str(value))


def _recent_epoch_time(digits: str) -> bool:
    """Epoch milli-, micro- or nanoseconds of the last days: Allure's export and widgets
    write them (influxDbData.txt in nanoseconds), and one in ten passes Luhn."""
    if not digits.isdigit():
        return False
    scale = {13: 1e3, 16: 1e6, 19: 1e9}.get(len(digits))
    return scale is not None and abs(int(digits) / scale - time.time()) < 3 * 86400


def _pans_in_text(text: str) -> list[str]:
    """Full PANs in text, but for recent epoch times (see _recent_epoch_time)."""
    return [found for found in full_pans(text) if not _recent_epoch_time(found)]


def pans_in_files(folder: Path, skip: set[Path]) -> dict[str, list[str]]:
    """Every file under ``folder`` (but ``skip`` and Python caches) scanned for a full
    PAN; JSON as JSON, everything else as text (binary read as Latin-1)."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path in skip or "__pycache__" in path.parts:
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            pans = _scan_json(json.loads(data))
        else:
            pans = _pans_in_text(data.decode("latin-1"))
        if pans:
            found[str(path.relative_to(folder))] = pans
    return found


def _allure_results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in folder.glob("*-result.json")]


def test_a_full_pan_in_a_failing_scenario_reaches_no_report(pytester: pytest.Pytester) -> None:
    """Plain pytest, every way out at once: -l (locals), long tracebacks, captured
    output, Allure, pytest's junit and hil's, the summary, the console."""
    _pan_project(pytester.path)
    result = pytester.runpytest_subprocess(
        "features",
        "-o",
        "hil_features=true",
        "-l",
        "--tb=long",
        "-rA",
        "-p",
        "no:cacheprovider",
        "--alluredir=allure-results",
        "--junitxml=pytest-junit.xml",
        "--hil-junit=hil-junit.xml",
        "--hil-summary=summary.json",
    )
    console = result.stdout.str() + result.stderr.str()
    # The PAN was there to leak: masked, it shows where it was.
    assert "476173******0010" in console
    assert full_pans(console) == [], [line for line in console.splitlines() if full_pans(line)]
    assert pans_in_files(pytester.path, _inputs(pytester.path)) == {}

    summary = json.loads((pytester.path / "summary.json").read_text())
    by_kind = {
        kind: next(s for s in summary["scenarios"] if kind in s["scenario"]) for kind in KINDS
    }
    for kind, (outcome, blame, *_) in KINDS.items():
        assert (by_kind[kind]["outcome"], by_kind[kind]["blame"]) == (outcome, blame), kind
    assert summary["complete"] is True and summary["counts"]["failed"] == 2

    results = _allure_results(pytester.path / "allure-results")
    assert len(results) == 6
    for kind, (_, _, status, prefix, _) in KINDS.items():
        (case,) = [r for r in results if r["name"].startswith(f"A step breaks with a {kind}")]
        assert case["status"] == status, kind
        assert case["statusDetails"]["message"].startswith(prefix), case["statusDetails"]
    categories = json.loads((pytester.path / "allure-results" / "categories.json").read_text())
    for *_, prefix, _ in KINDS.values():
        if prefix:  # a broken result's message prefix is what its category matches
            assert any(re.fullmatch(c.get("messageRegex", ""), prefix + "x") for c in categories)

    junit = ElementTree.parse(pytester.path / "hil-junit.xml").getroot()
    errors = {e.get("message", "").split(":")[0] for e in junit.iter("error")}
    assert errors == {"Configuration or authoring error", "Rig fault", "Framework bug"}
    assert len(list(junit.iter("failure"))) == 2


@pytest.mark.parametrize("kind", list(KINDS))
def test_hil_run_exit_code_and_one_line_follow_the_blame(tmp_path: Path, kind: str) -> None:
    """And hil run's own console, junit and Allure results stay masked."""
    _pan_project(tmp_path)
    reports = tmp_path / "reports"
    result = subprocess.run(
        [
            str(HIL),
            "run",
            "--reports",
            str(reports),
            "--no-html",
            "--",
            "-k",
            kind.split(maxsplit=1)[0],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    *_, code = KINDS[kind]
    assert result.returncode == code, result.stdout[-3000:] + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hil: "), result.stderr
    assert "476173******0010" in lines[0] or kind in ("terminal failure", "failed assertion")
    assert "[E_CARD_TWICE]" in result.stdout or "E_CARD_TWICE" not in kind  # no markup eaten
    assert full_pans(result.stdout + result.stderr) == []
    assert pans_in_files(tmp_path, _inputs(tmp_path)) == {}


def test_rich_markup_does_not_eat_brackets_in_a_reason(tmp_path: Path) -> None:
    _pan_project(tmp_path)
    result = subprocess.run(
        [str(HIL), "run", "--reports", "reports", "--no-html", "--", "-k", "terminal"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    table = result.stdout[result.stdout.index("Self-check results") :]
    assert "[E_CARD_TWICE]" in table.replace("│\n│", "").replace("\n", ""), table


# --- a terminal that dies ----------------------------------------------------------------

DEATH_STEPS = """
import os
import signal
import time

from pytest_bdd import then, when

from hil.terminal.results import TerminalReady


@when("the terminal process is killed by SIGSEGV")
def crash(hil_rig):
    process = hil_rig.process
    os.kill(process.pid, signal.SIGSEGV)
    deadline = time.monotonic() + 5
    while process.alive and time.monotonic() < deadline:
        time.sleep(0.01)


@when("the terminal process is frozen")
def freeze(hil_rig, request):
    pid = hil_rig.process.pid
    os.kill(pid, signal.SIGSTOP)
    request.addfinalizer(lambda: os.kill(pid, signal.SIGCONT))


@then("the terminal says it is ready within 1 s")
def ready(terminal):
    terminal.wait_event(TerminalReady, since=terminal.mark(), timeout=1.0)
"""

DEATH_FEATURE = """\
Feature: A terminal that dies
  Scenario: The terminal process crashes
    Given the terminal is idle
    When the terminal process is killed by SIGSEGV
    Then the terminal says it is ready within 1 s

  Scenario: The terminal process hangs
    Given the terminal is idle
    When the terminal process is frozen
    Then the terminal says it is ready within 1 s
"""


def test_a_terminal_that_died_is_reported_as_dead_not_as_a_symptom(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(DEATH_STEPS)
    (pytester.path / "features").mkdir()
    (pytester.path / "features" / "death.feature").write_text(DEATH_FEATURE)
    rig = write_sim_rig(pytester.path / "rig.toml")
    pytester.runpytest_subprocess(
        "features",
        "-o",
        "hil_features=true",
        f"--rig={rig}",
        "--hil-summary=summary.json",
        "-p",
        "no:cacheprovider",
    )
    summary = json.loads((pytester.path / "summary.json").read_text())
    crashed, hung = summary["scenarios"]
    assert (crashed["outcome"], crashed["blame"]) == ("failed", "terminal"), crashed
    assert "the terminal process was killed by SIGSEGV" in crashed["message"], crashed
    assert "waited for TerminalReady" in crashed["message"]
    assert (hung["outcome"], hung["blame"]) == ("failed", "terminal"), hung
    assert "the terminal stopped answering on its test port" in hung["message"], hung
    for entry in (crashed, hung):
        assert "did not arrive within" not in entry["message"].split("(")[0]


# --- hil run interrupted or killed mid-suite ---------------------------------------------


@pytest.fixture
def boot_project(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    """The boot feature on a sim rig slow enough to interrupt; a run ID of its own, so
    whatever a killed run leaves is found by it (never by a process name)."""
    shutil.copytree(FEATURES, tmp_path / "features", ignore=shutil.ignore_patterns("__pycache__"))
    for feature in (tmp_path / "features").glob("*.feature"):
        if feature.name != "boot_self_check.feature":
            feature.unlink()
    rig = write_sim_rig(tmp_path / "rig.toml", time_scale=0.3)
    this_run = f"truth-{os.getpid()}-{tmp_path.name[-12:]}".replace("_", "-")
    yield tmp_path, rig, this_run
    _stop_processes_of(this_run)


def _stop_processes_of(run: str) -> None:
    """The terminal a SIGKILLed runner leaves (pcscd, shared with other runs, stays)."""
    for pid in processes_of_run(run):
        try:
            if b"hil.sim" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def _interrupt_hil_run(
    project: Path, rig: Path, run: str, sig: signal.Signals, *extra: str
) -> tuple[subprocess.Popen[str], str, str]:
    """Start hil run, send ``sig`` in the third scenario, while the terminal boots (two
    scenarios are over by then); return its output."""
    process = subprocess.Popen(
        [str(HIL), "run", "--rig", str(rig), *extra],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, RUN_ID_ENV: run},
        # CI may run us with SIGINT ignored, which exec keeps; a user's Ctrl-C is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if sum("=> " in s for s in seen) == 2 and "When the terminal is powered on" in line:
            process.send_signal(sig)
            break
    rest, errors = process.communicate(timeout=120)
    return process, "".join(seen) + rest, errors


def _junit(path: Path) -> tuple[ElementTree.Element, dict[str, str | None]]:
    suite = ElementTree.parse(path).getroot()[0]
    return suite, {p.get("name"): p.get("value") for p in suite.iter("property")}


def test_sigint_mid_suite_leaves_reports_that_say_interrupted(
    boot_project: tuple[Path, Path, str],
) -> None:
    project, rig, run = boot_project
    process, output, errors = _interrupt_hil_run(project, rig, run, signal.SIGINT, "--no-html")
    assert process.returncode == 130, output[-2000:] + errors
    lines = [line for line in errors.splitlines() if line.strip()]
    assert len(lines) == 1 and f"run {run} interrupted by Ctrl-C" in lines[0], errors
    reports = project / "reports"

    summary = json.loads((reports / "summary.json").read_text())
    assert (summary["run_id"], summary["status"], summary["complete"]) == (
        run,
        "interrupted",
        False,
    )
    assert summary["counts"]["interrupted"] == 1 and summary["counts"]["passed"] >= 2
    assert summary["counts"]["not run"] >= 1 and summary["counts"]["pending"] == 0

    suite, properties = _junit(reports / "junit.xml")
    assert (properties["run_id"], properties["complete"]) == (run, "false")
    messages = [e.get("message") or "" for e in suite.iter("error")]
    assert any("interrupted by Ctrl-C" in m and "during this scenario" in m for m in messages)
    assert any(m.startswith(f"Run incomplete: run {run} interrupted by Ctrl-C") for m in messages)
    assert int(suite.get("errors") or 0) >= 2

    results = _allure_results(reports / "allure-results")
    (marker,) = [r for r in results if r["fullName"] == f"hil run {run}"]
    assert marker["status"] == "broken"
    assert marker["statusDetails"]["message"].startswith(f"Run incomplete: run {run} interrupted")
    environment = (reports / "allure-results" / "environment.properties").read_text()
    assert f"run_id={run}\n" in environment and "run_status=interrupted\n" in environment


def test_sigkill_mid_suite_leaves_reports_that_say_not_finished(
    boot_project: tuple[Path, Path, str],
) -> None:
    project, rig, run = boot_project
    process, _, _ = _interrupt_hil_run(project, rig, run, signal.SIGKILL, "--no-html")
    assert process.returncode == -signal.SIGKILL
    reports = project / "reports"

    summary = json.loads((reports / "summary.json").read_text())
    assert (summary["run_id"], summary["status"], summary["complete"]) == (run, "running", False)
    assert summary["counts"]["passed"] >= 2 and summary["counts"]["pending"] >= 1

    suite, properties = _junit(reports / "junit.xml")
    assert (properties["run_id"], properties["complete"]) == (run, "false")
    (run_case,) = [c for c in suite.iter("testcase") if c.get("classname") == "hil.run"]
    error = run_case.find("error")
    assert error is not None and "had not finished" in (error.get("message") or "")
    assert suite.get("errors") == "1"

    results = _allure_results(reports / "allure-results")
    assert any(r["status"] == "broken" and r["fullName"] == f"hil run {run}" for r in results)
    assert f"run_id={run}\n" in (reports / "allure-results" / "environment.properties").read_text()


@pytest.fixture
def report_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTML report needs the Allure 2 command line and Java; the one found from
    here is named to the hil run under test, which runs in another folder."""
    try:
        allure = check_report_tools()
    except ReportError as missing:
        pytest.skip(str(missing))
    monkeypatch.setenv(ALLURE_BIN_ENV, str(allure))


def test_an_interrupted_run_reads_incomplete_in_the_html_report(
    boot_project: tuple[Path, Path, str], report_tools: None
) -> None:
    project, rig, run = boot_project
    process, output, errors = _interrupt_hil_run(project, rig, run, signal.SIGINT)
    assert process.returncode == 130, output[-2000:] + errors
    html = (project / "reports" / "html" / "index.html").read_text()
    data = embedded_report_data(html)
    environment = json.loads(data["widgets/environment.json"])
    assert {"name": "run_id", "values": [run]} in environment
    cases = [json.loads(v) for k, v in data.items() if k.startswith("data/test-cases/")]
    (marker,) = [c for c in cases if c["fullName"] == f"hil run {run}"]
    assert marker["status"] == "broken"
    assert marker["statusMessage"].startswith(f"Run incomplete: run {run} interrupted")
    categories = json.loads(data["data/categories.json"])
    assert "Run incomplete" in [c["name"] for c in categories["children"]]


def test_a_complete_run_carries_its_run_id_into_the_html_report(
    tmp_path: Path, report_tools: None
) -> None:
    _pan_project(tmp_path)
    this_run = f"html-{os.getpid()}"
    result = subprocess.run(
        [str(HIL), "run", "--reports", "reports", "--", "-k", "rig"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, RUN_ID_ENV: this_run},
    )
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr
    data = embedded_report_data((tmp_path / "reports" / "html" / "index.html").read_text())
    assert {"name": "run_id", "values": [this_run]} in json.loads(data["widgets/environment.json"])
    cases = [json.loads(v) for k, v in data.items() if k.startswith("data/test-cases/")]
    assert [c["status"] for c in cases] == ["broken"]  # the scenario; no incomplete marker
    categories = json.loads(data["data/categories.json"])
    assert [c["name"] for c in categories["children"]] == ["Rig fault"]
    for name, body in data.items():
        pans = (
            _scan_json(json.loads(body)) if name.endswith(".json") else _pans_in_text(body.decode())
        )
        assert pans == [], name


def test_another_projects_suite_is_left_alone(pytester: pytest.Pytester) -> None:
    """The plugin loads in every pytest of the environment; it guards hil's sessions
    (a rig, hil's feature files, hil's report options), not the output of others."""
    pytester.makepyfile(
        test_other=f"""
        def test_an_id_that_looks_like_a_card():
            assert "{PAN}" == "0"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 1
    assert PAN in result.stdout.str()
