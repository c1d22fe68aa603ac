"""The Allure 2 single-file HTML report: made offline, one file, and it loads nothing from outside.

The generation tests need the Allure 2 command line and Java. When they are missing the
module tries ``scripts/install-report-tools.sh`` once, and skips only if that fails too.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.errors import HilError
from hil.htmlreport import (
    ALLURE_BIN_ENV,
    INSTALL_HINT,
    ReportError,
    check_report_tools,
    generate_html,
)
from tests.urlscan import embedded_report_data, find_external_urls, is_external_url

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "scripts" / "install-report-tools.sh"
SCENARIO = "Card payment of 12.34 EUR is approved"
PLAYWRIGHT_TRACE = "application/vnd.allure.playwright-trace"

# Every URL a static scan finds in Allure 2.46.1's single-file page, and why our reports
# never load it. Anything else found fails the test until someone looks at it.
KNOWN_INERT = {
    # The Playwright trace viewer: an <iframe src> created only to preview an attachment
    # of type application/vnd.allure.playwright-trace (checked absent below) ...
    "https://trace.playwright.dev/": "Playwright trace viewer iframe",
    # ... and the target origin of the postMessage that feeds that iframe.
    "https://trace.playwright.dev": "postMessage target origin of that iframe",
    # The link sanitizer prefixes "www.example" text from the report data to make an
    # <a href> (followed only on click; and our report data names no host, checked below).
    "https://": "prefix of `https://${host}` in the www-text linkifier",
}

FEATURE = f"""\
Feature: Tiny payment
  Scenario: {SCENARIO}
    Given a terminal
    When I pay 12.34 EUR
    Then the payment is approved
"""

STEPS = """\
import allure
from pytest_bdd import given, parsers, scenarios, then, when

scenarios("pay.feature")


@given("a terminal")
def _terminal():
    pass


@when(parsers.parse("I pay {amount} EUR"))
def _pay(amount):
    pass


@then("the payment is approved")
def _approved():
    allure.attach("APPROVED 00", name="terminal log", attachment_type=allure.attachment_type.TEXT)
