"""CPU demand of a local process, from Linux schedstat: the sim terminal measures
itself with it and the rig measures the terminal with it, so both read the same thing.

Demand is the time a process's threads ran plus the time they waited on a run queue.
Unlike CPU time (``utime + stime``), it does not fall when other work loads the machine:
a thread that spins reads as busy on an idle laptop and on a shared CI host alike.
"""

from __future__ import annotations

import os


def cpu_demand_s(pid: int | str) -> float | None:
    """Seconds the threads of ``pid`` (or ``"self"``) ran or waited to run since they
    started; None where the kernel keeps no schedstat or the process is gone."""
    task_dir = f"/proc/{pid}/task"
    try:
        tasks = os.listdir(task_dir)
    except OSError:
        return None
    total_ns = 0
    for task in tasks:
        try:
            with open(f"{task_dir}/{task}/schedstat", encoding="ascii") as f:
                running_ns, waiting_ns = f.read().split()[:2]
        except (OSError, ValueError):
            continue  # a thread that ended between the listing and the read
        total_ns += int(running_ns) + int(waiting_ns)
    return total_ns / 1e9 if tasks else None
