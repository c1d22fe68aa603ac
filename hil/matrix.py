"""The detection matrix: the suite against the healthy build and every seeded-defect build.

The measure of a certification suite is what it catches. ``hil matrix`` runs the suite
(``hil run --firmware IMAGE``) once per build listed in the builds file
(``hil/suite/fixtures/firmware/builds.toml``, documented for people in docs/defects.md),
each run with its own reports folder, several at once when the rig pool allows, and
judges the whole:

- the healthy build must fail nothing (a failure there is a false alarm of the suite);
- every defect build must fail at least one scenario of the area that names its defect
  (and, when the builds file says so, one carrying one of its requirements);
- a rig fault, a configuration error or a framework bug in any build's run decides
  the matrix's exit code as it would a ``hil run`` (3, 2, 70): such a run says nothing
  about the firmware, so it neither catches nor misses a defect.

This module is plain: ``load_builds`` and ``evaluate`` are pure (tests feed them
summaries), ``run_build`` runs one ``hil run`` in a process of its own, ``write_svg``
draws the heat map without any plotting library.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from hil.errors import ConfigError
from hil.firmware import image_named, image_sha256
from hil.summary import (
    EXIT_DUT_FAILED,
    EXIT_FRAMEWORK_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RIG_FAULT,
    EXIT_USAGE,
)

#: The builds file shipped beside the images.
BUILDS_FILE = Path(__file__).resolve().parent / "suite" / "fixtures" / "firmware" / "builds.toml"
MATRIX_FORMAT = "pos-hil-matrix/1"
#: The prefix of an area's marker (docs/tags.md).
AREA_MARKER = "area_"
#: Which exit code wins when builds disagree: hil run's own order (hil.summary).
_EXIT_PRECEDENCE = (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EXIT_FRAMEWORK_BUG,
    EXIT_RIG_FAULT,
    EXIT_DUT_FAILED,
    EXIT_OK,
)
_BUILD_KEYS = {
    "image",
    "healthy",
    "defect",
    "class",
    "area",
    "requirements",
    "wrong",
    "caught_by",
}


@dataclass(frozen=True)
class BuildSpec:
    """One build of the matrix, as the builds file declares it."""

    name: str  # the image's file name without .fw.json
    image: Path
    healthy: bool = False
    defect: str = ""
    defect_class: str = ""
    area: str = ""
    requirements: tuple[str, ...] = ()
    wrong: str = ""
    caught_by: str = ""


def build_name(image: Path) -> str:
    name = image.name
    for suffix in (".fw.json", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_builds(path: Path) -> list[BuildSpec]:
    """The builds file, checked: ConfigError naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such builds file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the builds file: {e}") from None
    entries = data.get("build")
    unknown = sorted(set(data) - {"build"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; expected [[build]] tables")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[build]] tables")
    builds: list[BuildSpec] = []
    for n, entry in enumerate(entries):
        where = f"{path}: build[{n}]"
        builds.append(_build_from(entry, where, path.parent))
    names = [b.name for b in builds]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{path}: build {twice[0]!r} listed twice")
    healthy = [b.name for b in builds if b.healthy]
    if len(healthy) != 1:
        raise ConfigError(f"{path}: exactly one build must say healthy = true ({len(healthy)} do)")
    return builds


def _build_from(entry: Any, where: str, folder: Path) -> BuildSpec:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(entry) - _BUILD_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; known: {', '.join(sorted(_BUILD_KEYS))}"
        )

    def text(key: str, required: bool) -> str:
        value = entry.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: must be a string")
        if required and not value.strip():
            raise ConfigError(f"{where}.{key}: required for a defect build")
        return value

    image = text("image", False)
    if not image:
        raise ConfigError(f"{where}.image: required")
    healthy = entry.get("healthy", False)
    if not isinstance(healthy, bool):
        raise ConfigError(f"{where}.healthy: must be true or false")
    requirements = entry.get("requirements", [])
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        raise ConfigError(f"{where}.requirements: must be a list of requirement IDs")
    defect_keys = ("defect", "class", "area", "wrong", "caught_by")
    if healthy and any(entry.get(k) for k in defect_keys):
        raise ConfigError(f"{where}: the healthy build names no defect")
    path = (folder / image).resolve()
    return BuildSpec(
        name=build_name(path),
        image=path,
        healthy=healthy,
        defect=text("defect", not healthy),
        defect_class=text("class", not healthy),
        area=text("area", not healthy),
        requirements=tuple(requirements),
        wrong=text("wrong", not healthy),
        caught_by=text("caught_by", not healthy),
    )


