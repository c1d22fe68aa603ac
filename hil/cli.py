"""``hil``: run the self-check suite, check a rig, start the sim, build the report.

Exit codes (documented in README.md):
  0  every scenario passed
  1  the terminal failed at least one scenario
  2  usage or configuration error (bad rig file, unknown option)
  3  rig fault (an instrument failed; the result says nothing about the firmware)
  130 interrupted (Ctrl-C); the rig was still torn down
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hil.errors import ConfigError, DutError, HilError

EXIT_OK, EXIT_DUT_FAILED, EXIT_USAGE, EXIT_RIG_FAULT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

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


def _fail(code: int, message: str) -> typer.Exit:
    err.print(f"hil: {message}", markup=False)
    return typer.Exit(code)


def exit_code_for(summary: dict[str, Any], pytest_code: int) -> int:
    """Map a run's outcome to hil's documented exit codes."""
    if summary.get("interrupted") or (pytest_code == 2 and not summary):
        return EXIT_INTERRUPTED
    # pytest's 2 without a Ctrl-C is a collection error or pytest.exit (a rig file
    # the rig could not build): ours or the lab's, never the terminal's.
    if summary.get("errors") or summary.get("config_errors") or pytest_code in (2, 3, 4):
        return EXIT_USAGE
    if summary.get("rig_faults", 0):
        return EXIT_RIG_FAULT
    counts = summary.get("counts", {})
    if counts.get("failed", 0) or counts.get("broken", 0) or pytest_code == 1:
        return EXIT_DUT_FAILED
    if pytest_code == 5:
        return EXIT_USAGE
    return EXIT_OK


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    rig: RigOption = None,
    firmware: FirmwareOption = None,
    features: Annotated[
        Path | None,
        typer.Option(help="feature folder to run; default ./features, else the shipped suite"),
    ] = None,
    reports: Annotated[Path, typer.Option(help="output folder")] = Path("reports"),
    html: Annotated[bool, typer.Option(help="generate reports/html/index.html")] = True,
) -> None:
    """Run the self-check suite on a rig; extra arguments after -- go to pytest."""
    import pytest

    from hil.config import load_rig
    from hil.rig import default_rig_path

    rig_path = rig or default_rig_path()
    try:
        load_rig(rig_path)  # fail fast, before pytest starts, with the field path
    except ConfigError as e:
        raise _fail(EXIT_USAGE, str(e)) from None
    if firmware is not None and not firmware.is_file():
        raise _fail(EXIT_USAGE, f"--firmware: file not found: {firmware}")
    if features is None:
        from hil.suite import FEATURES

        features = Path("features") if Path("features").is_dir() else FEATURES
    if not features.is_dir():
        raise _fail(EXIT_USAGE, f"--features: no such folder: {features}")
    results = reports / "allure-results"
    summary_path = reports / "summary.json"
    summary_path.unlink(missing_ok=True)
    args = [
        str(features),
        "-p",
        "no:terminal",
        "-p",
        "no:cacheprovider",
        "--hil-progress",
        "-o",
        "hil_features=true",
        f"--rig={rig_path}",
        f"--alluredir={results}",
        "--clean-alluredir",
        f"--junitxml={reports / 'junit.xml'}",
        f"--hil-summary={summary_path}",
        *([f"--firmware={firmware}"] if firmware is not None else []),
        *ctx.args,
    ]
    pytest_code = int(pytest.main(args))
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        summary = {}
    code = exit_code_for(summary, pytest_code)
    for error in summary.get("errors", []):
        err.print(f"hil: {error}", markup=False)
    if pytest_code == 5:
        err.print(f"hil: no scenarios collected from {features}", markup=False)
    if summary and html and code != EXIT_INTERRUPTED:
        from hil.htmlreport import ReportError, generate_html

        try:
            index = generate_html(results, reports / "html")
            out.print(f"HTML report: {index}")
        except ReportError as e:
            err.print(f"hil: HTML report not generated: {e}", markup=False)
    out.print(f"summary: {summary_path}   junit: {reports / 'junit.xml'}   allure: {results}")
    raise typer.Exit(code)


@app.command()
def report(
    results: Annotated[Path, typer.Option(help="allure results folder")] = Path(
        "reports/allure-results"
    ),
    output: Annotated[Path, typer.Option("--out", help="HTML output folder")] = Path(
        "reports/html"
    ),
    install_tools: Annotated[
        bool,
        typer.Option(
            "--install-tools",
            help="install the report generator (Allure 2, from npm) into the per-user "
            "tools folder and exit",
        ),
    ] = False,
) -> None:
    """Generate the single-file HTML report from allure results (works offline)."""
    from hil.htmlreport import ReportError, generate_html, install_report_tools, user_tools_dir

    if install_tools:
        try:
            allure = install_report_tools(user_tools_dir())
        except ReportError as e:
            raise _fail(EXIT_RIG_FAULT, str(e)) from None
        out.print(f"report tools installed: {allure}", markup=False)
        return
    if not results.is_dir():
        raise _fail(EXIT_USAGE, f"--results: no such folder: {results}")
    try:
        index = generate_html(results, output)
    except ReportError as e:
        raise _fail(EXIT_RIG_FAULT, str(e)) from None
    out.print(f"HTML report: {index}")


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
    out.print(f"rig '{the_rig.name}' from {rig_path}")
    boot_problem = ""
    try:
        terminal = the_rig.start()
        try:
            # Wait for the boot so device.info reports the verified firmware, not
            # "booting"; a terminal that cannot boot is reported, not hidden.
            terminal.ensure_idle()
        except DutError as e:
            boot_problem = str(e)
        lines = the_rig.preflight()
    except HilError as e:
        the_rig.close()
        raise _fail(EXIT_RIG_FAULT, f"rig did not start: {e}") from None
    the_rig.close()
    if boot_problem:
        lines.append(PreflightLine("boot", the_rig.config.dut.driver, False, boot_problem))
    for line in lines:
        mark = "[green]ok  [/]" if line.ok else "[red]FAIL[/]"
        out.print(f"{mark} {line.instrument:<10} {line.driver:<10} ", end="")
        out.print(line.detail, markup=False)
    if not all(line.ok for line in lines if line.instrument != "boot"):
        raise typer.Exit(EXIT_RIG_FAULT)
    raise typer.Exit(EXIT_DUT_FAILED if boot_problem else EXIT_OK)


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
            "open the port with e.g. 'python -m serial.tools.miniterm "
            f"{process.port_path} 115200'; Ctrl-C powers the terminal off.",
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


def main() -> None:
    try:
        app()
    except ConfigError as e:
        err.print(f"hil: {e}", markup=False)
        sys.exit(EXIT_USAGE)
    except HilError as e:
        err.print(f"hil: rig fault: {e}", markup=False)
        sys.exit(EXIT_RIG_FAULT)
