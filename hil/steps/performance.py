"""Steps for performance: boot time, sale time, CPU and memory, measured by the rig.

Every figure is the rig's own (``hil.contract.performance`` holds the limits): boot
time on the rig's clock from power-on to the ready event, a sale's wall time from
request to answer, the terminal process's CPU time and resident memory read from
``/proc/PID`` of the process the rig started (``hil.procusage``). What the terminal's
memory and performance items report is compared with those readings. On a rig that did
not start the terminal (a physical terminal) the process cannot be read: the step says
the measurement is unavailable as a rig limitation and the scenario is skipped, never
passed.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from pytest_bdd import then, when

from hil import reporting
from hil.contract.performance import (
    BOOT_TO_READY_MAX_S,
    CPU_TICK_MARGIN_S,
    PROCESS_CPU_MAX_PCT,
    PROCESS_RSS_MAX_MIB,
    RSS_AGREEMENT_MIB,
    SALE_MAX_S,
    SOAK_RSS_GROWTH_MAX_MIB,
    SOAK_SALE_AMOUNT,
    SOAK_SALES,
)
from hil.errors import DutError, RigError
from hil.instruments.dut import ProcessTerminal
from hil.instruments.host import AcquirerHost
from hil.procusage import MIB, UsageSample, cpu_pct, demand_between, sample
from hil.rig import Rig
from hil.steps.common import RigCursor, rig_cursor
from hil.steps.phrases import StepValueError, phrase
from hil.terminal import SaleResult, SelfCheckItemResult, SelfCheckRun, Terminal, as_report

#: The terminal may not claim to have been up longer than the rig saw it powered; this
#: covers the two clocks' reading granularity.
UPTIME_MARGIN_S = 0.05


def terminal_pid(hil_rig: Rig) -> int | None:
    """The pid of the terminal process the rig started, or None when the rig did not
    start it (then nothing of it can be read from /proc)."""
    try:
        dut = hil_rig.instrument("dut")
    except RigError:
        return None
    if not isinstance(dut, ProcessTerminal):
        return None
    pid = dut.process.pid
    if pid is None:
        raise RigError("the terminal process the rig started is not running", instrument="dut")
    return pid


def unavailable(what: str) -> None:
    """Skip, saying why: the rig cannot take this measurement. Not a pass."""
    pytest.skip(
        f"rig limitation: {what} unavailable: this rig did not start the terminal process, "
        "so it cannot read its CPU and memory from /proc (measurement not taken, not a pass)"
    )


def _sample(pid: int | None) -> UsageSample | None:
    return None if pid is None else sample(pid)


# --- boot ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootTiming:
    """One boot as the rig timed it, and the uptime the terminal reported just after."""

    #: power-on to the ready event, rig clock
    to_ready_s: float
    #: the terminal's own uptime, asked right after ready
    uptime_s: float
    #: rig time from the ready event to the uptime answer
    ready_to_answer_s: float


@when(phrase("the rig power-cycles the terminal and times its boot"), target_fixture="boot_timing")
def time_boot(terminal: Terminal) -> BootTiming:
    """Switch the terminal off, on again, and time on the rig's clock from power-on to
    its ready event; then ask its uptime."""
    terminal.power_off()
    record = terminal.power_on()
    ready_at = record.started_at + record.duration_s
    if record.failure is not None or record.ready is None:
        raise DutError(f"the terminal did not boot to ready: {record.summary()}")
    info = terminal.info()
    timing = BootTiming(record.duration_s, info.uptime_ms / 1000, time.monotonic() - ready_at)
    reporting.attach_json("boot timing", as_report(timing))
    return timing


@then(phrase("the boot time measured by the rig is within the performance contract"))
def boot_within_contract(boot_timing: BootTiming, hil_rig: Rig) -> None:
    """Power-on to ready on the rig's clock is within the contract (or the rig's own
    tighter boot limit), and the uptime the terminal reports is no longer than the rig
    saw it powered."""
    limit = min(BOOT_TO_READY_MAX_S, hil_rig.limits.boot_selfcheck_s)
    boot = reporting.measure("boot_to_ready", boot_timing.to_ready_s, "s", high=limit)
    powered = boot_timing.to_ready_s + boot_timing.ready_to_answer_s + UPTIME_MARGIN_S
    uptime = reporting.measure(
        "terminal_uptime_after_boot", boot_timing.uptime_s, "s", high=powered
    )
    assert boot.passed, boot.describe()
    assert uptime.passed, (
        uptime.describe() + " (the terminal reports an uptime longer than the rig saw it powered)"
    )


# --- a sale --------------------------------------------------------------------------------


@then(phrase("the sale's wall time measured by the rig is within the performance contract"))
def sale_time_within(sale: SaleResult, sale_wall_times: dict[str, float]) -> None:
    """The sale was approved and took no longer than the contract's sale time, request
    to answer on the rig's clock."""
    assert sale.outcome == "approved", sale.describe()
    took = reporting.measure("sale_wall_time", sale_wall_times[sale.stan], "s", high=SALE_MAX_S)
    assert took.passed, took.describe()


