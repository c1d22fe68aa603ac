"""Steps that run one self-check item on command and judge it, in every area's features.

One wording: the terminal runs its "item" self-check; the "item" self-check passes,
fails with code "X" or warns with code "X"; the idle screen shows the fault or the
warning with its documented text; the system log holds the code from that run; the
figures it reports agree with the rig's own readings. Codes, screen texts and limits
are judged against the documented contract (``hil.contract.selfcheck``), never against
the terminal's own tables. What a run produced is the ``item_check`` fixture of the
steps after it.

The idle screen is compared exactly: the rig works out from the results the terminal
reported since its last boot (its ``selfcheck.item`` events) what the documented idle
screen must show, line for line, and compares. A screen that keeps a fault the item
no longer reports, or adds or drops a line, fails.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_bdd import given, then, when

from hil import reporting
from hil.contract.selfcheck import (
    FIRMWARE_VERSION_PATTERN,
    IDLE_SCREEN,
    ITEM_NAMES,
    MEMORY_FLASH_CAPACITY_MIB,
    MEMORY_MAX_RSS_MIB,
    MEMORY_MIN_FLASH_FREE_MIB,
    PERFORMANCE_MAX_CPU_PCT,
    PERFORMANCE_MAX_LOAD_PER_CPU,
    POWER_MIN_BATTERY_PCT,
    POWER_MIN_SUPPLY_V,
    ItemCode,
    ProblemStatus,
    codes_of,
    idle_screen_lines,
    item_code,
)
from hil.errors import DutError, RigError
from hil.instruments.faultlines import FaultLines
from hil.procstat import cpu_demand_s
from hil.rig import Rig
from hil.steps.common import RigCursor, absent_codes, rig_cursor
from hil.steps.phrases import StepValueError, phrase
from hil.terminal import (
    BootStarted,
    ItemChecked,
    ItemStatus,
    SelfCheckItemResult,
    Terminal,
    as_report,
)
from hil.terminal.screensource import ScreenSource, same_lines

_MIB = 1024 * 1024
#: The performance item measures CPU over this much wall time (documented).
CPU_WINDOW_S = 0.25
#: How far the rig's own RSS reading of the terminal process may be from the item's:
#: the two are taken a moment apart.
RSS_TOLERANCE_BYTES = 32 * _MIB
RSS_TOLERANCE_RATIO = 0.10
#: How far the item's 1-minute load average may be from the rig's, read a moment later
#: (the kernel updates it every 5 s; one update moves it by a few tenths at most).
LOAD_TOLERANCE = 1.0


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


def documented_problem(code: str) -> ItemCode:
    """The contract's entry for a documented fail or warn code of any item."""
    entry = item_code(code)
    if entry is None:
        raise StepValueError(f"{code} is not a documented self-check code")
    return entry


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


# --- the idle screen ------------------------------------------------------------------


def latest_results(terminal: Terminal) -> dict[str, SelfCheckItemResult]:
    """The latest result of each item the terminal reported since its last boot."""
    boots = terminal.find_events(BootStarted)
    since = boots[-1].position if boots else 0
    return {
        event.result.item: event.result for event in terminal.find_events(ItemChecked, since=since)
    }


def expected_idle_lines(terminal: Terminal) -> list[str]:
    """The idle screen the documentation prescribes for what the terminal reported."""
    tid = terminal.config_get("terminal_id")
    latest = latest_results(terminal).values()
    return idle_screen_lines(
        tid if isinstance(tid, str) else "", [(r.item, r.status, r.code) for r in latest]
    )


def check_idle_screen_exactly(terminal: Terminal, source: ScreenSource) -> list[str]:
    """The display shows the idle screen, line for line as documented; returns it.
    ``source`` is where the screen is read: the test port, or the rig's camera."""
    screen = source.current()
    expected = expected_idle_lines(terminal)
    reporting.attach_json(
        "idle screen", {"shown": as_report(screen), "expected": expected, "read by": source.kind}
    )
    assert screen.screen == IDLE_SCREEN, (
        f"display shows {screen.screen!r}, not idle (read by the {source.kind})"
    )
    assert same_lines(source, screen.lines, expected), (
        f"idle screen {list(screen.lines)} differs from the documented {expected} "
        f"(read by the {source.kind})"
    )
    return expected