def select_builds(builds: Sequence[BuildSpec], wanted: Sequence[str]) -> list[BuildSpec]:
    """The healthy build and the builds named in ``wanted`` (all when it is empty)."""
    if not wanted:
        return list(builds)
    known = {b.name: b for b in builds}
    for name in wanted:
        if name not in known:
            raise ConfigError(f"--build: unknown build {name!r}; known: {', '.join(known)}")
    return [b for b in builds if b.healthy or b.name in wanted]


# --- judging the runs (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class BuildRun:
    """What one build's ``hil run`` left: its exit code and summary.json (None if none)."""

    exit_code: int
    summary: Mapping[str, Any] | None
    reports: str = ""
    duration_s: float = 0.0


@dataclass(frozen=True)
class BuildVerdict:
    build: str
    #: "clean" (healthy, nothing failed), "caught", "false failures", "missed",
    #: "rig fault", "configuration error", "framework bug", "interrupted"
    verdict: str
    #: this build's contribution to the matrix's exit code
    exit_code: int
    #: one line a person can act on ("" when the build is as expected)
    problem: str
    failures_per_area: dict[str, int]
    outcomes_per_area: dict[str, dict[str, int]]
    failed_scenarios: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MatrixVerdict:
    areas: list[str]
    builds: list[BuildVerdict]
    exit_code: int

    @property
    def problems(self) -> list[str]:
        return [b.problem for b in self.builds if b.problem]


def scenario_areas(scenario: Mapping[str, Any]) -> list[str]:
    return sorted(
        str(t)[len(AREA_MARKER) :]
        for t in scenario.get("tags", ())
        if str(t).startswith(AREA_MARKER)
    )


def _is_terminal_failure(scenario: Mapping[str, Any]) -> bool:
    return scenario.get("outcome") == "failed" and scenario.get("blame") in ("terminal", None)


def _matches_requirement(scenario: Mapping[str, Any], wanted: Sequence[str]) -> bool:
    if not wanted:
        return True
    ids = [str(r) for r in scenario.get("requirements", ())]
    return any(r == w or r.startswith(f"{w}-") for r in ids for w in wanted)


