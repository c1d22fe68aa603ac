"""Turn an allure-results directory into one self-contained HTML file with Allure 2.

``generate_html`` runs ``allure generate --single-file --clean``: the result is a
single ``index.html`` that opens from ``file://`` without a server (scripts, styles,
fonts, icons and the report data are inlined as ``data:`` URLs and base64 strings).

A lab report must not phone home. Allure 2 does so in two places unless
``ALLURE_NO_ANALYTICS`` is set: the generator itself posts a Google Analytics event
(``report_generated``) while it runs, and it writes a Google Tag Manager ``<script>``
into ``index.html`` that calls out whenever the page is opened. Its Jira and Xray
plugins export results to a server when enabled from the environment. Every run here
therefore forces the variables in ``ALLURE_OFFLINE_ENV``. What is left in the page
(2.46.1): everything inlined, no fonts or scripts from elsewhere; its bundle still names
``https://trace.playwright.dev``, opened in an iframe only to preview an attachment of
type ``application/vnd.allure.playwright-trace``, which pos-hil never writes.
pos-hil's own tests check that with a static scan of a generated page for URLs it
would load from another host (tests/urlscan.py).

The report tools (the Allure 2 command line from npm, and Java) are found without
assuming a git checkout, first match wins:

1. ``$HIL_ALLURE_BIN``: the allure executable itself (an error if it is not one)
2. ``$HIL_TOOLS_DIR``: a tools folder
3. ``./.tools`` in the current directory (a checkout's ``scripts/setup.sh`` puts them there)
4. the per-user tools folder ``${XDG_DATA_HOME:-~/.local/share}/pos-hil/tools``
5. ``allure`` on PATH, if it is Allure 2 (Allure 3 has another command line and
   embeds analytics)

A tools folder holds ``node_modules/allure-commandline``. ``install_report_tools``
fills one with the installer that ships in the package (hil/tools/), so an installed
pos-hil installs its own tools: ``hil report --install-tools`` into the per-user folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import NoReturn

from hil.errors import HilError

INSTALL_HINT = "hil report --install-tools"
"""The command that installs the report tools (into the per-user tools folder); it
works from an installed pos-hil as well as from a checkout."""

ALLURE_BIN_ENV = "HIL_ALLURE_BIN"
"""Environment variable naming the allure executable to use, overriding the default."""

TOOLS_DIR_ENV = "HIL_TOOLS_DIR"
"""Environment variable naming a tools folder, looked in before the default ones; the
installer installs into it when set."""

ALLURE_OFFLINE_ENV: dict[str, str] = {
    # GaPlugin (generate-time event) tests for presence; the HTML template parses a boolean.
    "ALLURE_NO_ANALYTICS": "true",
    "ALLURE_JIRA_ENABLED": "false",
    "ALLURE_XRAY_ENABLED": "false",
}
"""Environment forced on every allure run so neither the generator nor the page calls out."""

GENERATE_TIMEOUT_S = 600.0
INSTALL_TIMEOUT_S = 900.0  # a first install downloads allure-commandline from npm

#: The installer, shipped as package data (pos-hil is installed as files, never zipped).
INSTALLER = Path(str(resources.files("hil"))) / "tools" / "install-report-tools.sh"
_INSTALLER_PREFIX = "install-report-tools: "

_ALLURE_IN_TOOLS = (
    # The distribution's own launcher needs Java only; the npm wrapper also needs node.
    Path("node_modules/allure-commandline/dist/bin/allure"),
    Path("node_modules/.bin/allure"),
)
_MAX_ERROR_DETAIL = 300
_STACK_FRAME_RE = re.compile(r"^(?:at |\.\.\. \d+ more)")


class ReportError(HilError):
    """The HTML report could not be made: a tool is missing, or allure failed."""


class ReportUsageError(ReportError):
    """The folders given do not allow a report (no results, output over the results)."""


class ReportToolsMissing(ReportError):
    """The Allure 2 command line or Java is missing; the message names the installer."""


# --------------------------------------------------------------------------------------
# Finding the tools
# --------------------------------------------------------------------------------------


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _allure_in(tools_dir: Path) -> Path | None:
    for rel in _ALLURE_IN_TOOLS:
        candidate = tools_dir / rel
        if _executable(candidate):
            return candidate
    return None


def user_tools_dir() -> Path:
    """The per-user tools folder: ``${XDG_DATA_HOME:-~/.local/share}/pos-hil/tools``."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    # The XDG base directory spec: an unset, empty or relative value means the default.
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "pos-hil" / "tools"