"""


# --------------------------------------------------------------------------------------
# find_external_urls on small pages
# --------------------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


LOADS = [
    ('<script src="https://cdn.example.com/a.js"></script>', ["https://cdn.example.com/a.js"]),
    ('<link rel="stylesheet" href="//fonts.example.com/css">', ["//fonts.example.com/css"]),
    (
        '<link rel="preload" as="font" href="https://f.example/x.woff2">',
        ["https://f.example/x.woff2"],
    ),
    ('<img srcset="a.png 1x, https://img.example/b.png 2x">', ["https://img.example/b.png"]),
    ('<img src="HTTPS://IMG.example/c.png">', ["HTTPS://IMG.example/c.png"]),
    ('<img src="https:img.example/no-slashes.png">', ["https:img.example/no-slashes.png"]),
    ('<iframe src="https://trace.example/"></iframe>', ["https://trace.example/"]),
    ('<video poster="https://v.example/p.jpg"></video>', ["https://v.example/p.jpg"]),
    ('<object data="https://o.example/x.svg"></object>', ["https://o.example/x.svg"]),
    ('<base href="https://base.example/">', ["https://base.example/"]),
    ('<meta http-equiv="refresh" content="0; url=https://r.example/">', ["https://r.example/"]),
    ('<div style="background:url(https://s.example/a.png)"></div>', ["https://s.example/a.png"]),
    (
        "<style>body{background:url('https://s.example/bg.png')}</style>",
        ["https://s.example/bg.png"],
    ),
    ("<style>@import 'https://s.example/a.css';</style>", ["https://s.example/a.css"]),
    ("<body onload=\"fetch('//p.example/ping')\"></body>", ["//p.example/ping"]),
    ('<script>fetch("https://api.example/v1")</script>', ["https://api.example/v1"]),
    ("<script>x.open('POST', 'https://t.example/c')</script>", ["https://t.example/c"]),
    ('<script>navigator.sendBeacon("https://b.example/c", d)</script>', ["https://b.example/c"]),
    ('<script>new WebSocket("wss://ws.example/s")</script>', ["wss://ws.example/s"]),
    ('<script>import("https://esm.example/m.js")</script>', ["https://esm.example/m.js"]),
    ('<script>s.src = "https://x.example/s.js"</script>', ["https://x.example/s.js"]),
    ('<script>var u = "https:\\/\\/esc.example\\/x"</script>', ["https://esc.example/x"]),
    ("<script>var u = `https://${host}/p`</script>", ["https://"]),
    (
        "<script>el.innerHTML = '<img src=\"https://x.example/i.png\">'</script>",
        ["https://x.example/i.png"],
    ),
    (
        '<script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>',
        ["https://www.googletagmanager.com/gtag/js?id=G-X"],
    ),
    (
        "<img src=\"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E"
        "%3Cimage href='https://x.example/p.png'/%3E%3C/svg%3E\">",
        ["https://x.example/p.png"],
    ),
    (
        f'<script src="data:text/javascript;base64,{_b64("fetch(`https://x.example/b`)")}"></script>',
        ["https://x.example/b"],
    ),
    (
        f"<script>d('data/attachments/a.html','{_b64('<img src=https://att.example/i>')}')</script>",
        ["https://att.example/i"],
    ),
    (
        "<script>d('data/test-cases/1.json','"
        + _b64(json.dumps({"descriptionHtml": "<img src='https://d.example/d.png'>"}))
        + "')</script>",
        ["https://d.example/d.png"],
    ),
]

INERT = [
    '<link rel="canonical" href="https://example.com/">',
    '<a href="https://example.com/docs">docs</a>',
    "<p>Visit https://example.com today</p>",
    '<!-- <script src="https://x.example/old.js"></script> -->',
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    '<rect fill="url(#g)"/><a xlink:href="https://example.com/">x</a></svg>',
    "<style>/* https://comment.example/ */ a{color:red}</style>",
    "<script>// see https://docs.example.com\n/* license: https://l.example */ var a = 1;</script>",
    '<script>console.warn("https://github.com/x/y/wiki/security")</script>',
    '<script>new URL(path, "https://base.local")</script>',
    '<script>var msg = "Read https://docs.example.com for help";</script>',
    "<script>el.innerHTML = '<a href=\"https://x.example/\">x</a>'</script>",
    '<script>el.setAttribute("xmlns:xlink", "http://www.w3.org/1999/xlink")</script>',
    '<script>var r = /https?:\\/\\/x.example/; var s = "https:";</script>',
    '<link rel="icon" href="data:image/x-icon;base64,AAAB//8AAA==">',
    "<script>d('data/test-cases/2.json','"
    + _b64(json.dumps({"name": "see https://x.example", "links": [{"url": "https://j.example/1"}]}))
    + "')</script>",
]


@pytest.mark.parametrize(("html", "expected"), LOADS)
def test_find_external_urls_reports_what_would_load(html: str, expected: list[str]) -> None:
    assert find_external_urls(html) == expected


@pytest.mark.parametrize("html", INERT)
def test_find_external_urls_ignores_inert_urls(html: str) -> None:
    assert find_external_urls(html) == []


def test_find_external_urls_keeps_first_appearance_order_without_duplicates() -> None:
    html = '<img src="https://b.example/1"><img src="https://a.example/2"><img src="https://b.example/1">'
    assert find_external_urls(html) == ["https://b.example/1", "https://a.example/2"]


@pytest.mark.parametrize(
    ("url", "external"),
    [
        ("https://x.example", True),
        ("HTTP://X.EXAMPLE", True),
        ("https:x.example", True),
        ("//x.example/a", True),
        ("\\\\x.example/a", True),
        (" \thttps://x.example", True),
        ("wss://x.example", True),
        ("/local/a.js", False),
        ("a.js", False),
        ("file:///tmp/a.js", False),
        ("data:text/plain,hi", False),
        ("blob:null/123", False),
    ],
)
def test_is_external_url(url: str, external: bool) -> None:
    assert is_external_url(url) is external


def test_embedded_report_data_decodes_the_d_calls() -> None:
    html = f"<script>d('data/a.json','{_b64('{}')}'), d('export/b.txt','{_b64('hi')}')</script>"
    assert embedded_report_data(html) == {"data/a.json": b"{}", "export/b.txt": b"hi"}


# --------------------------------------------------------------------------------------
# generate_html without the real tools: errors and the environment it forces
# --------------------------------------------------------------------------------------


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no allure and no Java anywhere; returns an empty tools dir."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv(ALLURE_BIN_ENV, raising=False)
    tools = tmp_path / "tools"
    tools.mkdir()
    return tools


@pytest.fixture
def fake_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fake Java and a fake allure that writes its environment into index.html."""
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    (java_home / "bin" / "java").write_text("#!/bin/sh\nexit 0\n")
    (java_home / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    monkeypatch.setenv("ALLURE_NO_ANALYTICS", "")
    allure = tmp_path / "allure"
    allure.write_text(
        "#!/bin/sh\n"
        'if [ -n "$FAIL" ]; then printf "%b\\n" "$FAIL" >&2; exit 1; fi\n'
        'out=""\n'
        'while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out="$2"; shift; done\n'
        'mkdir -p "$out"\n'
        'echo "$ALLURE_NO_ANALYTICS $ALLURE_JIRA_ENABLED $ALLURE_XRAY_ENABLED" \\\n'
        '    > "$out/index.html"\n'
    )
    allure.chmod(0o755)
    monkeypatch.setenv(ALLURE_BIN_ENV, str(allure))
    return allure


def test_missing_tools_is_one_line_naming_the_install_command(
    no_tools: Path, tmp_path: Path
) -> None:
    (tmp_path / "results").mkdir()
    with pytest.raises(ReportError) as err:
        generate_html(tmp_path / "results", tmp_path / "out", tools_dir=no_tools)
    message = str(err.value)
    assert isinstance(err.value, HilError)
    assert "\n" not in message
    assert "Allure 2 command line" in message
    assert "Java" in message
    assert INSTALL_HINT in message
    assert not (tmp_path / "out").exists()


def test_bad_allure_bin_env_is_reported(no_tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLURE_BIN_ENV, "/nonexistent/allure")
    with pytest.raises(ReportError, match=ALLURE_BIN_ENV):
        check_report_tools()


def test_generate_forces_the_offline_environment(fake_tools: Path, tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    index = generate_html(tmp_path / "results", tmp_path / "out")
    assert index == (tmp_path / "out" / "index.html").resolve()
    assert index.read_text().split() == ["true", "false", "false"]


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("some detail\\nError: results are broken", r"exit 1\): Error: results are broken$"),
        (
            'Exception in thread "main" io.qameta.allure.ReportGenerationException: boom\\n'
            "\\tat io.qameta.allure.X.y(X.java:1)\\n"
            "Caused by: java.nio.file.NoSuchFileException: /proc/out\\n"
            "\\tat java.base/sun.nio.fs.Z(Z.java:92)\\n\\t... 7 more",
            r"exit 1\): Caused by: java.nio.file.NoSuchFileException: /proc/out$",
        ),
        (
            "ERROR: JAVA_HOME is not set and no 'java' command could be found in your PATH.",
            rf"missing a Java runtime .*{re.escape(INSTALL_HINT)}",
        ),
    ],
)
def test_allure_failure_is_one_line_saying_why(
    fake_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, expected: str
) -> None:
    (tmp_path / "results").mkdir()
    monkeypatch.setenv("FAIL", stderr)
    with pytest.raises(ReportError, match=expected) as err:
        generate_html(tmp_path / "results", tmp_path / "out")
    assert "\n" not in str(err.value)