def outcomes_per_area(summary: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per area: how many of its scenarios ended with each outcome."""
    table: dict[str, dict[str, int]] = {}
    for scenario in summary.get("scenarios", ()):
        outcome = str(scenario.get("outcome"))
        for area in scenario_areas(scenario):
            counts = table.setdefault(area, {})
            counts[outcome] = counts.get(outcome, 0) + 1
    return table


def failures_per_area(summary: Mapping[str, Any]) -> dict[str, int]:
    """Per area: scenarios the terminal failed (a rig fault is not a failure)."""
    table: dict[str, int] = {}
    for scenario in summary.get("scenarios", ()):
        if _is_terminal_failure(scenario):
            for area in scenario_areas(scenario):
                table[area] = table.get(area, 0) + 1
    return table


def _run_trouble(spec: BuildSpec, run: BuildRun) -> tuple[str, int, str] | None:
    """A run that says nothing about the firmware: (verdict, exit code, problem)."""
    where = f"see {run.reports}" if run.reports else "see its reports"
    summary = run.summary or {}
    rig_faults = int(summary.get("rig_faults", 0) or 0)
    if run.exit_code == EXIT_INTERRUPTED:
        return "interrupted", EXIT_INTERRUPTED, f"{spec.name}: run interrupted; nothing judged"
    if run.exit_code == EXIT_USAGE:
        return (
            "configuration error",
            EXIT_USAGE,
            f"{spec.name}: configuration or authoring error in its run ({where}); fix it and "
            "run the matrix again",
        )
    if run.exit_code == EXIT_FRAMEWORK_BUG or run.exit_code not in (
        EXIT_OK,
        EXIT_DUT_FAILED,
        EXIT_RIG_FAULT,
    ):
        return (
            "framework bug",
            EXIT_FRAMEWORK_BUG,
            f"{spec.name}: its run ended with exit {run.exit_code}, a bug of pos-hil or a step, "
            f"not the terminal ({where})",
        )
    if run.exit_code == EXIT_RIG_FAULT or rig_faults:
        return (
            "rig fault",
            EXIT_RIG_FAULT,
            f"{spec.name}: rig fault in its run ({rig_faults or 'some'} scenarios; {where}); "
            "it says nothing about the firmware: repair the rig and run the matrix again",
        )
    if run.summary is None:
        return (
            "framework bug",
            EXIT_FRAMEWORK_BUG,
            f"{spec.name}: its run left no summary.json ({where})",
        )
    return None


def failed_nodeids(run: BuildRun) -> frozenset[str]:
    """The scenarios (node IDs, outline examples apart) the terminal failed in a run."""
    scenarios = (run.summary or {}).get("scenarios", ())
    return frozenset(str(s.get("nodeid")) for s in scenarios if _is_terminal_failure(s))


def judge_build(
    spec: BuildSpec, run: BuildRun, healthy_failed: frozenset[str] = frozenset()
) -> BuildVerdict:
    """One build's verdict from its run. A scenario that failed on the healthy build
    too (``healthy_failed``) is no evidence of this build's defect."""
    summary = run.summary or {}
    per_area = failures_per_area(summary)
    outcomes = outcomes_per_area(summary)
    failed = [
        {
            "scenario": s.get("scenario"),
            "nodeid": s.get("nodeid"),
            "feature": s.get("feature"),
            "areas": scenario_areas(s),
            "requirements": list(s.get("requirements", ())),
            "message": s.get("message", ""),
        }
        for s in summary.get("scenarios", ())
        if _is_terminal_failure(s)
    ]

    def verdict(name: str, code: int, problem: str) -> BuildVerdict:
        return BuildVerdict(spec.name, name, code, problem, per_area, outcomes, failed)

    trouble = _run_trouble(spec, run)
    if trouble is not None:
        return verdict(*trouble)
    if spec.healthy:
        if not failed:
            return verdict("clean", EXIT_OK, "")
        areas = ", ".join(f"{a} {n}" for a, n in sorted(per_area.items()))
        first = failed[0]
        return verdict(
            "false failures",
            EXIT_DUT_FAILED,
            f"{spec.name}: the healthy build failed {len(failed)} scenarios ({areas}); first: "
            f"'{first['scenario']}': {first['message'][:200]} — a false alarm of the suite "
            "or a broken healthy build",
        )
    catching = [
        s
        for s in summary.get("scenarios", ())
        if _is_terminal_failure(s)
        and spec.area in scenario_areas(s)
        and _matches_requirement(s, spec.requirements)
    ]
    shared = [s for s in catching if str(s.get("nodeid")) in healthy_failed]
    catching = [s for s in catching if str(s.get("nodeid")) not in healthy_failed]
    if catching:
        return verdict("caught", EXIT_OK, "")
    scope = f"area {spec.area}"
    if spec.requirements:
        scope += f" (requirements {', '.join(spec.requirements)})"
    elsewhere = (
        f"; it failed only in {', '.join(f'{a} {n}' for a, n in sorted(per_area.items()))}"
        if per_area
        else ""
    )
    if shared:
        elsewhere = (
            f"; its {len(shared)} failures there failed on the healthy build too, so they "
            "are no evidence of the defect"
        )
    return verdict(
        "missed",
        EXIT_DUT_FAILED,
        f"{spec.name}: no failure in {scope} — the suite did not catch {spec.defect}{elsewhere}",
    )


def evaluate(builds: Sequence[BuildSpec], runs: Mapping[str, BuildRun]) -> MatrixVerdict:
    """The matrix's verdict: every build judged, the areas seen, the exit code."""
    healthy_failed = frozenset[str]().union(
        *(failed_nodeids(runs[spec.name]) for spec in builds if spec.healthy)
    )
    verdicts = [judge_build(spec, runs[spec.name], healthy_failed) for spec in builds]
    areas: set[str] = {spec.area for spec in builds if spec.area}
    for spec in builds:
        summary = runs[spec.name].summary or {}
        for scenario in summary.get("scenarios", ()):
            areas.update(scenario_areas(scenario))
    codes = {v.exit_code for v in verdicts}
    code = next(c for c in _EXIT_PRECEDENCE if c in codes or c == EXIT_OK)
    return MatrixVerdict(sorted(areas), verdicts, code)


# --- running the builds ----------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    """What every build's ``hil run`` gets besides its image and reports folder."""

    rig: Path | None = None
    tags: str | None = None
    keyword: str | None = None
    repeat: str = "1"
    html: bool = False
    extra: tuple[str, ...] = ()


def run_command(image: Path, reports: Path, options: RunOptions) -> list[str]:
    args = [sys.executable, "-m", "hil", "run", "--firmware", str(image), "--reports", str(reports)]
    if options.rig is not None:
        args += ["--rig", str(options.rig)]
    if options.tags is not None:
        args += ["--tags", options.tags]
    if options.repeat != "1":
        args += ["--repeat", options.repeat]
    if not options.html:
        args.append("--no-html")
    pytest_args = [*(["-k", options.keyword] if options.keyword else []), *options.extra]
    if pytest_args:
        args += ["--", *pytest_args]
    return args


def run_build(spec: BuildSpec, reports: Path, options: RunOptions) -> BuildRun:
    """One ``hil run`` of this build in a process of its own; its output in hil-run.log."""
    reports.mkdir(parents=True, exist_ok=True)
    summary_path = reports / "summary.json"
    summary_path.unlink(missing_ok=True)  # never judge an earlier run's summary
    started = time.monotonic()
    with open(reports / "hil-run.log", "wb") as log:
        code = subprocess.call(
            run_command(spec.image, reports, options), stdout=log, stderr=subprocess.STDOUT
        )
    summary: Mapping[str, Any] | None
    try:
        loaded = json.loads(summary_path.read_text(encoding="utf-8"))
        summary = loaded if isinstance(loaded, dict) else None
    except (OSError, ValueError):
        summary = None
    return BuildRun(code, summary, str(reports), round(time.monotonic() - started, 1))


def image_facts(spec: BuildSpec) -> dict[str, Any]:
    """The image's sha256 and the defects its signed manifest declares."""
    image = image_named(spec.image, "builds file")
    return {
        "image": str(spec.image),
        "sha256": image_sha256(spec.image),
        "version": image.version,
        "declared_defects": list(image.manifest.seeded_defects),
    }


def check_declared(spec: BuildSpec, facts: Mapping[str, Any]) -> None:
    """The builds file and the signed manifest must agree on the defect."""
    declared = list(facts["declared_defects"])
    wanted = [] if spec.healthy else [spec.defect]
    if declared != wanted:
        raise ConfigError(
            f"{spec.image}: manifest.seeded_defects is {declared}, the builds file says {wanted}"
        )


# --- reports ---------------------------------------------------------------------------


def matrix_json(
    builds: Sequence[BuildSpec],
    facts: Mapping[str, Mapping[str, Any]],
    runs: Mapping[str, BuildRun],
    verdict: MatrixVerdict,
    *,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    by_name = {v.build: v for v in verdict.builds}
    return {
        "format": MATRIX_FORMAT,
        **meta,
        "exit_code": verdict.exit_code,
        "areas": verdict.areas,
        "problems": verdict.problems,
        "builds": [
            {
                "build": spec.name,
                **facts[spec.name],
                "healthy": spec.healthy,
                "defect": spec.defect or None,
                "class": spec.defect_class or None,
                "expected_area": spec.area or None,
                "expected_requirements": list(spec.requirements),
                "reports": runs[spec.name].reports,
                "exit_code": runs[spec.name].exit_code,
                "duration_s": runs[spec.name].duration_s,
                "verdict": by_name[spec.name].verdict,
                "problem": by_name[spec.name].problem or None,
                "failures_per_area": by_name[spec.name].failures_per_area,
                "outcomes_per_area": by_name[spec.name].outcomes_per_area,
                "failed_scenarios": by_name[spec.name].failed_scenarios,
            }
            for spec in builds
        ],
    }


def _cell_colour(failures: int, expected: bool, healthy: bool) -> str:
    if failures == 0:
        return "#fff3c4" if expected else "#f4f6f8"
    if healthy:
        return "#7b1fa2"  # a failure of the healthy build: a false alarm, never "good red"
    shade = min(failures, 8)
    # light to dark red as failures grow
    red, green, blue = 255 - shade * 6, 205 - shade * 20, 205 - shade * 20
    return f"#{red:02x}{green:02x}{blue:02x}"


def write_svg(builds: Sequence[BuildSpec], verdict: MatrixVerdict, path: Path) -> None:
    """A self-contained heat map: builds by area, failures per cell, expected cells framed."""
    areas = verdict.areas
    by_name = {v.build: v for v in verdict.builds}
    label_w, cell_w, cell_h, head_h, verdict_w = 300, 92, 24, 120, 130
    width = label_w + cell_w * len(areas) + verdict_w + 10
    height = head_h + cell_h * len(builds) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        '<text x="8" y="18" font-size="14" font-weight="bold">pos-hil detection matrix: '
        "failed scenarios per build and area (framed: the area that must catch the defect)"
        "</text>",
    ]
    for i, area in enumerate(areas):
        x = label_w + cell_w * i + cell_w / 2
        parts.append(
            f'<text x="{x}" y="{head_h - 6}" transform="rotate(-35 {x} {head_h - 6})">'
            f"{escape(area)}</text>"
        )
    parts.append(f'<text x="{label_w + cell_w * len(areas) + 8}" y="{head_h - 6}">verdict</text>')
    for row, spec in enumerate(builds):
        v = by_name[spec.name]
        y = head_h + cell_h * row
        label = spec.name + ("  (healthy)" if spec.healthy else "")
        parts.append(f'<text x="8" y="{y + 16}">{escape(label)}</text>')
        for i, area in enumerate(areas):
            x = label_w + cell_w * i
            n = v.failures_per_area.get(area, 0)
            expected = area == spec.area
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{_cell_colour(n, expected, spec.healthy)}"'
                + (' stroke="black" stroke-width="2"' if expected else "")
                + "/>"
            )
            if n:
                parts.append(f'<text x="{x + cell_w / 2 - 4}" y="{y + 16}">{n}</text>')
        ok = v.exit_code == EXIT_OK
        colour = "#1b5e20" if ok else "#b71c1c"
        parts.append(
            f'<text x="{label_w + cell_w * len(areas) + 8}" y="{y + 16}" fill="{colour}" '
            f'font-weight="bold">{escape(v.verdict)}</text>'
        )
    summary = (
        "every build as expected"
        if verdict.exit_code == EXIT_OK
        else (f"exit {verdict.exit_code}: " + "; ".join(verdict.problems)[:160])
    )
    parts.append(f'<text x="8" y="{height - 14}">{escape(summary)}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


def table_rows(
    builds: Sequence[BuildSpec], verdict: MatrixVerdict
) -> list[tuple[str, list[str], str]]:
    """(build, one cell per area, verdict) for the console table; the expected area's
    cell is starred, so a missed defect shows where it should have failed."""
    by_name = {v.build: v for v in verdict.builds}
    rows = []
    for spec in builds:
        v = by_name[spec.name]
        cells = []
        for area in verdict.areas:
            n = v.failures_per_area.get(area, 0)
            mark = "*" if area == spec.area else ""
            cells.append(f"{n}{mark}" if n or mark else ".")
        rows.append((spec.name, cells, v.verdict))
    return rows


#: Column labels for the shipped areas, short enough for an 80-column log; any other
#: area is labelled by its first letters.
AREA_LABELS = {
    "card_reader": "card",
    "communication": "comm",
    "data_sync": "sync",
    "firmware": "fw",
    "payments": "pay",
    "payment_interfaces": "iface",
    "power_on_self_check": "boot",
    "qr_scanner": "qr",
    "terminal_identity": "tid",
    "fault_diagnosis": "diag",
    "logs": "logs",
    "performance": "perf",
    "security": "sec",
}


def area_label(area: str) -> str:
    return AREA_LABELS.get(area, area[:6])


def format_table(rows: Sequence[tuple[str, list[str], str]], areas: Sequence[str]) -> list[str]:
    """The matrix as fixed-width text lines (a CI log has no terminal width), then a
    legend of the area labels."""
    labels = [area_label(a) for a in areas]
    name_w = max([len("build"), *(len(name) for name, _, _ in rows)])
    widths = [max(len(label), 3) for label in labels]
    head = "  ".join(
        [
            "build".ljust(name_w),
            *(lb.rjust(w) for lb, w in zip(labels, widths, strict=True)),
            "verdict",
        ]
    )
    lines = [head, "-" * len(head)]
    for name, cells, verdict in rows:
        shown = (c.rjust(w) for c, w in zip(cells, widths, strict=True))
        lines.append("  ".join([name.ljust(name_w), *shown, verdict]))
    legend = ", ".join(f"{label} = {area}" for label, area in zip(labels, areas, strict=True))
    lines.append(f"failed scenarios per area; * the area that must catch the defect; {legend}")
    return lines


def default_jobs(cpu_count: int | None, pool_size: int | None) -> int:
    """As many builds at once as there are cores, and no more than the rig pool holds."""
    jobs = max(1, cpu_count or 1)
    if pool_size:
        jobs = min(jobs, pool_size)
    return jobs


ProgressCallback = Callable[[BuildSpec, BuildRun, int, int], None]
