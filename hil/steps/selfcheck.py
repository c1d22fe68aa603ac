"""Steps that run one self-check item on command and judge it, in every area's features.

One wording: the terminal runs its "item" self-check; the "item" self-check passes,
fails with code "X" or warns with code "X"; the idle screen shows the fault or the
warning with its documented text. Codes and screen texts are judged against the
documented contract (``hil.contract.selfcheck``), never against the terminal's own
tables. What a run produced is the ``item_check`` fixture of the steps after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.selfcheck import (
    IDLE_SCREEN,
    IDLE_SUMMARY_PREFIX,
    ItemCode,
    ProblemStatus,
    codes_of,
    item_code,
)
from hil.rig import Rig
from hil.steps.common import RigCursor, rig_cursor
from hil.steps.phrases import StepValueError, phrase
from hil.terminal import ItemStatus, SelfCheckItemResult, Terminal, as_report


@dataclass(frozen=True)
class ItemCheck:
    """One self-check item run on command, and where the rig stood before it."""

    result: SelfCheckItemResult
    #: wall time of the run as the rig saw it, seconds
    wall_s: float
    before: RigCursor


def documented(code: str, status: ProblemStatus, item: str | None = None) -> ItemCode:
    """The contract's entry for ``code`` as a ``status`` (of ``item``, when given); a step
    that names a code the documentation does not give is a mistake in the feature."""
    entry = item_code(code)
    if entry is not None and entry.status == status and item in (None, entry.item):
        return entry
    owner = f"the {item} self-check item" if item is not None else "any self-check item"
    known = ", ".join(c.code for c in codes_of(item) if c.status == status) if item else ""
    raise StepValueError(
        f"{code} is not a documented {status} code of {owner}"
        + (f" (documented: {known or 'none'})" if item is not None else "")
    )


def judge_item(check: ItemCheck, item: str, status: ItemStatus, code: str) -> None:
    """The item run last is ``item`` and reported ``status`` with ``code``."""
    result = check.result
    title = f"check {item} passed" if status == "pass" else f"check {item} {status}s with {code}"
    with reporting.action(title, reported=f"{result.status} {result.code}"):
        assert result.item == item, f"last item run was {result.item}, not {item}"
        assert (result.status, result.code) == (status, code), (
            f"{item} reported {result.status} {result.code} ({result.message}); "
            f"expected {status} {code}"
        )


def check_idle_screen(terminal: Terminal, entry: ItemCode) -> None:
    """The idle screen shows the code with its documented text, and lists the code in
    its summary of faults (or warnings)."""
    screen = terminal.display()
    reporting.attach_json("display now", as_report(screen))
    assert screen.screen == IDLE_SCREEN, f"display shows {screen.screen!r}, not idle"
    assert entry.screen_line in screen.lines, (
        f"idle screen lacks {entry.screen_line!r}: {list(screen.lines)}"
    )
    prefix = IDLE_SUMMARY_PREFIX[entry.status]
    summaries = [line[len(prefix) :] for line in screen.lines if line.startswith(prefix)]
    listed = [code.strip() for summary in summaries for code in summary.split(",")]
    assert entry.code in listed, (
        f"idle screen's '{prefix}' summary lacks {entry.code}: {list(screen.lines)}"
    )


@given(phrase('the terminal runs its "{item:Item}" self-check'), target_fixture="item_check")
@when(phrase('the terminal runs its "{item:Item}" self-check'), target_fixture="item_check")
def run_item(terminal: Terminal, hil_rig: Rig, item: str) -> ItemCheck:
    """Run one self-check item on command and keep its result for the steps after."""
    before = rig_cursor(terminal, hil_rig)
    started = time.monotonic()
    result = terminal.run_item(item)
    wall_s = time.monotonic() - started
    reporting.attach_json(f"self-check {item}", as_report(result))
    return ItemCheck(result, wall_s, before)


@given(phrase('the "{item:Item}" self-check passes'))
@then(phrase('the "{item:Item}" self-check passes'))
def item_passes(item_check: ItemCheck, item: str) -> None:
    """The item run last passed (code OK)."""
    judge_item(item_check, item, "pass", "OK")


@given(phrase('the "{item:Item}" self-check fails with code "{code:Code}"'))
@then(phrase('the "{item:Item}" self-check fails with code "{code:Code}"'))
def item_fails(item_check: ItemCheck, item: str, code: str) -> None:
    """The item run last failed with this documented code."""
    documented(code, "fail", item)
    judge_item(item_check, item, "fail", code)


@given(phrase('the "{item:Item}" self-check warns with code "{code:Code}"'))
@then(phrase('the "{item:Item}" self-check warns with code "{code:Code}"'))
def item_warns(item_check: ItemCheck, item: str, code: str) -> None:
    """The item run last warned with this documented code."""
    documented(code, "warn", item)
    judge_item(item_check, item, "warn", code)


@then(phrase('the idle screen shows the {kind:ProblemKind} "{code:Code}" with its documented text'))
def idle_screen_shows(terminal: Terminal, kind: ProblemStatus, code: str) -> None:
    """The idle screen shows "CODE text" as documented and lists the code among its
    faults (a failed item) or warnings (a warned item)."""
    check_idle_screen(terminal, documented(code, kind))
