"""``hil``: run the self-check suite, check a rig, start the sim, build the report.

Exit codes (documented in README.md; ``hil.summary.exit_code_for`` maps a run):
  0   every selected scenario ran and passed
  1   the terminal failed at least one scenario
  2   usage, configuration or authoring error (bad rig file, option, feature, card
      profile...), one line each on stderr; no report touched unless the run started
  3   rig fault (an instrument failed; the result says nothing about the firmware)
  70  framework bug: pos-hil, a step or a tool it runs broke (never the terminal)
  130 interrupted (Ctrl-C); the rig was still torn down, the reports say so

Every line hil prints about a failure passes the PAN mask.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pluggy
import typer
from rich.console import Console

from hil.errors import ConfigError, DutError, HilError, TerminalCommandError
from hil.masking import mask_text
from hil.rigset import RigSlot, encode_slots, rig_slots
from hil.summary import (
    EXIT_DUT_FAILED,
    EXIT_FRAMEWORK_BUG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RIG_FAULT,
    EXIT_USAGE,
    exit_code_for,
)

if TYPE_CHECKING:
    import pytest

    from hil.archive import RunFolder
    from hil.rig import PreflightLine
    from hil.summary import RunSummary
    from hil.terminal_process import TerminalProcess

__all__ = [
    "EXIT_DUT_FAILED",
    "EXIT_FRAMEWORK_BUG",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RIG_FAULT",
    "EXIT_USAGE",
    "app",
    "exit_code_for",
    "main",
]

app = typer.Typer(
    name="hil",
    help="pos-hil: certify payment POS terminal builds through their power-on self-check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rig_app = typer.Typer(help="Rig files and instruments.", no_args_is_help=True)
app.add_typer(rig_app, name="rig")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RigOption = Annotated[
    Path | None, typer.Option("--rig", help="rig file (TOML); default rigs/sim.toml")
]
FirmwareOption = Annotated[
    Path | None, typer.Option("--firmware", help="firmware image to flash before the run")
]


def _say(message: str) -> None:
    """One line on stderr, masked, never read as rich markup."""
    err.print(f"hil: {mask_text(message)}", markup=False)


def _fail(code: int, message: str) -> typer.Exit:
    _say(message)
    return typer.Exit(code)


@contextlib.contextmanager
def _interruptible(what: str) -> Iterator[None]:
    """A Ctrl-C here exits 130 with one line; click would print "Aborted!" and exit 1,
    which reads as a terminal failure."""
    try:
        yield
    except KeyboardInterrupt:
        raise _fail(EXIT_INTERRUPTED, f"interrupted {what}") from None


def _check_output_folder(folder: Path, option: str) -> None:
    """``folder`` is a folder hil can write into, or will be: one line if not."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option}: {folder} exists and is not a folder")
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option}: {parent} is not a folder, so {folder} cannot be made")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: cannot write into {parent}")


_pytest_hookimpl = pluggy.HookimplMarker("pytest")


class _RunWatch:
    """What ``hil run`` learns from inside the pytest session it runs."""

    def __init__(self, run_folder: RunFolder) -> None:
        self.run_folder = run_folder
        self.configured = False
        self.started = False
        self.summary: RunSummary | None = None
        self.selection = ""

    def pytest_configure(self, config: pytest.Config) -> None:
        from hil.plugin import run_summary

        self.configured = True
        self.summary = run_summary(config)
        keyword, marks = config.option.keyword, config.option.markexpr
        tags = config.getoption("hil_tags")
        self.selection = " and ".join(
            f"{flag} {expr!r}"
            for flag, expr in (("--tags", tags), ("-k", keyword), ("-m", marks))
            if expr
        )

    @_pytest_hookimpl(optionalhook=True)  # a hook of hil's plugin, not of pytest
    def pytest_hil_run_started(self, session: pytest.Session) -> None:
        """The run has its folder now: ``reports/latest`` names it from here on (a
        usage error before this point leaves the earlier run the latest)."""
        from hil.archive import point_latest

        self.started = True
        point_latest(self.run_folder.root, self.run_folder.run_id)


#: The plug-in's options ``hil run`` gives its own: errors name the one the user typed.
_RUN_OPTIONS = {
    "--hil-tags": "--tags",
    "--hil-repeat": "--repeat",
    "--hil-req-url": "--req-url",
    "--hil-operator": "--operator",
}


