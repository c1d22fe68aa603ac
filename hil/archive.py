"""The run archive: one folder per run under ``reports/runs/<run id>/``, and what
carries from one run to the next (Allure history, the CI build that ran it).

Layout (docs/reports.md)::

    reports/
      runs/<run id>/        summary.json, junit.xml, allure-results/, html/index.html
      latest -> runs/<id>   the newest run that started (a symlink)
      summary.json -> latest/summary.json      the earlier top-level paths, kept as
      junit.xml -> latest/junit.xml            symlinks through ``latest`` so scripts
      allure-results -> latest/allure-results  and CI jobs that read them still do
      html -> latest/html

``latest`` moves only when a run *starts* (a usage error leaves it where it was). Where
the file system cannot hold a symlink, ``latest`` is a small text file naming the run
folder (``runs/<id>``) and the top-level shortcuts are not made.

Allure's Trend widgets need the history of earlier runs. It is carried from the newest
earlier run of the same **build line**: the same rig and the same firmware
``major.minor`` (``1.4.2`` and ``1.4.7`` are one line; ``1.5.0`` starts another; a rig
with no stated firmware version is its own line, ``unversioned``). A single-file report
holds its history as embedded data files, read back from its ``index.html``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.strictjson import StrictJsonError, loads_object

RUNS = "runs"
LATEST = "latest"
#: The paths of the flat layout, kept as links through ``latest``.
SHORTCUTS = ("summary.json", "junit.xml", "allure-results", "html")
HISTORY = "history"
EXECUTOR = "executor.json"

_EMBEDDED_HISTORY = re.compile(r"d\('history/([A-Za-z0-9_.-]+\.json)','([A-Za-z0-9+/=]*)'\)")
_VERSION_LINE = re.compile(r"^\D*(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class RunFolder:
    """Where one run writes its reports."""

    root: Path  # reports/
    run_id: str

    @property
    def folder(self) -> Path:
        return self.root / RUNS / self.run_id

    @property
    def summary(self) -> Path:
        return self.folder / "summary.json"

    @property
    def junit(self) -> Path:
        return self.folder / "junit.xml"

    @property
    def results(self) -> Path:
        return self.folder / "allure-results"

    @property
    def html(self) -> Path:
        return self.folder / "html"


def point_latest(root: Path, run_id: str) -> None:
    """Make ``root/latest`` name this run, and the flat layout's paths link through it.

    Each link is replaced in one step (a new link renamed over the old), so a reader
    never finds none. A regular file or folder left by the flat layout of an earlier
    pos-hil is an earlier run's report: it is replaced, as a new run always did."""
    target = Path(RUNS) / run_id
    if not _replace_with_symlink(root / LATEST, target):
        _write_text_atomically(root / LATEST, f"{target.as_posix()}\n")
        return
    for name in SHORTCUTS:
        link = root / name
        wanted = Path(LATEST) / name
        if link.is_symlink() and Path(os.readlink(link)) == wanted:
            continue
        if not link.is_symlink() and link.is_dir():
            shutil.rmtree(link, ignore_errors=True)
        _replace_with_symlink(link, wanted)


def discard_unstarted(run: RunFolder) -> None:
    """Remove what a run that never started left: folders only (Allure's writer makes
    its results folder as pytest configures). A folder holding any file is kept."""
    for folder in (run.folder, run.folder.parent):
        if not folder.is_dir() or any(p.is_file() or p.is_symlink() for p in folder.rglob("*")):
            return
        shutil.rmtree(folder, ignore_errors=True)