# --- CPU and memory against the items ------------------------------------------------------


@dataclass(frozen=True)
class UsageCheck:
    """The memory and performance items run on command, with the rig's readings of the
    terminal process just before and just after."""

    run: SelfCheckRun
    before: UsageSample
    after: UsageSample

    def item(self, name: str) -> SelfCheckItemResult:
        result = self.run.result(name)
        if result is None:
            raise DutError(f"the self-check run reported no {name} item")
        return result


@when(
    phrase('the rig reads the terminal process while it runs its "memory" and "performance" items'),
    target_fixture="usage_check",
)
def usage_around_items(terminal: Terminal, hil_rig: Rig) -> UsageCheck:
    """Read the terminal process's CPU time and RSS from /proc, run the memory and
    performance items on command, read again."""
    pid = terminal_pid(hil_rig)
    if pid is None:
        unavailable("CPU and memory of the terminal process")
        raise AssertionError("unreachable")  # pytest.skip raised
    before = sample(pid)
    run = terminal.run_selfcheck(["memory", "performance"])
    after = sample(pid)
    check = UsageCheck(run, before, after)
    reporting.attach_json("process readings and items", as_report(check))
    return check


@then(phrase("the terminal process's CPU and memory measured by the rig are within the contract"))
def usage_within(usage_check: UsageCheck) -> None:
    """CPU over the run (CPU seconds / wall seconds) and RSS, as the rig read them, are
    within the performance contract."""
    cpu = reporting.measure(
        "process_cpu",
        cpu_pct(usage_check.before, usage_check.after),
        "%",
        high=PROCESS_CPU_MAX_PCT,
    )
    rss = reporting.measure(
        "process_rss", usage_check.after.rss_mib, "MiB", high=PROCESS_RSS_MAX_MIB
    )
    assert cpu.passed, cpu.describe()
    assert rss.passed, rss.describe()


def _number(result: SelfCheckItemResult, key: str) -> float:
    value = result.details.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DutError(f"the {result.item} item's details carry no number {key}: {result.details}")
    return float(value)


@then(phrase("the memory item's RSS agrees with the rig's reading"))
def rss_agrees(usage_check: UsageCheck) -> None:
    """The RSS the memory item reports lies between the rig's readings before and after
    the run, give or take the contract's agreement margin."""
    reported = _number(usage_check.item("memory"), "rss_bytes") / MIB
    low = min(usage_check.before.rss_mib, usage_check.after.rss_mib) - RSS_AGREEMENT_MIB
    high = max(usage_check.before.rss_mib, usage_check.after.rss_mib) + RSS_AGREEMENT_MIB
    agreed = reporting.measure("memory_item_rss", reported, "MiB", low=low, high=high)
    assert agreed.passed, agreed.describe() + " (the rig read the process's RSS otherwise)"


@then(phrase("the performance item's CPU time is no more than the rig measured"))
def cpu_time_agrees(usage_check: UsageCheck) -> None:
    """The CPU seconds the performance item says it measured in its window are no more
    than the process asked for over the whole run, as the rig read it (one clock tick of
    reading granularity either end).

    The item reports demand (ran + waited on a run queue: docs/test-port-protocol.md),
    which on a loaded machine is well above the CPU time the process got: the rig's
    reading is the larger of the two it takes, its threads' demand and the process's CPU
    time, each a lower bound of the demand over the run. Against CPU time alone, a
    truthful terminal failed whenever other rigs kept it waiting for a core."""
    before, after = usage_check.before, usage_check.after
    asked = max(after.cpu_s - before.cpu_s, demand_between(before, after) or 0.0)
    claimed = _number(usage_check.item("performance"), "cpu_seconds")
    agreed = reporting.measure(
        "performance_item_cpu_seconds", claimed, "s", high=asked + CPU_TICK_MARGIN_S
    )
    assert agreed.passed, agreed.describe() + " (more CPU than the process asked for)"


# --- the soak ----------------------------------------------------------------------------