def _pytest_usage_lines(stderr: str) -> list[str]:
    """pytest's own usage error ("ERROR: usage: ...", "pytest.main(): error: ...", an
    unknown step's lines) as the lines that say what is wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line.split("error: ", 1)[1] for line in lines if ": error: " in line]
    if said:
        return [f"pytest: {line}" for line in said]
    wanted = [
        _as_run_option(line.removeprefix("ERROR: "))
        for line in lines
        if not line.startswith(("ERROR: usage:", "inifile:", "rootdir:", "usage:"))
    ]
    return wanted or ["pytest stopped on a usage error"]


def _as_run_option(line: str) -> str:
    for plugin_option, run_option in _RUN_OPTIONS.items():
        if line.startswith(f"{plugin_option}:"):
            return run_option + line.removeprefix(plugin_option)
    return line


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    rig: RigOption = None,
    firmware: FirmwareOption = None,
    features: Annotated[
        Path | None,
        typer.Option(help="feature folder to run; default ./features, else the shipped suite"),
    ] = None,
    reports: Annotated[
        Path,
        typer.Option(
            help="output folder: this run in REPORTS/runs/<run id>/, REPORTS/latest the "
            "newest run (docs/reports.md)"
        ),
    ] = Path("reports"),
    html: Annotated[bool, typer.Option(help="generate the run's html/index.html")] = True,
    tags: Annotated[
        str | None,
        typer.Option(
            metavar="EXPR",
            help="run the scenarios whose tags match EXPR, e.g. 'smoke and not slow' "
            "(docs/tags.md); an unknown tag is exit 2",
        ),
    ] = None,
    # A string, checked by hil: click's own error for a bad number is a usage block.
    repeat: Annotated[
        str,
        typer.Option(
            metavar="N",
            help="run each selected scenario N times; one that fails any repeat failed "
            "('failed k of n')",
        ),
    ] = "1",
    operator: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="who runs the run, named in the report (default $HIL_OPERATOR, else the "
            "login name)",
        ),
    ] = None,
    req_url: Annotated[
        str | None,
        typer.Option(
            "--req-url",
            metavar="PATTERN",
            help="link each @req:ID in the report to PATTERN, {} standing for the ID "
            "(default $HIL_REQ_URL)",
        ),
    ] = None,
    rigs: Annotated[
        str | None,
        typer.Option(
            metavar="RIGS",
            help="run on several rigs at once, one report: rig files and globs separated "
            "by commas ('rigs/lab/*.toml'), or a number N of copies of --rig (sim rigs); "
            "the rigs share the scenarios out (docs/parallel-rigs.md)",
        ),
    ] = None,
    each: Annotated[
        bool,
        typer.Option(help="with --rigs: every rig runs every scenario (a model matrix)"),
    ] = False,
) -> None:
    """Run the self-check suite on a rig; extra arguments after -- go to pytest.

    Nothing in --reports changes until the run starts: a usage error leaves the
    earlier reports as they were.

    Arguments after -- go to pytest unchanged (-k, -m, -x, --maxfail, -v...), e.g.
    hil run -- -k reversal -x; an option pytest does not know is exit 2.

    \b
    Exit codes:
      0    every selected scenario ran and passed
      1    the terminal failed at least one scenario
      2    usage, configuration or authoring error (one line each on stderr)
      3    rig fault: an instrument failed; says nothing about the firmware
      70   framework bug in pos-hil or a step, never the terminal
      130  interrupted (Ctrl-C, SIGTERM); the rig was torn down, reports say so
    """

    from hil.config import load_rig
    from hil.firmware import image_named
    from hil.repeats import repeat_count
    from hil.rig import chosen_firmware, default_rig_path
    from hil.runinfo import run_id
    from hil.tags import TagSelection, check_requirement_url

    rig_path = rig or default_rig_path()
    try:
        run_id()  # a malformed HIL_RUN_ID is refused before anything starts
        # Checked here too, before pytest starts; which tags exist is known only once
        # the features are collected (the plug-in says so then).
        repeat_count(repeat, "--repeat")
        if tags is not None:
            TagSelection.parse(tags, "--tags")
        if req_url is not None:
            check_requirement_url(req_url, "--req-url")
        if each and rigs is None:
            raise ConfigError("--each: runs every scenario on each of --rigs; give --rigs")
        slots = rig_slots(rigs, rig_path) if rigs is not None else []
        for rig_file in dict.fromkeys([slot.path for slot in slots] or [rig_path]):
            rig_config = load_rig(rig_file)  # fail fast, before pytest starts, naming the field
            chosen = chosen_firmware(rig_config, firmware)
            if chosen is not None:
                image_named(*chosen)
        _check_output_folder(reports, "--reports")
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    if features is None:
        from hil.suite import FEATURES

        features = Path("features") if Path("features").is_dir() else FEATURES
    if not features.is_dir():
        raise _fail(EXIT_USAGE, f"--features: no such folder: {features}")
    from hil.archive import RunFolder

    this_run = RunFolder(reports, run_id())
    results, html_dir = this_run.results, this_run.html
    summary_path, junit_path = this_run.summary, this_run.junit
    args = [
        str(features),
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        # labgrid's own pytest plug-in (installed with pos-hil[labgrid]) needs pytest's
        # terminal plug-in, off here: a lab's labgrid tests keep it (docs/labgrid.md)
        "-p",
        "no:labgrid",
        # Hypothesis' plug-in (pos-hil's dev extra installs it) imports and rewrites
        # Hypothesis in every run and worker, about 0.8 s of CPU each; no scenario uses it
        "-p",
        "no:hypothesispytest",
        "--hil-progress",
        "-o",
        "hil_features=true",
        f"--rig={rig_path}",
        f"--alluredir={results}",
        "--clean-alluredir",
        f"--hil-junit={junit_path}",
        f"--hil-summary={summary_path}",
        *([f"--firmware={firmware}"] if firmware is not None else []),
        *([f"--hil-tags={tags}"] if tags is not None else []),
        f"--hil-repeat={repeat}",
        *([f"--hil-req-url={req_url}"] if req_url is not None else []),
        *([f"--hil-operator={operator}"] if operator is not None else []),
    ]
    if slots:
        workers = [a for a in ctx.args if a.startswith(("-n", "--numprocesses", "--dist"))]
        if workers:
            raise _fail(
                EXIT_USAGE,
                f"{workers[0]}: --rigs starts one worker per rig ({len(slots)}); leave it out",
            )
        args += _rig_set_args(slots, each)
    args += ctx.args
    watch = _RunWatch(this_run)
    from hil.instruments.manual import keep_operator_terminal

    keep_operator_terminal()  # a manual bench's prompts and answers, before pytest captures
    pytest_code, held = _pytest_held(args, watch)
    code = _run_verdict(watch, pytest_code, held, features)
    if not watch.started:
        from hil.archive import discard_unstarted

        discard_unstarted(this_run)  # a run that never started leaves no folder
    if watch.started and html:
        from hil.archive import carry_history, previous_run, write_executor
        from hil.htmlreport import ReportError, generate_html

        try:
            with _interruptible(
                f"while making the HTML report; the run's results are complete in {results} "
                f"(hil report --results {results} --out {html_dir} makes it)"
            ):
                # The Trend widgets: the previous run of this build line's history
                # (docs/reports.md), and which build this is.
                environment = watch.summary.environment() if watch.summary else {}
                previous = previous_run(reports, this_run.run_id, environment)
                carry_history(results, previous)
                write_executor(results, this_run.run_id, previous)
                index = generate_html(results, html_dir)
            out.print(f"HTML report: {index}", markup=False)
        except ReportError as e:
            _say(f"HTML report not generated: {e}")
    if watch.started:
        out.print(
            f"summary: {summary_path}   junit: {junit_path}   allure: {results}", markup=False
        )
    raise typer.Exit(code)


def _pytest_held(args: list[str], watch: _RunWatch) -> tuple[int, str]:
    """pytest.main for ``hil run``: its exit code, and its own stderr (usage errors,
    internal errors), held to be said in hil's words afterwards; the progress goes to
    stdout."""
    import pytest

    held = io.StringIO()
    with (
        _interruptible("before the run started; no report was touched"),
        contextlib.redirect_stderr(held),
    ):
        code = int(pytest.main(args, plugins=[watch]))
    return code, held.getvalue()


def _rig_set_args(slots: list[RigSlot], each: bool) -> list[str]:
    """pytest-xdist with one worker per rig, never restarted (a worker's number is its
    rig), and the rigs for the plug-in."""
    return [
        "-n",
        str(len(slots)),
        "--dist",
        "each" if each else "load",
        "--max-worker-restart=0",
        f"--hil-rigs={encode_slots(slots)}",
        *(["--hil-rigs-each"] if each else []),
    ]


def _run_verdict(watch: _RunWatch, pytest_code: int, held_stderr: str, features: Path) -> int:
    """The exit code of a ``hil run``, with its reason said on stderr in one line each."""
    import pytest

    summary = watch.summary
    if not watch.configured or pytest_code == pytest.ExitCode.USAGE_ERROR or summary is None:
        for line in _pytest_usage_lines(held_stderr):
            _say(line)
        return EXIT_USAGE
    if pytest_code == pytest.ExitCode.INTERNAL_ERROR:
        lines = [line for line in held_stderr.splitlines() if line.strip()]
        last = lines[-1].removeprefix("INTERNALERROR>").strip() if lines else "no detail"
        _say(f"internal error in pos-hil or a pytest plug-in (not the terminal): {last}")
        return EXIT_FRAMEWORK_BUG
    if held_stderr.strip():
        err.print(mask_text(held_stderr.rstrip()), markup=False)
    data = summary.as_dict()
    if summary.status == "not started":
        for error in summary.errors:
            _say(error)
        if summary.errors:
            return EXIT_USAGE
        if summary.ended_by.startswith("interrupted"):
            return int(_fail(EXIT_INTERRUPTED, "interrupted before the run started").exit_code)
        if summary.deselected and watch.selection:
            _say(f"no scenario matches {watch.selection} ({summary.deselected} deselected)")
        else:
            _say(f"no scenarios collected from {features}")
        return EXIT_USAGE
    code = exit_code_for(data)
    _say_why(code, summary, data)
    return code


def _say_why(code: int, summary: RunSummary, data: dict[str, Any]) -> None:
    """One line per distinct reason a run did not pass (a bad card profile breaks every
    scenario that uses it: one line, with the count)."""
    scenarios = data["scenarios"]

    def by_reason(blame: str) -> dict[str, int]:
        reasons: dict[str, int] = {}
        for entry in scenarios:
            if entry["blame"] == blame:
                reason = _without_exception_name(entry["message"])
                reasons[reason] = reasons.get(reason, 0) + 1
        return reasons

    def counted(reasons: dict[str, int]) -> list[str]:
        return [f"{r} ({n} scenarios)" if n > 1 else r for r, n in reasons.items()]

    if code == EXIT_INTERRUPTED:
        reason = summary.incomplete_reason().removeprefix("Run incomplete: ")
        _say(f"{reason}; the reports say the run is incomplete")
    elif code == EXIT_USAGE:
        for error in summary.errors:
            _say(error)
        for line in counted(by_reason("config")):
            _say(f"configuration error: {line}")
        if not summary.errors and not by_reason("config"):
            _say(summary.incomplete_reason().removeprefix("Run incomplete: "))
    elif code == EXIT_FRAMEWORK_BUG:
        for line in counted(by_reason("framework")):
            _say(f"framework bug (pos-hil or a step; not the terminal): {line}")
        if not by_reason("framework"):  # a rig's worker process died (hil run --rigs)
            _say(f"framework bug (not the terminal): {summary.incomplete_reason()}")
    elif code == EXIT_RIG_FAULT:
        for line in counted(by_reason("rig")):
            _say(f"rig fault (says nothing about the firmware): {line}")
    elif code == EXIT_DUT_FAILED:
        failed = data["counts"]["failed"]
        line = f"the terminal failed {failed} of {data['collected']} scenarios"
        rigs = [e["rig"] for e in scenarios if e["outcome"] == "failed" and e.get("rig")]
        if rigs:  # a run over several rigs (--rigs): which terminals failed
            line += f" (on {', '.join(dict.fromkeys(rigs))})"
        intermittent = [
            e
            for e in scenarios
            if e["outcome"] == "failed" and 0 < e["failed_repeats"] < e["repeat_count"]
        ]
        if intermittent:
            line += (
                f", {len(intermittent)} of them intermittently (failed some repeats, "
                "passed others: a terminal defect, not a pass)"
            )
        _say(line)


def _without_exception_name(message: str) -> str:
    """``hil.errors.ConfigError: x.yaml: bogus: unknown key`` -> ``x.yaml: bogus: unknown
    key``; a message whose exception name says something (``TypeError: ...``) keeps a
    short name."""
    name, sep, rest = message.partition(": ")
    if not sep or " " in name:
        return message
    short = name.rsplit(".", 1)[-1]
    return rest if short in ("ConfigError", "RigError", "StepValueError") else f"{short}: {rest}"


@app.command()
def report(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[RUN]...",
            help="with --merge: the runs to merge (folders, run IDs under reports/runs, or latest)",
            show_default=False,
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="one report from several runs (several rigs, or a rerun); default --out "
            "reports/merged",
        ),
    ] = False,
    results: Annotated[Path, typer.Option(help="allure results folder")] = Path(
        "reports/allure-results"
    ),
    output: Annotated[Path | None, typer.Option("--out", help="HTML output folder")] = None,
    install_tools: Annotated[
        bool,
        typer.Option(
            "--install-tools",
            help="install the report generator (Allure 2, from npm) into the per-user "
            "tools folder and exit",
        ),
    ] = False,
) -> None:
    """Generate the single-file HTML report from allure results (works offline).

    Exit 2 for a usage error or missing report tools (the message names the command
    that installs them), 70 if the generator itself fails, 130 on Ctrl-C; the earlier
    report stays until the new one is complete.
    """
    from hil.htmlreport import (
        ReportError,
        ReportToolsMissing,
        ReportUsageError,
        check_report_folders,
        generate_html,
        install_report_tools,
        user_tools_dir,
    )

    if install_tools:
        try:
            with _interruptible("while installing the report tools"):
                allure = install_report_tools(user_tools_dir())
        except ReportError as e:
            raise _fail(EXIT_USAGE, str(e)) from None
        out.print(f"report tools installed: {allure}", markup=False)
        return
    if runs and not merge:
        raise _fail(EXIT_USAGE, "runs are named only with --merge (hil report --merge RUN...)")
    if merge:
        output = output or Path("reports/merged")
        index = _merged_report(runs or [], output)
        out.print(f"HTML report: {index}", markup=False)
        return
    output = output or Path("reports/html")
    try:
        check_report_folders(results, output)
        with _interruptible("while making the HTML report; the earlier report is unchanged"):
            index = generate_html(results, output)
    except (ReportUsageError, ReportToolsMissing) as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    except ReportError as e:
        raise _fail(EXIT_FRAMEWORK_BUG, str(e)) from None
    out.print(f"HTML report: {index}", markup=False)


def _merged_report(runs: list[Path], output: Path) -> Path:
    """``hil report --merge``: the runs' results in one folder beside the report, then
    one report of them."""
    import tempfile

    from hil.archive import merge_results
    from hil.htmlreport import (
        ReportError,
        ReportToolsMissing,
        ReportUsageError,
        check_report_tools,
        generate_html,
    )

    try:
        check_report_tools()
        output.parent.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as work,
            _interruptible("while merging runs; the earlier report is unchanged"),
        ):
            merged = merge_results(runs, Path(work) / "allure-results")
            index = generate_html(Path(work) / "allure-results", output)
    except (ReportUsageError, ReportToolsMissing, ConfigError) as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    except ReportError as e:
        raise _fail(EXIT_FRAMEWORK_BUG, str(e)) from None
    out.print(f"merged {len(merged)} runs: {', '.join(r.run_id for r in merged)}", markup=False)
    return index


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="new lab project folder (absent or empty)")],
) -> None:
    """Scaffold a lab project that runs as it is: features, a sim rig file, test data."""
    from hil.scaffold import ScaffoldError, scaffold

    try:
        written = scaffold(folder)
    except ScaffoldError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    out.print(f"lab project in {folder}: {len(written)} files", markup=False)
    out.print(f"next: cd {folder} && hil run      (see {folder / 'README.md'})", markup=False)


@app.command()
def steps(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="print the catalogue as Markdown (docs/steps.md)")
    ] = False,
    write: Annotated[
        Path | None, typer.Option("--write", help="write the Markdown catalogue to this file")
    ] = None,
) -> None:
    """List every step phrase of the step library, its parameters and an example."""
    from hil.steps.catalogue import catalogue, render_markdown, render_text

    entries = catalogue()
    if write is not None:
        write.write_text(render_markdown(entries), encoding="utf-8")
        out.print(f"{len(entries)} step phrases written to {write}", markup=False)
        return
    # typer.echo, not rich: a phrase must come out exactly as written, never re-styled.
    typer.echo(render_markdown(entries) if markdown else render_text(entries), nl=False)


@rig_app.command("check")
def rig_check(rig: RigOption = None, firmware: FirmwareOption = None) -> None:
    """Preflight: bring the rig up and have each instrument answer, one line each."""
    from hil.rig import PreflightLine, Rig, default_rig_path

    rig_path = rig or default_rig_path()
    try:
        the_rig = Rig.from_file(rig_path, firmware=firmware)
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    out.print(f"rig '{the_rig.name}' from {rig_path}", markup=False)
    boot_problem = ""
    try:
        with _interruptible("during the rig check; the rig was torn down"):
            # Every section first, each on its own: a bench with three devices missing
            # hears of all three, one line each, not of the first one only.
            missing = the_rig.build_for_check()
            if missing:
                for line in [*the_rig.preflight(), *missing]:
                    _print_preflight(line)
                raise typer.Exit(EXIT_RIG_FAULT)
            terminal = the_rig.start()
            try:
                # Wait for the boot so device.info reports the verified firmware, not
                # "booting"; a terminal that cannot boot is reported, not hidden.
                terminal.ensure_idle()
            except DutError as e:
                boot_problem = str(e)
            lines = the_rig.preflight()
    except HilError as e:
        code = EXIT_USAGE if isinstance(e, ConfigError) else EXIT_RIG_FAULT
        raise _fail(code, f"rig did not start: {e}") from None
    finally:
        the_rig.close()
    if boot_problem:
        lines.append(PreflightLine("boot", the_rig.config.dut.driver, False, boot_problem))
    for line in lines:
        _print_preflight(line)
    if not all(line.ok for line in lines if line.instrument != "boot"):
        raise typer.Exit(EXIT_RIG_FAULT)
    raise typer.Exit(EXIT_DUT_FAILED if boot_problem else EXIT_OK)


def _print_preflight(line: PreflightLine) -> None:
    mark = "[green]ok  [/]" if line.ok else "[red]FAIL[/]"
    out.print(f"{mark} {line.instrument:<10} {line.driver:<15} ", end="")
    out.print(mask_text(line.detail), markup=False)


@app.command()
def sim(rig: RigOption = None, firmware: FirmwareOption = None) -> None:
    """Start the simulated terminal alone and print its test port, until Ctrl-C."""
    from hil.rig import Rig, default_rig_path

    try:
        the_rig = Rig.from_file(rig or default_rig_path(), firmware=firmware)
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    try:
        # The same instruments as a run (host, cards, QR screen...), so the terminal
        # explored by hand has its channels wired; the port is left for a person.
        the_rig.build([s for s in the_rig.config.build_order if s not in ("console", "power")])
    except HilError as e:
        the_rig.close()
        code = EXIT_USAGE if isinstance(e, ConfigError) else EXIT_RIG_FAULT
        raise _fail(code, f"rig did not start: {e}") from None
    process = the_rig.process
    if process is None:
        the_rig.close()
        raise _fail(EXIT_USAGE, "dut.driver: 'hil sim' needs dut driver 'sim' or 'command'")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        process.start()
        out.print(f"console port: {process.port_path}", markup=False)
        out.print(f"state dir:    {process.state_dir}", markup=False)
        wired = ", ".join(f"{k}={v}" for k, v in sorted(the_rig.wired.items())) or "none"
        out.print(f"channels:     {wired}", markup=False)
        out.print(
            f"talk to it with 'hil console --port {process.port_path}' or 'hil send --port "
            f"{process.port_path} device.info'; 'hil console --rig' instead of 'hil sim' "
            "also works the rig's instruments by hand. Ctrl-C powers the terminal off.",
            markup=False,
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            if not process.alive:
                raise _fail(EXIT_DUT_FAILED, f"terminal exited: {process.stderr_tail(500)}")
    except KeyboardInterrupt:
        pass
    finally:
        process.terminate(5.0)
        the_rig.close()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def matrix(
    ctx: typer.Context,
    rig: RigOption = None,
    builds_file: Annotated[
        Path | None,
        typer.Option(
            "--builds",
            help="builds file (TOML); default the shipped hil/suite/fixtures/firmware/builds.toml",
        ),
    ] = None,
    build: Annotated[
        list[str] | None,
        typer.Option(
            "--build",
            metavar="NAME",
            help="run only this defect build (repeatable); the healthy build always runs",
        ),
    ] = None,
    reports: Annotated[Path, typer.Option(help="output folder")] = Path("reports"),
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="builds run at once; default: the cores, at most the rig's card reader pool",
        ),
    ] = None,
    tags: Annotated[
        str | None, typer.Option(metavar="EXPR", help="passed to each hil run (--tags)")
    ] = None,
    keyword: Annotated[
        str | None, typer.Option("-k", metavar="EXPR", help="pytest -k for each hil run")
    ] = None,
    repeat: Annotated[str, typer.Option(metavar="N", help="passed to each hil run")] = "1",
    html: Annotated[bool, typer.Option(help="an HTML report per build")] = False,
) -> None:
    """Run the suite against the healthy build and every seeded-defect build; print the
    detection matrix (build x area), write reports/matrix.json and reports/matrix.svg.

    Exit 0 only when the healthy build fails nothing and every defect build fails in the
    area that names its defect; 1 otherwise, one line per violation. A rig fault (3),
    configuration error (2) or framework bug (70) in any build's run wins, as in hil run.
    """
    import concurrent.futures
    import datetime

    from hil import matrix as mx
    from hil.config import load_rig
    from hil.repeats import repeat_count
    from hil.rig import default_rig_path
    from hil.tags import TagSelection

    rig_path = rig or default_rig_path()
    try:
        repeat_count(repeat, "--repeat")
        if tags is not None:
            TagSelection.parse(tags, "--tags")
        rig_config = load_rig(rig_path)
        specs = mx.select_builds(mx.load_builds(builds_file or mx.BUILDS_FILE), build or [])
        facts = {spec.name: mx.image_facts(spec) for spec in specs}
        for spec in specs:
            mx.check_declared(spec, facts[spec.name])
        _check_output_folder(reports, "--reports")
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    cards = rig_config.section("cards")
    pool = getattr(cards, "readers", None) if cards is not None else None
    workers = jobs or mx.default_jobs(os.cpu_count(), pool if isinstance(pool, int) else None)
    options = mx.RunOptions(
        rig=rig, tags=tags, keyword=keyword, repeat=repeat, html=html, extra=tuple(ctx.args)
    )
    folder = reports / "matrix"
    out.print(
        f"matrix: {len(specs)} builds, {workers} at a time; reports under {folder}", markup=False
    )
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    runs: dict[str, mx.BuildRun] = {}
    pool_runner = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    pending = {
        pool_runner.submit(mx.run_build, spec, folder / spec.name, options): spec for spec in specs
    }
    try:
        for done in concurrent.futures.as_completed(pending):
            spec = pending[done]
            run_result = done.result()
            runs[spec.name] = run_result
            counts = (run_result.summary or {}).get("counts", {})
            out.print(
                f"[{len(runs)}/{len(specs)}] {spec.name}: exit {run_result.exit_code}, "
                f"{counts.get('failed', '?')} failed, {counts.get('broken', '?')} broken "
                f"({run_result.duration_s:.0f} s)",
                markup=False,
            )
    except KeyboardInterrupt:
        # The runs under way got the Ctrl-C too and tear their rigs down; none starts now.
        pool_runner.shutdown(wait=True, cancel_futures=True)
        raise _fail(EXIT_INTERRUPTED, "interrupted during the matrix; no matrix written") from None
    pool_runner.shutdown(wait=True)
    verdict = mx.evaluate(specs, runs)
    for line in mx.format_table(mx.table_rows(specs, verdict), verdict.areas):
        out.print(line, markup=False)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - clock, 1),
        "jobs": workers,
        "rig": str(rig_path),
        "selection": {"tags": tags, "k": keyword, "repeat": repeat, "pytest": list(ctx.args)},
    }
    reports.mkdir(parents=True, exist_ok=True)
    data = mx.matrix_json(specs, facts, runs, verdict, meta=meta)
    (reports / "matrix.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    mx.write_svg(specs, verdict, reports / "matrix.svg")
    out.print(
        f"matrix: {reports / 'matrix.json'}   picture: {reports / 'matrix.svg'}   "
        f"({meta['duration_s']:.0f} s)",
        markup=False,
    )
    for problem in verdict.problems:
        _say(problem)
    if verdict.exit_code == EXIT_OK:
        out.print(
            "every defect build was caught in its area; the healthy build failed nothing",
            markup=False,
        )
    raise typer.Exit(verdict.exit_code)


PortOption = Annotated[
    str | None,
    typer.Option(
        "--port",
        metavar="URL",
        help="an existing test port, no rig: a pty or serial path, socket://HOST:PORT, "
        "rfc2217://...",
    ),
]
BaudOption = Annotated[int, typer.Option("--baud", help="baud rate with --port", min=1)]


def _port_choice(rig: Path | None, port: str | None) -> Path | None:
    """The rig file to start, or None for --port; exit 2 when both are given."""
    from hil.rig import default_rig_path

    if rig is not None and port is not None:
        raise _fail(EXIT_USAGE, "--rig and --port: give one (--port is a terminal without a rig)")
    return None if port is not None else rig or default_rig_path()


@app.command()
def console(
    rig: RigOption = None,
    port: PortOption = None,
    baud: BaudOption = 115200,
    firmware: FirmwareOption = None,
    transcript: Annotated[
        Path | None,
        typer.Option(
            "--transcript",
            help="session transcript file (default reports/console/console-<UTC time>.txt); "
            "the port's bytes go next to it as .wire.txt",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="seconds to wait for each answer; default the rig's (else 10)", min=0.1),
    ] = None,
) -> None:
    """An interactive session on a terminal's test port (docs/console.md).

    Type CMD or CMD {JSON}; events print as they arrive; Tab completes the
    documented commands; with a rig, ':card insert PROFILE', ':fault set tamper',
    ':qr show PAYLOAD blur=3', ':net blackhole'... work its instruments; ':quit'.
    Exit 0 after :quit or end of input, 1 if the terminal's process exits, 2 for bad
    options or rig file, 3 if the port or rig fails.
    """
    from hil.lifecycle import stop_on_sigterm_like_ctrl_c
    from hil.portconsole import (
        InteractiveConsole,
        Printer,
        default_transcript_path,
        open_port,
        stdin_lines,
        write_wire_transcript,
    )

    rig_path = _port_choice(rig, port)
    transcript_path = transcript or default_transcript_path()
    stop_on_sigterm_like_ctrl_c()  # a CI job cancelled: the rig still goes down
    try:
        _check_output_folder(transcript_path.parent, "--transcript")
        transcript_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            _interruptible("the console" + ("; the rig was torn down" if rig_path else "")),
            open_port(rig_path=rig_path, url=port, firmware=firmware, baudrate=baud) as opened,
        ):
            where = port or f"rig {opened.rig.name if opened.rig else rig_path}"
            with transcript_path.open("w", encoding="utf-8") as record:
                printer = Printer(sys.stdout, record)
                printer.say(f"console on {where}; :help lists the commands, :quit leaves")
                printer.say(f"transcript: {transcript_path}")
                session = InteractiveConsole(
                    opened.session,
                    printer,
                    hands=opened.hands,
                    timeout=timeout or opened.command_timeout,
                    echo=not sys.stdin.isatty(),
                    terminal_alive=_alive_check(opened.process),
                )
                outcome = session.run(stdin_lines("hil> ", opened.hands))
                printer.say(f"console closed: {outcome.reason}")
            write_wire_transcript(transcript_path.with_suffix(".wire.txt"), opened.wire)
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    except HilError as e:
        raise _fail(EXIT_RIG_FAULT, f"rig fault: {e}") from None
    raise typer.Exit(outcome.code)


def _alive_check(process: TerminalProcess | None) -> Callable[[], bool] | None:
    """Whether the rig's terminal process still runs; None for a terminal the rig does
    not run."""
    if process is None:
        return None
    return lambda: process.alive


@app.command()
def send(
    command: Annotated[str, typer.Argument(help="the request, e.g. device.info")],
    arguments: Annotated[
        str | None, typer.Argument(help='its arguments as a JSON object, e.g. \'{"key": "x"}\'')
    ] = None,
    rig: RigOption = None,
    port: PortOption = None,
    baud: BaudOption = 115200,
    firmware: FirmwareOption = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="seconds to wait for the answer; default the rig's (else 10)", min=0.1),
    ] = None,
) -> None:
    """Send one request and print its JSON result (for scripts).

    With --rig (the default) the rig's terminal is started and waited for (sys.ready)
    first, and torn down after. Exit 0 on ok, 1 when the terminal answers an error or
    does not boot, 2 for a bad command line or JSON, 3 when the port fails or nothing
    answers.
    """
    import json

    from hil.portconsole import (
        ConsoleInputError,
        TerminalNotReady,
        open_port,
        parse_request,
        shown_data,
        wait_until_ready,
    )

    try:
        cmd, args = parse_request(command if arguments is None else f"{command} {arguments}")
    except ConsoleInputError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    from hil.lifecycle import stop_on_sigterm_like_ctrl_c

    rig_path = _port_choice(rig, port)
    stop_on_sigterm_like_ctrl_c()
    try:
        with (
            _interruptible("before the answer; the rig was torn down"),
            open_port(rig_path=rig_path, url=port, firmware=firmware, baudrate=baud) as opened,
        ):
            if opened.process is not None:
                wait_until_ready(opened.session, opened.boot_timeout)
            result = opened.session.request(cmd, args, timeout=timeout or opened.command_timeout)
    except TerminalCommandError as e:
        raise _fail(
            EXIT_DUT_FAILED, f"{cmd}: the terminal answered {e.code}: {e.terminal_message}"
        ) from None
    except TerminalNotReady as e:
        raise _fail(EXIT_DUT_FAILED, str(e)) from None
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    except HilError as e:
        raise _fail(EXIT_RIG_FAULT, f"{cmd}: no answer: {e}") from None
    # typer.echo, not rich: the JSON comes out exactly as made (masked, secrets redacted)
    typer.echo(json.dumps(shown_data(result), ensure_ascii=False, indent=2))


@app.command()
def compare(
    before: Annotated[
        Path,
        typer.Argument(
            help="run A: its folder, summary.json, run ID (under reports/runs) or 'latest'"
        ),
    ],
    after: Annotated[Path, typer.Argument(help="run B, the build under test")],
    tolerance: Annotated[
        float,
        typer.Option(help="relative change of a measurement that counts (0.2 = 20%)", min=0.0),
    ] = 0.2,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="also write the comparison as JSON here")
    ] = None,
) -> None:
    """What run B's build broke or fixed against run A (docs/compare.md).

    Exit 1 when B regressed (a scenario A passed failed by B's terminal, or a
    measurement moved towards its limit beyond the tolerance), 0 otherwise, 2 for an
    unreadable run. Intermittent scenarios and scenarios a rig fault kept from a
    verdict are listed apart, never counted.
    """
    import json

    from hil.compare import compare as compare_runs
    from hil.runrecord import load_run

    result = compare_runs(load_run(before), load_run(after), tolerance)
    sections = [
        ("newly failing (regressions)", result.newly_failing),
        ("newly passing", result.newly_passing),
        ("still failing", result.still_failing),
        ("added", result.added),
        ("removed", result.removed),
        ("intermittent in either run (not counted)", result.intermittent),
        ("not comparable (no verdict in a run)", result.not_comparable),
    ]
    out.print(f"compare {result.before} -> {result.after}", markup=False)
    for title, names in sections:
        if names:
            out.print(f"{title}: {len(names)}", markup=False)
            for name in names:
                out.print(f"  {mask_text(name)}", markup=False)
    if result.measurements:
        out.print(f"measurements moved beyond {tolerance:.0%}:", markup=False)
        for m in result.measurements:
            out.print(
                f"  {m.verdict}: {mask_text(m.scenario)}: {m.name} {m.before:.4g} -> "
                f"{m.after:.4g} {m.unit} ({m.change:+.0%}; limit {m.limit})",
                markup=False,
            )
    if json_out is not None:
        json_out.write_text(json.dumps(result.as_json(), indent=2, sort_keys=True) + "\n")
    if result.regressions:
        raise _fail(EXIT_DUT_FAILED, f"{result.regressions} regression(s) in {result.after}")
    out.print("no regression", markup=False)


@app.command()
def certify(
    run_folder: Annotated[
        Path,
        typer.Argument(
            help="the run's folder, summary.json, run ID (under reports/runs) or 'latest'"
        ),
    ],
    key: Annotated[
        Path | None,
        typer.Option("--key", help="the lab's ed25519 private key (PEM); else $HIL_CERT_KEY"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="bundle folder; default <run>/certificate")
    ] = None,
) -> None:
    """Sign a finished run: certificate.json (canonical, ed25519) and certificate.html.

    Exit 2 when the run cannot be certified (interrupted, unfinished, a scenario left
    without a verdict by the rig or configuration) or the key is unusable.
    """
    from hil.certify import certify as certify_run
    from hil.certify import private_key_pem
    from hil.runrecord import load_run

    run_record = load_run(run_folder)
    written = certify_run(
        run_record, private_key_pem(key), output or run_record.folder / "certificate"
    )
    out.print(f"certificate: {written}", markup=False)


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="a certificate bundle folder or its JSON")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="the lab's public key (PEM) the bundle must carry"),
    ] = None,
    run_folder: Annotated[
        Path | None,
        typer.Option("--run", help="also check the run's files still hash as certified"),
    ] = None,
) -> None:
    """Check a certificate bundle: bytes, signature, page, key and run files.

    Exit 0 when genuine, 2 with the first thing that is not (an edited byte, another
    key than --public-key, a run file changed since).
    """
    from hil.certify import VerificationFailed, verify_bundle

    pem = None
    if public_key is not None:
        try:
            pem = public_key.read_bytes()
        except OSError as e:
            raise _fail(EXIT_USAGE, f"--public-key: {public_key}: {e.strerror or e}") from None
    try:
        checked = verify_bundle(bundle, public_key_pem=pem, run_folder=run_folder)
    except VerificationFailed as e:
        raise _fail(EXIT_USAGE, f"NOT VERIFIED: {e}") from None
    pinned = "the lab's key" if pem is not None else "key (not pinned: pass --public-key)"
    out.print(
        f"verified: run {checked.run_id}, verdict {checked.verdict}, firmware "
        f"{checked.firmware}, signed by {pinned} {checked.key_fingerprint}",
        markup=False,
    )


def _print_version(value: bool) -> None:
    if value:
        from hil import __version__

        out.print(f"pos-hil {__version__}", markup=False)
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """pos-hil: certify payment POS terminal builds through their power-on self-check."""


def main() -> None:
    """The ``hil`` command. Once it is done, the process ends without Python's
    interpreter shutdown (0.3 s at the end of every run: hil.lifecycle), with the
    status the command chose."""
    from hil.lifecycle import end_process_at_exit

    try:
        _run_command()
    except SystemExit as e:
        status = _exit_status(e.code)
    else:
        status = EXIT_OK
    end_process_at_exit(status)
    sys.exit(status)


def _exit_status(code: object) -> int:
    """What ``SystemExit(code)`` would end the process with (a text is said, then 1)."""
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    _say(str(code))
    return 1


def _run_command() -> None:
    try:
        app()
    except ConfigError as e:
        _say(str(e))
        sys.exit(EXIT_USAGE)
    except HilError as e:
        _say(f"rig fault: {e}")
        sys.exit(EXIT_RIG_FAULT)
    except KeyboardInterrupt:
        _say("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # a bug of ours must not read as the terminal's failure
        _say(f"internal error (a bug in pos-hil, not the terminal): {type(e).__name__}: {e}")
        sys.exit(EXIT_FRAMEWORK_BUG)


# --- hil camera -------------------------------------------------------------------------

camera_app = typer.Typer(help="The camera on the terminal's display.", no_args_is_help=True)
app.add_typer(camera_app, name="camera")


def _camera_frame(rig_path: Path, firmware: Path | None) -> Any:
    """One frame from the rig's camera, with the terminal booted to idle (screen lit)."""
    from hil.instruments.camera import Camera
    from hil.rig import Rig

    try:
        the_rig = Rig.from_file(rig_path, firmware=firmware)
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    try:
        with _interruptible("during the calibration; the rig was torn down"):
            terminal = the_rig.start()
            with contextlib.suppress(DutError):
                terminal.ensure_idle()  # a terminal that cannot boot still shows a screen
            camera = the_rig.instrument("camera")
            if not isinstance(camera, Camera):
                raise _fail(EXIT_USAGE, f"{rig_path}: camera.driver: not a pos-hil camera")
            return camera.capture()
    except HilError as e:
        code = EXIT_USAGE if isinstance(e, ConfigError) else EXIT_RIG_FAULT
        raise _fail(code, str(e)) from None
    finally:
        the_rig.close()


