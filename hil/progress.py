"""Live progress for ``hil run``: scenario N of M, the current step, then a summary table.

With ``--repeat`` each repeat is announced as its own run ("repeat 2 of 5") and the
table has one row per scenario with its figure ("failed 1 of 5").

Registered by the plugin when ``--hil-progress`` is given; pytest's own terminal
reporter is switched off in that mode so the two do not fight over the screen.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hil.masking import mask_text
from hil.repeats import repeat_of

if TYPE_CHECKING:
    from hil.rigset import RigSetSummary
    from hil.summary import RunSummary

_STYLE = {
    "passed": "green",
    "failed": "red",
    "broken": "magenta",
    "skipped": "yellow",
    "interrupted": "yellow",
    "not run": "yellow",
}


class LiveProgress:
    """pytest hooks printing one line per scenario start, step and result."""

    def __init__(self, config: pytest.Config, summary: RunSummary) -> None:
        self.summary = summary
        # Logs and CI have no terminal width; 80 columns would fold every scenario name.
        width = None if sys.stdout.isatty() else 140
        self._console = Console(file=sys.stdout, highlight=False, width=width)
        # Steps run while pytest captures output; print around the capture, as
        # pytest's own live logging does, so progress is live and not swallowed.
        self._capture = config.pluginmanager.getplugin("capturemanager")
        # No colour and a fixed width (a log, CI): a line that fits is written as it is,
        # which is what rich writes for it, without rich's rendering (a fifth of a
        # millisecond a line, three lines a scenario).
        plain = not self._console.is_terminal and self._console.color_system is None
        self._plain_width = self._console.width if plain else None
        self.index = 0
        self.started = time.monotonic()

    def _print(self, *renderables: Any) -> None:
        if self._capture is None:
            self._write(renderables)
            return
        with self._capture.global_and_fixture_disabled():
            self._write(renderables)
            self._console.file.flush()

    def _write(self, renderables: tuple[Any, ...]) -> None:
        if self._plain_width is not None and len(renderables) == 1:
            (line,) = renderables
            if isinstance(line, Text) and line.end == "\n":
                text = line.plain
                if text.isprintable() and cell_len(text) <= self._plain_width:
                    self._console.file.write(text + "\n")
                    return
        self._console.print(*renderables)

    @pytest.hookimpl(optionalhook=True)  # hil's own hook (hil.plugin.HilHookSpecs)
    def pytest_hil_run_started(self, session: pytest.Session) -> None:
        # Said when the run starts, not when collection ends: a run stopped by a usage
        # error (an unknown step or tag) has no scenarios to announce.
        runs = len(session.items)
        what = f"{runs} scenario(s)"
        if self.summary.repeat > 1:
            scenarios = len(self.summary.finished_results())
            what = f"{scenarios} scenario(s), {runs} runs: each {self.summary.repeat} times"
        self._print(Text.assemble(("pos-hil", "bold"), f": run {self.summary.run_id}: {what}"))

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.index += 1
        self._current = nodeid

    def pytest_bdd_before_scenario(self, request: Any, feature: Any, scenario: Any) -> None:
        total = self.summary.total or "?"
        repeat = repeat_of(request.node)
        line = Text.assemble(
            (f"[{self.index}/{total}] ", "bold cyan"),
            (f"{feature.name}: ", "bold"),
            mask_text(scenario.name),
        )
        if repeat is not None:
            line.append(f" (repeat {repeat!r})", style="cyan")
        self._print(line)

    def pytest_bdd_before_step(
        self, request: Any, feature: Any, scenario: Any, step: Any, step_func: Any
    ) -> None:
        self._print(Text(f"      {step.keyword} {mask_text(step.name)}", style="dim"))

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        entry = self.summary.results.get(nodeid)
        if entry is None:
            return
        self._print(Text.assemble(("      ", "bold"), _outcome(entry)))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.summary.status == "not started":
            return  # hil run says why in one line; an empty table would say nothing
        table = Table(title="Self-check results", show_lines=False)
        results = self.summary.finished_results()
        # A run over several rigs (hil.rigset) says which rig ran each scenario.
        on_rigs = any("rig" in entry for entry in results)
        table.add_column("#", justify="right")
        if on_rigs:
            table.add_column("Rig")
        table.add_column("Feature")
        table.add_column("Scenario")
        table.add_column("Result")
        repeated = self.summary.repeat > 1
        if repeated:
            table.add_column("Repeats")
        table.add_column("Time", justify="right")
        table.add_column("Reason", overflow="fold")
        for number, entry in enumerate(results, start=1):
            outcome = entry["outcome"]
            # Text, never a str: rich would read "[...]" in a reason as markup and eat it.
            cells: list[str | Text] = [
                str(number),
                *([Text(entry.get("rig", ""))] if on_rigs else []),
                Text(entry["feature"]),
                Text(entry["scenario"]),
                Text(outcome, style=_STYLE.get(outcome, "white")),
            ]
            if repeated:
                failed = entry["failed_repeats"]
                figure = f"failed {failed} of {entry['repeat_count']}"
                cells.append(Text(figure, style="red" if failed else "green"))
            table.add_row(
                *cells,
                f"{entry['duration_s']:.2f} s",
                Text(entry["message"]),
            )
        self._print(table)
        counts: dict[str, int] = {}
        for entry in results:
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        shown = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing ran"
        if repeated and results:
            shown += f" ({self.summary.total} runs: each scenario {self.summary.repeat} times)"
        if self.summary.interrupted:
            shown += " (interrupted)"
        line = Text(f"{shown} in {time.monotonic() - self.started:.1f} s")
        if self.summary.status not in ("finished", "not started"):
            line.append(f"; run {self.summary.run_id} is INCOMPLETE", style="bold yellow")
        self._print(line)


class RigSetProgress(LiveProgress):
    """``hil run --rigs``: the controller's progress, one line per scenario as a rig
    finishes it (the workers print nothing; their steps are in the reports)."""

    def __init__(self, config: pytest.Config, summary: RigSetSummary) -> None:
        super().__init__(config, summary)
        self.rigs = summary

    @pytest.hookimpl(optionalhook=True)
    def pytest_hil_run_started(self, session: pytest.Session) -> None:
        labels = ", ".join(slot.label for slot in self.rigs.slots)
        how = "each runs every scenario" if self.rigs.each else "sharing the scenarios"
        self._print(
            Text.assemble(
                ("pos-hil", "bold"),
                f": run {self.rigs.run_id}: {self.rigs.total} scenario run(s) on "
                f"{len(self.rigs.slots)} rigs ({labels}), {how}",
            )
        )

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        """Counted when over: the rigs run several at once."""

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        label = self.rigs.last_rig.get(nodeid, "?")
        entry = self.rigs.results.get(self.rigs.key(nodeid, label))
        self.index += 1
        if entry is None:
            return
        line = Text.assemble(
            (f"[{self.index}/{self.rigs.total or '?'}] ", "bold cyan"),
            (f"{label}: ", "bold"),
            (f"{entry['feature']}: ", "bold"),
            entry["scenario"],
            " ",
            _outcome(entry),
        )
        self._print(line)


def _outcome(entry: dict[str, Any]) -> Text:
    """``=> PASSED in 0.42 s: reason``, as both progress lines end."""
    outcome = entry["outcome"]
    line = Text.assemble(
        ("=> ", "bold"),
        (outcome.upper(), f"bold {_STYLE.get(outcome, 'white')}"),
        f" in {entry['duration_s']:.2f} s",
    )
    if entry["message"]:
        line.append(f": {entry['message']}")
    return line