@dataclass
class Soak:
    """Sales in a row, with the rig's readings of the terminal process before and after
    (None when the rig cannot read it)."""

    before: RigCursor
    sales: list[SaleResult] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    first: UsageSample | None = None
    last: UsageSample | None = None

    def summary(self) -> dict[str, object]:
        outcomes = Counter(s.outcome for s in self.sales)
        return {
            "sales": len(self.sales),
            "outcomes": dict(outcomes),
            "wall_s_median": round(statistics.median(self.wall_s), 4) if self.wall_s else None,
            "wall_s_max": round(max(self.wall_s), 4) if self.wall_s else None,
            "first": None if self.first is None else as_report(self.first),
            "last": None if self.last is None else as_report(self.last),
        }


def _timed_sale(terminal: Terminal, soak: Soak) -> SaleResult:
    started = time.monotonic()
    sale = terminal.sale(SOAK_SALE_AMOUNT)
    soak.wall_s.append(time.monotonic() - started)
    return sale


@when(
    phrase(
        "the terminal makes {count:Count} sales in a row over the host, the rig reading its memory"
    ),
    target_fixture="soak",
)
def soak_sales(terminal: Terminal, hil_rig: Rig, count: int) -> Soak:
    """Read the terminal process (RSS, CPU time) from /proc, make this many sales of the
    terminal's test card one after another, read it again."""
    pid = terminal_pid(hil_rig)
    soak = Soak(rig_cursor(terminal, hil_rig))
    with reporting.action("soak", sales=count):
        soak.first = _sample(pid)
        for _ in range(count):
            soak.sales.append(_timed_sale(terminal, soak))
        soak.last = _sample(pid)
    reporting.attach_json("soak", soak.summary())
    return soak


@then(phrase("every sale of the soak was approved and the host received each exactly once"))
def soak_counted(soak: Soak, acquirer_host: AcquirerHost, hil_rig: Rig) -> None:
    """Every sale was approved, and the host, counting for itself,
    received one 0200 per sale: each STAN exactly once, none the terminal did not report."""
    refused = [s.describe() for s in soak.sales if s.outcome != "approved"]
    tid = hil_rig.expected_identity().terminal_id
    stans = Counter(
        str(r.fields.get("11"))
        for r in acquirer_host.records()[soak.before.host_messages or 0 :]
        if r.transaction == "sale" and r.direction == "in" and r.terminal_id == tid
    )
    mine = Counter(s.stan for s in soak.sales)
    twice = sorted(stan for stan, n in stans.items() if n > 1)
    missing = sorted(set(mine) - set(stans))
    unknown = sorted(set(stans) - set(mine))
    with reporting.action(
        "count the soak at the host",
        sales=len(soak.sales),
        received=sum(stans.values()),
        not_approved=len(refused),
    ):
        assert not refused, f"{len(refused)} soak sale(s) not approved, first: {refused[0]}"
        assert len(mine) == len(soak.sales), "the terminal reused a STAN within the soak"
        assert not (twice or missing or unknown), (
            f"host count differs: received twice {twice[:5]}, never received {missing[:5]}, "
            f"received but not reported by the terminal {unknown[:5]}"
        )


def _readings(soak: Soak) -> tuple[UsageSample, UsageSample]:
    if soak.first is None or soak.last is None:
        unavailable("the terminal process's memory over the soak")
        raise AssertionError("unreachable")  # pytest.skip raised
    return soak.first, soak.last


@then(phrase("the terminal's memory grew less than the performance contract allows over the soak"))
def soak_memory_bounded(soak: Soak) -> None:
    """RSS read by the rig after the soak exceeds the reading before it by less than
    the contract's growth limit (a soak shorter than the contract's proves nothing)."""
    if len(soak.sales) < SOAK_SALES:
        raise StepValueError(
            f"a soak of {len(soak.sales)} sales is shorter than the contract's {SOAK_SALES}"
        )
    first, last = _readings(soak)
    growth = reporting.measure(
        "soak_rss_growth",
        (last.rss_bytes - first.rss_bytes) / MIB,
        "MiB",
        high=SOAK_RSS_GROWTH_MAX_MIB,
    )
    assert growth.passed, growth.describe() + f" over {len(soak.sales)} sales (a leak?)"


@then(phrase("the terminal's CPU and every sale's wall time over the soak are within the contract"))
def soak_cpu_and_time(soak: Soak) -> None:
    """The terminal process's CPU over the soak (rig readings) and the slowest sale's
    wall time are within the performance contract."""
    first, last = _readings(soak)
    cpu = reporting.measure("soak_process_cpu", cpu_pct(first, last), "%", high=PROCESS_CPU_MAX_PCT)
    slowest = reporting.measure("soak_slowest_sale", max(soak.wall_s), "s", high=SALE_MAX_S)
    reporting.measure("soak_median_sale", statistics.median(soak.wall_s), "s")
    assert cpu.passed, cpu.describe()
    assert slowest.passed, slowest.describe()
