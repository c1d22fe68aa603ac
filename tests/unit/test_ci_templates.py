"""The CI templates in docs/ci/ stay valid: they parse, they publish junit and the
report, they tell a rig fault (exit 3) from a terminal failure (exit 1), and every
`hil run` option they use exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from hil.cli import app

CI = Path(__file__).resolve().parents[2] / "docs" / "ci"


def _run_options() -> set[str]:
    help_text = CliRunner().invoke(app, ["run", "--help"], terminal_width=200).output
    return set(re.findall(r"(--[a-z][a-z-]+)", help_text))


def _hil_run_options(text: str) -> set[str]:
    commands = re.findall(r"hil run([^\n]*(?:\\\n[^\n]*)*)", text)
    assert commands, "no hil run in the template"
    return {option for command in commands for option in re.findall(r"(--[a-z][a-z-]+)", command)}


def test_github_actions_workflow() -> None:
    text = (CI / "github-actions.yml").read_text()
    workflow: dict[Any, Any] = yaml.safe_load(text)
    job = workflow["jobs"]["self-check"]
    assert "self-hosted" in job["runs-on"]
    steps = {step.get("name"): step for step in job["steps"]}
    assert steps["Publish junit and the HTML report"]["if"] == "always()"
    published = steps["Publish junit and the HTML report"]["with"]["path"]
    assert "reports/junit.xml" in published and "reports/html/index.html" in published
    verdict = steps["Verdict"]["run"]
    assert re.search(r"1\).*Terminal failed.*exit 1", verdict)
    assert re.search(r"3\).*Rig fault.*exit 3", verdict)
    assert _hil_run_options(text) <= _run_options()


def test_gitlab_job() -> None:
    text = (CI / "gitlab-ci.yml").read_text()
    pipeline: dict[str, Any] = yaml.safe_load(text)
    job = pipeline["pos-hil"]
    assert job["stage"] in pipeline["stages"]
    assert job["allow_failure"] == {"exit_codes": [3]}  # a rig fault is flagged, not red
    # The runner archives symlinks as links: the newest run is published as real files.
    assert job["artifacts"]["reports"]["junit"] == "pos-hil-latest/junit.xml"
    assert any("cp -rL reports/latest pos-hil-latest" in line for line in job["after_script"])
    assert job["artifacts"]["when"] == "always"
    assert any("hil run" in line for line in job["script"])
    assert _hil_run_options(text) <= _run_options()


def _balanced(text: str) -> None:
    """Brackets and quotes of a Groovy file balance (comments and strings skipped)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    quote: str | None = None
    line = 1
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\n":
            line += 1
            assert quote is None or quote == '"""', f"line {line - 1}: unclosed {quote}"
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif text.startswith("//", i):
            i = text.index("\n", i)
            continue
        elif char in "'\"":
            quote = char
        elif char in "([{":
            stack.append((char, line))
        elif char in pairs:
            assert stack and stack[-1][0] == pairs[char], f"line {line}: unmatched {char}"
            stack.pop()
        i += 1
    assert not stack, f"unclosed {stack[-1][0]} from line {stack[-1][1]}"
    assert quote is None


def test_jenkinsfile() -> None:
    text = (CI / "Jenkinsfile").read_text()
    _balanced(text)
    assert re.search(r"^pipeline \{", text, re.M)
    assert "returnStatus: true" in text  # the exit code is read, not thrown away
    assert re.search(r"code == 1\).*?FAILURE", text, re.S)
    assert re.search(r"code == 3\).*?unstable\(", text, re.S)
    assert "junit testResults: 'reports/junit.xml'" in text
    assert "reports/html/index.html" in text
    assert _hil_run_options(text) <= _run_options()


def test_the_bracket_check_can_fail() -> None:
    for broken in ("pipeline { stage('x') {", "sh 'unclosed\n", "a ) b"):
        try:
            _balanced(broken)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {broken!r}")


def test_hil_run_help_lists_the_exit_codes_and_the_pytest_pass_through() -> None:
    help_text = CliRunner().invoke(app, ["run", "--help"], terminal_width=200).output
    for code, words in ((1, "terminal failed"), (3, "rig fault"), (130, "interrupted")):
        assert re.search(rf"^\W*{code}\s+.*{words}", help_text, re.M), (code, help_text)
    assert "go to pytest" in help_text and "-k reversal" in help_text