def check_idle_screen(terminal: Terminal, entry: ItemCode, source: ScreenSource) -> None:
    """The item's latest result is ``entry``'s code, and the idle screen shows exactly
    what the documentation prescribes, "CODE text" and the summary line included."""
    latest = latest_results(terminal).get(entry.item)
    assert latest is not None and latest.code == entry.code, (
        f"the terminal's latest {entry.item} result is "
        f"{'none' if latest is None else latest.code}, not {entry.code}"
    )
    lines = check_idle_screen_exactly(terminal, source)
    assert entry.screen_line in lines, f"documented idle screen lacks {entry.screen_line!r}"


# --- the log --------------------------------------------------------------------------


def check_logged(terminal: Terminal, check: ItemCheck) -> None:
    """The run's failure or warning is in the log as documented: its code, level error
    (fail) or warn, message "<item>: <the item's message>", written by that run."""
    result = check.result
    assert result.status != "pass", f"{result.item} passed: nothing to log"
    since = check.before.log_from or 0
    entries = terminal.log(since=since, limit=1000)
    level = "error" if result.status == "fail" else "warn"
    wanted = f"{result.item}: {result.message}"
    matching = [e for e in entries if e.code == result.code]
    with reporting.action("check the log entry", code=result.code, since_seq=since):
        assert matching, (
            f"the system log holds no {result.code} entry written since seq {since} "
            f"(codes since: {sorted({e.code for e in entries})})"
        )
        exact = [e for e in matching if e.level == level and e.message == wanted]
        assert exact, (
            f"log entry {result.code} is level {matching[-1].level!r} message "
            f"{matching[-1].message!r}; documented: {level!r} {wanted!r}"
        )


# --- figures the item reports, against the rig's own readings ---------------------------


def _terminal_pid(hil_rig: Rig) -> int | None:
    """The process id of a terminal the rig runs as a local process (sim, command)."""
    try:
        dut = hil_rig.instrument("dut")
    except RigError:
        return None
    pid = getattr(getattr(dut, "process", None), "pid", None)
    return pid if isinstance(pid, int) else None