def _default_tools_dirs() -> list[Path]:
    """Tools folders in lookup order: ``$HIL_TOOLS_DIR``, ``./.tools``, the per-user one."""
    dirs: list[Path] = []
    from_env = os.environ.get(TOOLS_DIR_ENV)
    if from_env:
        dirs.append(Path(from_env))
    dirs += [Path.cwd().resolve() / ".tools", user_tools_dir()]
    return list(dict.fromkeys(dirs))


def find_java() -> Path | None:
    """The ``java`` the allure launcher will run (``$JAVA_HOME/bin/java`` or PATH), or None."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        return candidate if _executable(candidate) else None
    found = shutil.which("java")
    return Path(found) if found else None


def _allure_major_version(allure: Path) -> str:
    try:
        proc = subprocess.run(
            [str(allure), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **ALLURE_OFFLINE_ENV},
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    version = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    return version[0].split(".", 1)[0] if version else ""


def _locate_allure(tools_dir: Path | None) -> tuple[Path | None, list[str]]:
    """The allure executable, or None and the places looked in."""
    looked: list[str] = []
    if tools_dir is not None:
        found = _allure_in(tools_dir)
        if found is not None:
            return found, looked
        looked.append(str(tools_dir / _ALLURE_IN_TOOLS[1]))
    else:
        env_bin = os.environ.get(ALLURE_BIN_ENV)
        if env_bin:
            if _executable(Path(env_bin)):
                return Path(env_bin), looked
            raise ReportToolsMissing(
                f"${ALLURE_BIN_ENV}={env_bin} is not an executable file: "
                f"unset it or run `{INSTALL_HINT}`"
            )
        for directory in _default_tools_dirs():
            found = _allure_in(directory)
            if found is not None:
                return found, looked
            looked.append(str(directory / _ALLURE_IN_TOOLS[1]))
    on_path = shutil.which("allure")
    if on_path is None:
        looked.append("PATH")
        return None, looked
    # Without Java the version cannot be asked; the missing Java is reported instead.
    if find_java() is None or _allure_major_version(Path(on_path)) == "2":
        return Path(on_path), looked
    looked.append(f"PATH ({on_path} is not Allure 2)")
    return None, looked


def find_allure(tools_dir: Path | None = None) -> Path:
    """Locate the Allure 2 command line.

    With ``tools_dir``: ``tools_dir/node_modules/...`` then PATH. Without: the lookup
    order in the module's docstring. An ``allure`` found on PATH must report version 2.
    Raises ``ReportError`` when there is none.
    """
    found, looked = _locate_allure(tools_dir)
    if found is None:
        raise ReportToolsMissing(
            f"Allure 2 command line not found (looked in {', '.join(looked)}): run `{INSTALL_HINT}`"
        )
    return found


def check_report_tools(tools_dir: Path | None = None) -> Path:
    """Return the allure executable if it and Java are there; else raise one ``ReportError``."""
    allure, _ = _locate_allure(tools_dir)
    java = find_java()
    if allure is None or java is None:
        _raise_missing(allure_missing=allure is None, java_missing=java is None)
    return allure


def _raise_missing(*, allure_missing: bool, java_missing: bool) -> NoReturn:
    missing = ["the Allure 2 command line"] if allure_missing else []
    if java_missing:
        where = "$JAVA_HOME/bin/java" if os.environ.get("JAVA_HOME") else "java on PATH"
        missing.append(f"a Java runtime ({where})")
    hint = (
        " (as root, to get Java; or apt-get install default-jre-headless)" if java_missing else ""
    )
    raise ReportToolsMissing(
        f"cannot make the HTML report: missing {' and '.join(missing)}; run `{INSTALL_HINT}`{hint}"
    )


# --------------------------------------------------------------------------------------
# Installing the tools
# --------------------------------------------------------------------------------------


def install_report_tools(tools_dir: Path) -> Path:
    """Install the Allure 2 command line into ``tools_dir`` (and Java, when none works
    and we are root) with the shipped installer; return the allure executable.

    Quick when the pinned version is there already. Raises ``ReportError`` with the
    installer's own one-line reason when it fails.
    """
    tools = Path(tools_dir).resolve()
    try:
        proc = subprocess.run(
            ["bash", str(INSTALLER)],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, TOOLS_DIR_ENV: str(tools)},
        )
    except subprocess.TimeoutExpired as exc:
        raise ReportError(
            f"installing the report tools into {tools} did not finish within {exc.timeout:.0f} s"
        ) from exc
    except OSError as exc:
        raise ReportError(f"cannot run {INSTALLER}: {exc.strerror}") from exc
    if proc.returncode != 0:
        raise ReportError(
            f"cannot install the report tools into {tools}: {_installer_reason(proc)}"
        )
    allure = _allure_in(tools)
    if allure is None:
        raise ReportError(f"the report tools installer left no allure in {tools}")
    return allure


def _installer_reason(proc: subprocess.CompletedProcess[str]) -> str:
    """The installer's own message (its last ``install-report-tools:`` line), with the
    last line of the tool output it points to when it says "see above"."""
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    said = [i for i, line in enumerate(lines) if line.startswith(_INSTALLER_PREFIX)]
    if not said:
        return lines[-1][:_MAX_ERROR_DETAIL] if lines else f"installer exit {proc.returncode}"
    reason = lines[said[-1]][len(_INSTALLER_PREFIX) :]
    above = [line for line in lines[: said[-1]] if not line.startswith(_INSTALLER_PREFIX)]
    if reason.endswith(" (see above)") and above:
        reason = f"{reason.removesuffix(' (see above)')}: {above[-1]}"
    return reason[:_MAX_ERROR_DETAIL]


# --------------------------------------------------------------------------------------
# Generating
# --------------------------------------------------------------------------------------


def _error_detail(*texts: str) -> str:
    """The line of allure's output that says what went wrong (not a stack frame)."""
    lines = [line.strip() for text in texts for line in text.splitlines() if line.strip()]
    causes = [line for line in lines if line.startswith("Caused by:")]
    said = causes or [line for line in lines if not _STACK_FRAME_RE.match(line)]
    return said[-1][:_MAX_ERROR_DETAIL] if said else "no output"


