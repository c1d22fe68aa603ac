"""The rig's own reading of a process from /proc: CPU ticks, RSS, CPU share."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.errors import RigError
from hil.procstat import thread_demand_ns
from hil.procusage import (
    UsageSample,
    cpu_pct,
    demand_between,
    parse_stat_cpu_ticks,
    parse_statm_rss_pages,
    sample,
)

# Field 2 with spaces and a ')' inside, as a process may name itself.
STAT = "4242 (hil sim) x) S 1 4242 4242 0 -1 4194560 500 0 0 0 123 45 0 0 20 0 3 0 100 1000 50"


def test_cpu_ticks_are_utime_plus_stime_whatever_the_command_name() -> None:
    assert parse_stat_cpu_ticks(STAT) == 123 + 45
    assert parse_statm_rss_pages("2000 731 300 10 0 500 0\n") == 731


def test_cpu_share_is_cpu_seconds_over_wall_seconds() -> None:
    first = UsageSample(1, at=10.0, cpu_s=1.0, rss_bytes=0)
    last = UsageSample(1, at=12.0, cpu_s=1.5, rss_bytes=0)
    assert cpu_pct(first, last) == pytest.approx(25.0)
    with pytest.raises(ValueError):
        cpu_pct(last, first)


def test_a_busy_child_is_measured_busy_and_an_idle_one_idle() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)  # both past their start-up
        busy_first, idle_first = sample(busy.pid), sample(idle.pid)
        time.sleep(0.5)
        busy_last, idle_last = sample(busy.pid), sample(idle.pid)
    finally:
        busy.kill()
        idle.kill()
        busy.wait()
        idle.wait()
    # a loaded machine shares the core: bound from below only, and loosely
    assert cpu_pct(busy_first, busy_last) > 20.0
    assert cpu_pct(idle_first, idle_last) < 5.0
    assert busy_last.rss_bytes > 1024 * 1024


def test_a_process_that_is_gone_is_a_rig_error(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="cannot read"):
        sample(os.getpid(), proc=tmp_path)
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text("garbage")
    (tmp_path / "7" / "statm").write_text("1 2")
    with pytest.raises(RigError, match="unreadable"):
        sample(7, proc=tmp_path)


def test_demand_between_two_readings_counts_each_live_thread_once_and_never_a_gone_one() -> None:
    first = UsageSample(1, at=0.0, cpu_s=0.0, rss_bytes=0, thread_demand_s={"1": 2.0, "2": 1.0})
    # thread 2 ended (its demand is nowhere now), thread 3 started
    last = UsageSample(1, at=1.0, cpu_s=0.1, rss_bytes=0, thread_demand_s={"1": 2.5, "3": 0.25})
    assert demand_between(first, last) == pytest.approx(0.75)
    assert demand_between(UsageSample(1, at=0.0, cpu_s=0.0, rss_bytes=0), last) is None


def test_a_waiting_process_asks_for_more_than_the_cpu_it_gets(tmp_path: Path) -> None:
    """schedstat from a /proc where the process's threads waited on a run queue: the
    demand the terminal's performance item reports (ran + waited) is what the rig reads."""
    task = tmp_path / "7" / "task"
    for thread, (ran_ns, waited_ns) in {"7": (10_000_000, 40_000_000), "8": (5_000_000, 0)}.items():
        (task / thread).mkdir(parents=True)
        (task / thread / "schedstat").write_text(f"{ran_ns} {waited_ns} 12\n")
    (tmp_path / "7" / "stat").write_text(STAT)
    (tmp_path / "7" / "statm").write_text("2000 731 300 10 0 500 0\n")
    reading = sample(7, proc=tmp_path)
    assert reading.thread_demand_s == {"7": 0.05, "8": 0.005}
    assert thread_demand_ns(7, proc=tmp_path) == {"7": 50_000_000, "8": 5_000_000}
    assert thread_demand_ns(8, proc=tmp_path) is None  # no such process