def test_refuses_missing_results_and_dangerous_out_dirs(fake_tools: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="results directory not found"):
        generate_html(tmp_path / "nope", tmp_path / "out")
    results = tmp_path / "work" / "results"
    results.mkdir(parents=True)
    with pytest.raises(ReportError, match="would contain the results"):
        generate_html(results, tmp_path / "work")
    with pytest.raises(ReportError, match="would contain the results"):
        generate_html(results, results)
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(ReportError, match="holds no report"):
        generate_html(results, precious)
    assert (precious / "thesis.txt").read_text() == "do not delete"


# --------------------------------------------------------------------------------------
# The real thing: pytest-bdd -> allure-results -> Allure 2 single-file report
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def allure_tools() -> Path:
    if os.environ.get(ALLURE_BIN_ENV):
        return check_report_tools()  # chosen explicitly: a bad choice is an error, not a skip
    try:
        return check_report_tools()
    except ReportError as missing:
        first = str(missing)
    if not INSTALL_SCRIPT.is_file():
        pytest.skip(f"{first} (and {INSTALL_SCRIPT} is absent)")
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        pytest.skip(f"Allure 2 report tools absent and `bash {INSTALL_SCRIPT}` failed: {lines[-1]}")
    try:
        return check_report_tools()
    except ReportError as still:
        pytest.skip(f"after `bash {INSTALL_SCRIPT}`: {still}")


@pytest.fixture(scope="module")
def allure_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("bdd")
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "pay.feature").write_text(FEATURE)
    (project / "test_pay.py").write_text(STEPS)
    results = project / "allure-results"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "pytest_bdd.plugin",
            "-p",
            "allure_pytest_bdd.plugin",
            "-p",
            "no:cacheprovider",
            f"--alluredir={results}",
            str(project),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(results.glob("*-result.json")), proc.stdout
    return results


@pytest.fixture(scope="module")
def report(
    allure_tools: Path, allure_results: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("html") / "report"
    yield generate_html(allure_results, out)


def test_report_is_one_self_contained_file(report: Path) -> None:
    assert report.name == "index.html"
    assert report.is_file()
    assert [p.name for p in report.parent.iterdir()] == ["index.html"]
    assert report.stat().st_size > 100_000  # scripts, styles and fonts inlined


def test_report_holds_the_scenario_and_its_attachment(report: Path) -> None:
    data = embedded_report_data(report.read_text(encoding="utf-8"))
    cases = [v.decode() for k, v in data.items() if k.startswith("data/test-cases/")]
    assert any(SCENARIO in case for case in cases), sorted(data)
    assert b"APPROVED 00" in [v for k, v in data.items() if k.startswith("data/attachments/")]


def test_report_loads_nothing_from_outside(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert "googletagmanager" not in html
    assert "gtag(" not in html
    unexpected = [url for url in find_external_urls(html) if url not in KNOWN_INERT]
    assert unexpected == []
    # What makes the known entries inert for this report: no Playwright trace attachment,
    # and no host named anywhere in the report data for the linkifier to turn into a link.
    data = embedded_report_data(html)
    for name, payload in data.items():
        text = payload.decode("utf-8", errors="replace")
        assert PLAYWRIGHT_TRACE not in text, name
        assert "www." not in text, name
        assert "://" not in text, name
