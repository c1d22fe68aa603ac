"""What a local process uses, read by the rig from ``/proc/PID`` (Linux).

The rig's own measurement of the terminal process it started: CPU time (user + system,
``/proc/PID/stat`` fields 14 and 15, in clock ticks), CPU demand (each thread's ran +
waited time, ``/proc/PID/task/*/schedstat``: what the terminal's performance item
reports, hil.procstat) and resident memory (``/proc/PID/statm`` field 2, in pages).
Nothing here asks the terminal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hil.errors import RigError
from hil.procstat import thread_demand_ns

MIB = 1024 * 1024


@dataclass(frozen=True)
class UsageSample:
    """One reading of a process: when (rig monotonic clock), CPU seconds, RSS bytes."""

    pid: int
    at: float
    cpu_s: float
    rss_bytes: int
    #: thread id -> seconds it ran or waited to run (to the microsecond: no digit run in a
    #: report reads as a card number); None where the kernel keeps no schedstat
    thread_demand_s: Mapping[str, float] | None = field(default=None, compare=False)

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / MIB


def cpu_pct(first: UsageSample, last: UsageSample) -> float:
    """CPU used between two readings, in % of one CPU (100 = one core busy throughout)."""
    wall = last.at - first.at
    if wall <= 0:
        raise ValueError("the readings are not in time order")
    return (last.cpu_s - first.cpu_s) / wall * 100.0


def demand_between(first: UsageSample, last: UsageSample) -> float | None:
    """Seconds the process's threads ran or waited to run between two readings; None
    without schedstat. A thread that ended in between is missing from ``last`` and counts
    nothing: a lower bound of the demand, never more than it."""
    if first.thread_demand_s is None or last.thread_demand_s is None:
        return None
    before = first.thread_demand_s
    return sum(
        max(0.0, now - before.get(thread, 0.0)) for thread, now in last.thread_demand_s.items()
    )


def parse_stat_cpu_ticks(stat: str) -> int:
    """utime + stime from the text of /proc/PID/stat. The command name (field 2) is in
    parentheses and may hold spaces or parentheses itself: fields count after the last ')'."""
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state), so field N is rest[N - 3]
    return int(rest[14 - 3]) + int(rest[15 - 3])


def parse_statm_rss_pages(statm: str) -> int:
    return int(statm.split()[1])


def sample(pid: int, *, proc: Path = Path("/proc")) -> UsageSample:
    """Read the process now. A process that is gone (or a /proc that cannot be read) is
    a ``RigError``: the rig could not take its measurement."""
    base = proc / str(pid)
    try:
        stat = (base / "stat").read_text()
        statm = (base / "statm").read_text()
    except OSError as e:
        raise RigError(
            f"cannot read {base}: {e.strerror or e} (the terminal process is gone?)",
            instrument="dut",
        ) from e
    try:
        ticks = parse_stat_cpu_ticks(stat)
        pages = parse_statm_rss_pages(statm)
    except (ValueError, IndexError) as e:
        raise RigError(f"{base}: unreadable stat/statm ({e})", instrument="dut") from e
    return UsageSample(
        pid=pid,
        at=time.monotonic(),
        cpu_s=ticks / os.sysconf("SC_CLK_TCK"),
        rss_bytes=pages * os.sysconf("SC_PAGE_SIZE"),
        thread_demand_s=_in_seconds(thread_demand_ns(pid, proc=proc)),
    )


def _in_seconds(demand_ns: Mapping[str, int] | None) -> dict[str, float] | None:
    if demand_ns is None:
        return None
    return {thread: round(ns / 1e9, 6) for thread, ns in demand_ns.items()}