def check_report_folders(results_dir: Path, out_dir: Path) -> None:
    """Raise ``ReportUsageError`` (one line) unless ``results_dir`` is a results folder
    and ``out_dir`` may take a report: not the results, not around or inside them, not
    a file, and not a folder holding anything but an earlier report (it is replaced)."""
    results = Path(results_dir).resolve()
    out = Path(out_dir).resolve()
    if not results.is_dir():
        raise ReportUsageError(f"allure results directory not found: {results_dir}")
    if out == results or out in results.parents or results in out.parents:
        raise ReportUsageError(
            f"report directory {out_dir} would contain the results {results_dir} or sit "
            "inside them: the report needs a folder of its own"
        )
    if out.exists() and not out.is_dir():
        raise ReportUsageError(f"report directory {out_dir} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").exists():
        raise ReportUsageError(
            f"report directory {out_dir} exists and holds no report; refusing to replace it"
        )


def generate_html(results_dir: Path, out_dir: Path, *, tools_dir: Path | None = None) -> Path:
    """Render ``results_dir`` (allure-results) into ``out_dir``; return ``out_dir/index.html``.

    The report is a single self-contained file. It is made in a folder beside
    ``out_dir`` and replaces ``out_dir`` only once complete: an interrupted or failed
    generation leaves the earlier report (or none), never half of one. ``out_dir`` must
    not hold the results, nor anything but an earlier report. Raises ``ReportError``
    with one line naming what is missing or what allure said.
    """
    results = Path(results_dir).resolve()
    out = Path(out_dir).resolve()
    check_report_folders(results, out)
    allure = check_report_tools(tools_dir)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [str(allure), "generate", "--single-file", "--clean", "-o", str(partial), str(results)]
    try:
        _run_allure_generate(cmd, allure, partial)
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out / "index.html"


def _run_allure_generate(cmd: list[str], allure: Path, out: Path) -> None:
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=GENERATE_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **ALLURE_OFFLINE_ENV},
        )
    except subprocess.TimeoutExpired as exc:
        raise ReportError(f"allure generate did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise ReportToolsMissing(
            f"cannot run {allure}: {exc.strerror}; run `{INSTALL_HINT}`"
        ) from exc
    if proc.returncode != 0:
        if "JAVA_HOME" in proc.stderr:  # the launcher found no usable java after all
            _raise_missing(allure_missing=False, java_missing=True)
        detail = _error_detail(proc.stderr, proc.stdout)
        raise ReportError(f"allure generate failed (exit {proc.returncode}): {detail}")
    index = out / "index.html"
    if not index.is_file():
        raise ReportError(f"allure generate wrote no {index}: {_error_detail(proc.stdout)}")