def process_rss_bytes(pid: int) -> int:
    """Resident memory of a local process, read by the rig from /proc."""
    with open(f"/proc/{pid}/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _process_cpu_s(pid: int) -> float:
    demand = cpu_demand_s(pid)
    if demand is None:
        raise RigError(f"cannot read the CPU demand of the terminal process {pid} (/proc)")
    return demand


def process_cpu_pct(pid: int, window_s: float) -> float:
    """CPU a local process asked for over ``window_s`` of wall time (ran or waited to
    run), in % of one CPU: the terminal's own load, whatever else loads the machine."""
    before, started = _process_cpu_s(pid), time.monotonic()
    time.sleep(window_s)
    return 100.0 * (_process_cpu_s(pid) - before) / (time.monotonic() - started)


def _number(details: Mapping[str, Any], name: str, item: str) -> float:
    value = details.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DutError(f"{item} details carry no number '{name}': {dict(details)}")
    return float(value)


@dataclass(frozen=True)
class Figures:
    """What the rig knows independently while judging an item's figures."""

    lines: Mapping[str, bool] | None
    pid: int | None
    image_sha256: str | None
    image_version: str | None

    def line(self, name: str) -> bool:
        return bool(self.lines and self.lines.get(name))


def _judge_power(result: SelfCheckItemResult, rig: Figures) -> list[str]:
    d = result.details
    wrong = []
    supply, battery = _number(d, "supply_v", "power"), _number(d, "battery_pct", "power")
    source = d.get("source")
    if rig.lines is not None and source != "fault lines":
        wrong.append(f"source {source!r} although the rig wires fault lines")
    if rig.lines is None and source != "nominal (no fault-line channel)":
        wrong.append(f"source {source!r} although the rig wires no fault lines")
    if rig.line("supply_low") != (supply < POWER_MIN_SUPPLY_V):
        wrong.append(f"supply {supply} V while supply_low is {rig.line('supply_low')}")
    if rig.line("battery_low") != (battery < POWER_MIN_BATTERY_PCT):
        wrong.append(f"battery {battery}% while battery_low is {rig.line('battery_low')}")
    return wrong


def _judge_memory(result: SelfCheckItemResult, rig: Figures) -> list[str]:
    d = result.details
    wrong = []
    free, rss = _number(d, "flash_free_bytes", "memory"), _number(d, "rss_bytes", "memory")
    at_boot, now = d.get("image_sha256_at_boot"), d.get("image_sha256_now")
    if rig.image_sha256 is not None and at_boot != rig.image_sha256:
        wrong.append(f"image verified at boot {at_boot}, the rig flashed {rig.image_sha256}")
    if rig.line("flash_corrupt") == (now == at_boot):
        wrong.append(
            f"image read now {now} vs at boot {at_boot} with flash_corrupt "
            f"{rig.line('flash_corrupt')}"
        )
    if rig.line("flash_full") != (free < MEMORY_MIN_FLASH_FREE_MIB * _MIB):
        wrong.append(
            f"flash free {free / _MIB:.1f} MiB while flash_full is {rig.line('flash_full')}"
        )
    if free > MEMORY_FLASH_CAPACITY_MIB * _MIB:
        wrong.append(
            f"flash free {free / _MIB:.1f} MiB exceeds the "
            f"{MEMORY_FLASH_CAPACITY_MIB} MiB partition"
        )
    if rig.line("ram_pressure") != (rss > MEMORY_MAX_RSS_MIB * _MIB):
        wrong.append(f"RSS {rss / _MIB:.1f} MiB while ram_pressure is {rig.line('ram_pressure')}")
    if rig.pid is not None:
        seen = process_rss_bytes(rig.pid)
        measurement = reporting.measure("terminal RSS read by the rig", seen / _MIB, "MiB")
        tolerance = max(RSS_TOLERANCE_BYTES, RSS_TOLERANCE_RATIO * seen)
        if abs(seen - rss) > tolerance:
            wrong.append(f"RSS {rss / _MIB:.1f} MiB, the rig reads {measurement.value:.1f} MiB")
    return wrong


def _judge_tamper(result: SelfCheckItemResult, rig: Figures) -> list[str]:
    switch = result.details.get("switch")
    expected = "open" if rig.line("tamper") else "closed"
    return [] if switch == expected else [f"switch {switch!r}, the rig's jig holds it {expected}"]


def _judge_performance(result: SelfCheckItemResult, rig: Figures) -> list[str]:
    d = result.details
    wrong = []
    cpu, window = _number(d, "cpu_pct", "performance"), _number(d, "window_s", "performance")
    load = _number(d, "load_per_cpu", "performance")
    if window < CPU_WINDOW_S - 0.01:
        wrong.append(f"CPU measured over {window} s, documented {CPU_WINDOW_S} s")
    if rig.line("cpu_load") != (cpu > PERFORMANCE_MAX_CPU_PCT):
        wrong.append(f"CPU {cpu}% while cpu_load is {rig.line('cpu_load')}")
    if rig.line("system_load") != (load > PERFORMANCE_MAX_LOAD_PER_CPU):
        wrong.append(f"load {load} per CPU while system_load is {rig.line('system_load')}")
    if rig.pid is not None:
        own = process_cpu_pct(rig.pid, CPU_WINDOW_S)
        reporting.measure("terminal CPU read by the rig", own, "%")
        if rig.line("cpu_load") != (own > PERFORMANCE_MAX_CPU_PCT):
            wrong.append(
                f"the rig reads the terminal's CPU at {own:.0f}% with cpu_load "
                f"{rig.line('cpu_load')}"
            )
        if not rig.line("system_load"):
            # The terminal's run queue, as the rig reads it over its own window.
            mine = own / 100.0 / _number(d, "cpu_count", "performance")
            if abs(load - mine) > LOAD_TOLERANCE:
                wrong.append(f"load {load} per CPU, the rig reads {mine:.2f}")
    return wrong


def _judge_firmware(result: SelfCheckItemResult, rig: Figures) -> list[str]:
    d = result.details
    wrong = []
    if rig.image_version is not None and d.get("version") != rig.image_version:
        wrong.append(f"version {d.get('version')!r}, the rig flashed {rig.image_version!r}")
    if rig.image_sha256 is not None and d.get("sha256") != rig.image_sha256:
        wrong.append(f"sha256 {d.get('sha256')}, the rig's image is {rig.image_sha256}")
    if d.get("signature_verified") is not True:
        wrong.append("signature not reported verified although the terminal booted it")
    return wrong


def _judge_logs(result: SelfCheckItemResult, rig: Figures) -> list[str]:
    d = result.details
    if result.status != "pass":
        return []
    entries = _number(d, "entries", "logs")
    wrong = [] if entries >= 1 else ["no log entries reported (the boot alone writes some)"]
    if d.get("entries_with_pan"):
        wrong.append(f"passed while listing entries with a PAN: {d.get('entries_with_pan')}")
    return wrong


_JUDGES = {
    "power": _judge_power,
    "memory": _judge_memory,
    "tamper": _judge_tamper,
    "performance": _judge_performance,
    "firmware": _judge_firmware,
    "logs": _judge_logs,
}


def rig_figures(hil_rig: Rig) -> Figures:
    lines: Mapping[str, bool] | None = None
    if "faultlines" in hil_rig.capabilities:
        instrument = hil_rig.instrument("faultlines")
        if isinstance(instrument, FaultLines):
            lines = instrument.state()
    identity = hil_rig.expected_identity()
    return Figures(
        lines=lines,
        pid=_terminal_pid(hil_rig),
        image_sha256=identity.firmware_sha256,
        image_version=identity.firmware_version,
    )


# --- steps ------------------------------------------------------------------------------


@given(phrase('the terminal runs its "{item:Item}" self-check'), target_fixture="item_check")
@when(phrase('the terminal runs its "{item:Item}" self-check'), target_fixture="item_check")
def run_item(terminal: Terminal, hil_rig: Rig, item: str) -> ItemCheck:
    """Run one self-check item on command and keep its result for the steps after."""
    before = rig_cursor(terminal, hil_rig, with_log=True)
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


@then(phrase('the self-check message is exactly "{text:Text}"'))
def message_is(item_check: ItemCheck, text: str) -> None:
    """The item run last said exactly this (the documented message, its reason filled in)."""
    message = item_check.result.message
    assert message == text, f"{item_check.result.item} said {message!r}, documented {text!r}"


@then(phrase('the idle screen shows the {kind:ProblemKind} "{code:Code}" with its documented text'))
def idle_screen_shows(
    terminal: Terminal, screen_source: ScreenSource, kind: ProblemStatus, code: str
) -> None:
    """The idle screen shows exactly the documented screen for the terminal's latest
    results: "CODE text" of this code, the code in the summary of faults (a failed item)
    or warnings (a warned item), and nothing else that was not reported."""
    check_idle_screen(terminal, documented(code, kind), screen_source)


@then(phrase("the idle screen shows no fault the rig does not expect"))
def idle_screen_clear(terminal: Terminal, hil_rig: Rig, screen_source: ScreenSource) -> None:
    """The idle screen is exactly the documented one and lists no fault or warning
    beyond what this rig makes unavoidable: the absent codes of items whose channel it
    does not wire, E_FW_VERSION for an image whose version is out of format."""
    allowed = {code for status, code in expected_outcomes(hil_rig).values() if status != "pass"}
    check_idle_screen_exactly(terminal, screen_source)
    left = {
        r.item: r.code
        for r in latest_results(terminal).values()
        if r.status != "pass" and r.code not in allowed
    }
    assert not left, f"faults still reported and shown after the rig released them: {left}"


@then(phrase('the system log holds the code "{code:Code}" from that self-check'))
def log_holds_code(terminal: Terminal, item_check: ItemCheck, code: str) -> None:
    """The log holds this code, written by the run just made, at its documented level
    (error for a failure, warn for a warning) with message "<item>: <its message>"."""
    documented_problem(code)
    assert item_check.result.code == code, f"the run reported {item_check.result.code}, not {code}"
    check_logged(terminal, item_check)


@then(phrase("the self-check's figures agree with the rig's own readings"))
def figures_agree(item_check: ItemCheck, hil_rig: Rig) -> None:
    """What the item measured agrees with what the rig provoked (its fault lines) and
    with what it reads itself: the image it flashed, and for a terminal it runs as a
    local process the process's memory, CPU and the host's load."""
    result = item_check.result
    judge = _JUDGES.get(result.item)
    if judge is None:
        raise StepValueError(
            f"the rig has no reading to compare the {result.item} item's figures with "
            f"(it has for: {', '.join(_JUDGES)})"
        )
    rig = rig_figures(hil_rig)
    with reporting.action(f"compare {result.item} figures", details=dict(result.details)):
        wrong = judge(result, rig)
        assert not wrong, f"{result.item} figures disagree: " + "; ".join(wrong)


@dataclass(frozen=True)
class FullCheck:
    """A self-check of every item run on command, and where the rig stood before it."""

    results: tuple[SelfCheckItemResult, ...]
    before: RigCursor


@when(phrase("the terminal runs its full self-check"), target_fixture="full_check")
def run_full_selfcheck(terminal: Terminal, hil_rig: Rig) -> FullCheck:
    """Run every self-check item on command and keep the results for the steps after."""
    before = rig_cursor(terminal, hil_rig, with_log=True)
    run = terminal.run_selfcheck()
    reporting.attach_json("self-check", as_report(run))
    return FullCheck(run.results, before)


def expected_outcomes(hil_rig: Rig) -> dict[str, tuple[ItemStatus, str]]:
    """What each item must report on this rig when nothing is provoked: its absent code
    without its channel; E_FW_VERSION for an image whose version is not in the
    documented format; otherwise a pass."""
    outcomes: dict[str, tuple[ItemStatus, str]] = dict.fromkeys(ITEM_NAMES, ("pass", "OK"))
    for item, code in absent_codes(hil_rig).items():
        outcomes[item] = ("fail", code)
    version = hil_rig.expected_identity().firmware_version
    if version is not None and not re.fullmatch(FIRMWARE_VERSION_PATTERN, version):
        outcomes["firmware"] = ("fail", "E_FW_VERSION")
    return outcomes


@then(
    phrase(
        "every item the rig can exercise passes, and every item whose channel it lacks "
        "fails with its documented code and a log entry"
    )
)
def full_check_truthful(terminal: Terminal, hil_rig: Rig, full_check: FullCheck) -> None:
    """Each documented item reported once, in order: a pass where the rig wires what it
    needs (or it needs nothing), else its documented absent code, logged by that run."""
    seen = [result.item for result in full_check.results]
    assert seen == list(ITEM_NAMES), f"self-check items {seen}, documented {list(ITEM_NAMES)}"
    expected = expected_outcomes(hil_rig)
    wrong = []
    for result in full_check.results:
        if (result.status, result.code) != expected[result.item]:
            wrong.append(
                f"{result.item}: {result.status} {result.code} ({result.message}); "
                f"expected {' '.join(expected[result.item])}"
            )
    with reporting.action("check every item", missing_channels=absent_codes(hil_rig), wrong=wrong):
        assert not wrong, "self-check items not as documented for this rig: " + "; ".join(wrong)
    for result in full_check.results:
        if result.status != "pass":
            check_logged(terminal, ItemCheck(result, 0.0, full_check.before))


@then(phrase('the "firmware" self-check reports the image the rig flashed'))
def firmware_reports_image(item_check: ItemCheck, hil_rig: Rig) -> None:
    """The firmware item's verdict follows the image the rig flashed: a pass naming its
    version and SHA-256 when its version has the documented format, else E_FW_VERSION."""
    identity = hil_rig.expected_identity()
    if identity.firmware_version is None or identity.firmware_sha256 is None:
        raise StepValueError("the rig names no firmware image to compare the item with")
    judge_item(item_check, "firmware", *expected_outcomes(hil_rig)["firmware"])
    wrong = _judge_firmware(item_check.result, rig_figures(hil_rig))
    assert not wrong, "firmware figures disagree: " + "; ".join(wrong)
