"""hil run's live progress in a log (no terminal, no colour): a line that fits is
written as it is, without rich's rendering; it must read exactly as rich writes it, and
anything rich would change (a fold, a control character) still goes through rich."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text

from hil.progress import LiveProgress


class _PluginManager:
    def getplugin(self, name: str) -> None:
        return None


class _Config:
    pluginmanager = _PluginManager()


def _progress(monkeypatch: pytest.MonkeyPatch) -> tuple[LiveProgress, io.StringIO]:
    out = io.StringIO()  # not a terminal: the width is fixed, and no colour
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("COLUMNS", raising=False)
    return LiveProgress(_Config(), summary=None), out  # type: ignore[arg-type]


def _as_rich_writes(line: Any) -> str:
    out = io.StringIO()
    Console(file=out, highlight=False, width=140).print(line)
    return out.getvalue()


LINES = [
    Text.assemble(("[3/110] ", "bold cyan"), ("Per-scenario cost: ", "bold"), "Row 3"),
    Text("      When the rig reads the terminal's device info  ", style="dim"),
    Text.assemble(("=> ", "bold"), ("FAILED", "bold red"), " in 0.12 s: [red]not markup[/red]"),
    Text("漢字 are two cells wide ✓ 🎉"),
    Text(""),
    Text("x" * 140),
    Text("a long reason " * 20),  # folded by rich
    Text("a tab\there and a bell \a"),  # rich expands and strips them
    Text("two\nlines"),
]


@pytest.mark.parametrize("line", LINES, ids=range(len(LINES)))
def test_a_progress_line_reads_as_rich_writes_it(
    monkeypatch: pytest.MonkeyPatch, line: Text
) -> None:
    progress, out = _progress(monkeypatch)
    progress._print(line)
    assert out.getvalue() == _as_rich_writes(line)


def test_only_plain_lines_that_fit_skip_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    progress, out = _progress(monkeypatch)
    rendered: list[Any] = []
    monkeypatch.setattr(progress._console, "print", lambda *r, **k: rendered.append(r))
    progress._print(Text("fits"))
    progress._print(Text("y" * 141))
    progress._print(Text("tab\there"))
    assert out.getvalue() == "fits\n"
    assert [r[0].plain for r in rendered] == ["y" * 141, "tab\there"]