@camera_app.command("calibrate")
def camera_calibrate(
    rig: RigOption = None,
    firmware: FirmwareOption = None,
    frame: Annotated[
        Path | None,
        typer.Option("--frame", help="calibrate on this saved frame, not a live capture"),
    ] = None,
    corners: Annotated[
        str | None,
        typer.Option("--corners", help='the screen\'s corners "x,y x,y x,y x,y"; default: found'),
    ] = None,
    led: Annotated[
        list[str] | None,
        typer.Option("--led", help="an LED spot name=x,y[,radius] (repeat for more)"),
    ] = None,
    write: Annotated[
        bool, typer.Option("--write", help="replace [camera.calibration] in the rig file")
    ] = False,
    save_screen: Annotated[
        Path | None, typer.Option("--save-screen", help="save the deskewed screen image here")
    ] = None,
) -> None:
    """Find the screen (and LED spots) in a camera frame; print or write the calibration."""
    import tomllib

    import cv2
    import numpy as np

    from hil.camera.calibrate import (
        calibrate_frame,
        calibration_toml,
        parse_corners,
        parse_led,
        write_calibration,
    )
    from hil.camera.calibration import NoScreenFound, deskew
    from hil.rig import default_rig_path

    rig_path = rig or default_rig_path()
    try:
        given = parse_corners(corners) if corners else None
        spots = dict((name, (at, radius)) for name, at, radius in map(parse_led, led or []))
        rig_data = tomllib.loads(rig_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        where = rig_path if isinstance(e, OSError) else "option"
        raise _fail(EXIT_USAGE, f"{where}: {e}") from None
    camera_section = rig_data.get("camera")
    if not isinstance(camera_section, dict):
        raise _fail(EXIT_USAGE, f"{rig_path}: no [camera] section to calibrate")
    kept = camera_section.get("calibration", {}).get("leds", {})
    for name, spot in kept.items():
        spots.setdefault(name, (spot["at"], float(spot.get("radius", 8.0))))
    if frame is not None:
        image = cv2.imread(str(frame), cv2.IMREAD_COLOR)
        if image is None:
            raise _fail(EXIT_USAGE, f"--frame {frame}: not an image file")
    else:
        image = _camera_frame(rig_path, firmware)
    try:
        found, size = calibrate_frame(given, image)
    except NoScreenFound as e:
        raise _fail(EXIT_RIG_FAULT, f"camera: {e} (--corners)") from None
    block = calibration_toml(found, size, spots)
    if save_screen is not None:
        cv2.imwrite(str(save_screen), deskew(np.asarray(image, np.uint8), found, size))
    typer.echo(block, nl=False)
    if write:
        write_calibration(rig_path, block)
        typer.echo(f"# written to {rig_path}")
