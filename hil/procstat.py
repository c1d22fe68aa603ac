"""CPU demand of a local process, from Linux schedstat: the sim terminal measures
itself with it and the rig measures the terminal with it, so both read the same thing.

Demand is the time a process's threads ran plus the time they waited on a run queue.
Unlike CPU time (``utime + stime``), it does not fall when other work loads the machine:
a thread that spins reads as busy on an idle laptop and on a shared CI host alike.
"""

from __future__ import annotations

import os
from pathlib import Path


def thread_demand_ns(pid: int | str, *, proc: Path = Path("/proc")) -> dict[str, int] | None:
    """Nanoseconds each live thread of ``pid`` (or ``"self"``) ran or waited to run since it
    started, by thread id; None where the kernel keeps no schedstat or the process is gone.
    A thread that has ended is in no listing: its demand is not kept anywhere."""
    task_dir = proc / str(pid) / "task"
    try:
        tasks = os.listdir(task_dir)
    except OSError:
        return None
    demand: dict[str, int] = {}
    for task in tasks:
        try:
            with open(task_dir / task / "schedstat", encoding="ascii") as f:
                running_ns, waiting_ns = f.read().split()[:2]
        except (OSError, ValueError):
            continue  # a thread that ended between the listing and the read
        demand[task] = int(running_ns) + int(waiting_ns)
    return demand if tasks else None


def cpu_demand_s(pid: int | str) -> float | None:
    """Seconds the threads of ``pid`` (or ``"self"``) ran or waited to run since they
    started; None where the kernel keeps no schedstat or the process is gone."""
    demand = thread_demand_ns(pid)
    return None if demand is None else sum(demand.values()) / 1e9