def _replace_with_symlink(link: Path, target: Path) -> bool:
    partial = link.with_name(f".{link.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        os.symlink(target, partial)
    except (OSError, NotImplementedError):
        return False
    try:
        os.replace(partial, link)
    except OSError:
        partial.unlink(missing_ok=True)
        return False
    return True


def _write_text_atomically(path: Path, text: str) -> None:
    from hil.reporting import write_atomically

    if path.is_symlink() or path.is_file():
        path.unlink()
    write_atomically(path, text.encode("utf-8"))


def latest_run_folder(root: Path) -> Path | None:
    """The folder ``root/latest`` names (a symlink, or the file written where symlinks
    cannot be), or None."""
    latest = root / LATEST
    if latest.is_symlink():
        return (root / os.readlink(latest)).resolve() if latest.exists() else None
    if latest.is_file():
        named = latest.read_text(encoding="utf-8").strip()
        return (root / named).resolve() if named and (root / named).is_dir() else None
    return None


def resolve_run(name: Path, root: Path = Path("reports")) -> Path:
    """A run named the way a person names it: a folder or summary.json that exists,
    ``latest``, or a run ID under ``root/runs/``. Anything else is returned as it is
    (the caller's error names it)."""
    if name.exists():
        return name
    text = str(name)
    if text == LATEST:
        found = latest_run_folder(root)
        if found is None:
            raise ConfigError(f"latest: no run in {root} yet (reports/{LATEST} is missing)")
        return found
    if "/" not in text and os.sep not in text:
        candidate = root / RUNS / text
        if candidate.is_dir():
            return candidate
    return name


# --- build line and history --------------------------------------------------------


def build_line(environment: Mapping[str, str]) -> str:
    """``<rig> <major.minor>`` of a run's environment (see the module docstring)."""
    version = str(environment.get("firmware_version", "") or "")
    matched = _VERSION_LINE.match(version)
    line = "unversioned" if matched is None else f"{matched.group(1)}.{matched.group(2) or '0'}"
    return f"{environment.get('rig', '?')} {line}"


@dataclass(frozen=True)
class ArchivedRun:
    folder: Path
    run_id: str
    started: str
    environment: dict[str, str]

    @property
    def report(self) -> Path:
        return self.folder / "html" / "index.html"


def archived_runs(root: Path) -> list[ArchivedRun]:
    """Every run under ``root/runs`` that left a readable summary, oldest first."""
    runs: list[ArchivedRun] = []
    base = root / RUNS
    if not base.is_dir():
        return runs
    for folder in base.iterdir():
        run = _archived(folder)
        if run is not None:
            runs.append(run)
    runs.sort(key=lambda r: (r.started, r.run_id))
    return runs


def _archived(folder: Path) -> ArchivedRun | None:
    summary = folder / "summary.json"
    try:
        data = loads_object(summary.read_bytes())
    except (StrictJsonError, OSError):
        return None
    env = data.get("environment")
    environment = {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
    return ArchivedRun(
        folder, str(data.get("run_id", folder.name)), str(data.get("started", "")), environment
    )


def previous_run(root: Path, run_id: str, environment: Mapping[str, str]) -> ArchivedRun | None:
    """The newest earlier run of the same build line that has an HTML report: runs are
    read newest report first and the first of the line wins, so a long archive costs
    no more than its last few runs."""
    line = build_line(environment)
    base = root / RUNS
    if not base.is_dir():
        return None
    reports = [f / "html" / "index.html" for f in base.iterdir() if f.name != run_id]
    dated = sorted(
        ((r.stat().st_mtime, r) for r in reports if r.is_file()), key=lambda d: d[0], reverse=True
    )
    for _, report in dated:
        run = _archived(report.parent.parent)
        if run is not None and run.run_id != run_id and build_line(run.environment) == line:
            return run
    return None


def report_history(index_html: Path) -> dict[str, bytes]:
    """The history files a single-file Allure report embeds (``history/*.json``)."""
    text = index_html.read_text(encoding="utf-8", errors="replace")
    found: dict[str, bytes] = {}
    for name, data in _EMBEDDED_HISTORY.findall(text):
        with contextlib.suppress(ValueError):
            found[name] = base64.b64decode(data, validate=True)
    return found


def carry_history(results: Path, previous: ArchivedRun | None) -> int:
    """Put the previous run's history into ``results/history``; the number of files."""
    if previous is None:
        return 0
    from hil.reporting import write_atomically

    history = report_history(previous.report)
    for name, data in history.items():
        write_atomically(results / HISTORY / name, data)
    return len(history)


# --- executor -------------------------------------------------------------------------


def ci_executor(env: Mapping[str, str]) -> dict[str, object] | None:
    """Allure's executor for the CI job that runs this, from its environment: GitHub
    Actions, GitLab CI or Jenkins; None outside CI."""
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        run = env.get("GITHUB_RUN_ID", "")
        url = f"{server}/{repo}/actions/runs/{run}" if repo and run else ""
        return _executor(
            "GitHub Actions",
            "github",
            env.get("GITHUB_WORKFLOW", "") + f" #{env.get('GITHUB_RUN_NUMBER', '?')}",
            url,
            env.get("GITHUB_RUN_NUMBER"),
        )
    if env.get("GITLAB_CI") == "true":
        return _executor(
            "GitLab CI",
            "gitlab",
            f"{env.get('CI_PROJECT_PATH', '')} pipeline #{env.get('CI_PIPELINE_IID', '?')}",
            env.get("CI_PIPELINE_URL") or env.get("CI_JOB_URL", ""),
            env.get("CI_PIPELINE_IID"),
        )
    if env.get("JENKINS_URL") and env.get("BUILD_NUMBER"):
        return _executor(
            "Jenkins",
            "jenkins",
            env.get("BUILD_TAG") or f"{env.get('JOB_NAME', '')} #{env.get('BUILD_NUMBER')}",
            env.get("BUILD_URL", ""),
            env.get("BUILD_NUMBER"),
        )
    return None


def _executor(
    name: str, kind: str, build_name: str, build_url: str, order: str | None
) -> dict[str, object]:
    executor: dict[str, object] = {"name": name, "type": kind, "buildName": build_name.strip()}
    if build_url:
        executor["buildUrl"] = build_url
    if order and order.isdigit():
        executor["buildOrder"] = int(order)
    return executor


def write_executor(
    results: Path,
    run_id: str,
    previous: ArchivedRun | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """``results/executor.json``: the CI build when there is one, else this run on this
    station. Its build order numbers the points of the Trend widgets: the CI's own
    number, else one more than the previous run of the build line."""
    from hil.reporting import write_atomically

    environ = os.environ if env is None else env
    executor = ci_executor(environ)
    if executor is None:
        executor = {"name": "hil run", "type": "hil", "buildName": f"run {run_id}"}
    executor.setdefault("buildOrder", _previous_order(previous) + 1)
    executor["reportName"] = f"pos-hil run {run_id}"
    write_atomically(results / EXECUTOR, json.dumps(executor, indent=2).encode("utf-8"))
    return executor


def _previous_order(previous: ArchivedRun | None) -> int:
    if previous is None:
        return 0
    path = previous.folder / "allure-results" / EXECUTOR
    try:
        order = loads_object(path.read_bytes()).get("buildOrder")
    except (OSError, StrictJsonError):
        return 0
    return order if isinstance(order, int) and not isinstance(order, bool) else 0


# --- merging runs -------------------------------------------------------------------------

#: Files of a results folder that say something about the run as a whole: merged, not copied.
_RUN_FILES = ("environment.properties", "executor.json", "categories.json")


@dataclass(frozen=True)
class MergedRun:
    folder: Path
    run_id: str
    rig: str


def merge_results(runs: list[Path], into: Path, root: Path = Path("reports")) -> list[MergedRun]:
    """Copy the Allure results of ``runs`` (folders, run IDs or ``latest``) into ``into``,
    one results folder for one report.

    Runs on one rig (a rerun) keep their history IDs, so Allure shows a scenario once
    with the earlier runs as its retries. Runs on several rigs get the rig as a test
    parameter that is part of the history ID, so each rig's result stands on its own.
    The environment lists each value once, the runs' differing values joined with
    `` | ``, and ``merged_runs`` names the runs.
    """
    if not runs:
        raise ConfigError("--merge: name at least one run (folder, run ID or latest)")
    merged: list[MergedRun] = []
    for name in runs:
        folder = resolve_run(name, root)
        results = folder / "allure-results"
        if not results.is_dir():
            raise ConfigError(f"{name}: no allure-results in {folder} (not a run folder)")
        environment = _properties(results / "environment.properties")
        merged.append(
            MergedRun(folder, environment.get("run_id", folder.name), environment.get("rig", ""))
        )
    several_rigs = len({run.rig for run in merged}) > 1
    from hil.reporting import write_atomically

    into.mkdir(parents=True, exist_ok=True)
    environments: list[dict[str, str]] = []
    for run in merged:
        results = run.folder / "allure-results"
        environments.append(_properties(results / "environment.properties"))
        for path in results.iterdir():
            if not path.is_file() or path.name in _RUN_FILES:
                continue
            if several_rigs and path.name.endswith("-result.json"):
                write_atomically(into / path.name, _with_rig(path, run.rig))
            else:
                shutil.copyfile(path, into / path.name)
    categories = merged[0].folder / "allure-results" / "categories.json"
    if categories.is_file():
        shutil.copyfile(categories, into / "categories.json")
    lines = [f"{key}={value}" for key, value in sorted(merged_environment(environments).items())]
    lines.append(f"merged_runs={', '.join(run.run_id for run in merged)}")
    write_atomically(into / "environment.properties", ("\n".join(lines) + "\n").encode("utf-8"))
    return merged


def _properties(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def merged_environment(environments: Iterable[Mapping[str, object]]) -> dict[str, str]:
    """Several runs' (or rigs') environments as one: each value once, the differing
    values of a key joined with `` | ``, keys in the order first seen."""
    merged: dict[str, list[str]] = {}
    for environment in environments:
        for key, value in environment.items():
            values = merged.setdefault(key, [])
            if str(value) not in values:
                values.append(str(value))
    return {key: " | ".join(values) for key, values in merged.items()}


def rig_as_parameter(result: dict[str, Any], rig: str) -> None:
    """An Allure result given its rig as a parameter that is part of its history ID,
    so it stands apart from another rig's result of the same test."""
    parameters = [p for p in result.get("parameters", []) if p.get("name") != "rig"]
    result["parameters"] = [*parameters, {"name": "rig", "value": rig}]
    if result.get("historyId"):
        result["historyId"] = f"{result['historyId']}@{rig}"


def _with_rig(path: Path, rig: str) -> bytes:
    data = json.loads(path.read_text(encoding="utf-8"))
    rig_as_parameter(data, rig)
    return json.dumps(data, ensure_ascii=False).encode("utf-8")
