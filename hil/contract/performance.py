"""The performance contract: limits the rig measures a terminal against, by itself.

Every figure here is taken by the rig, never read from the terminal alone: boot time on
the rig's clock from power-on to the ready event, a sale's wall time from request to
answer, the terminal process's CPU time and resident memory from ``/proc/PID`` of the
process the rig started (docs/performance.md). What the terminal's own performance and
memory items report is then compared with those readings.
"""

from __future__ import annotations

#: Power-on to ``sys.ready`` (boot, self-check, idle screen), rig clock. A rig file's
#: ``[limits] boot_selfcheck_s``, when tighter, is used instead.
BOOT_TO_READY_MAX_S = 10.0

#: One sale over a healthy link, request to answer on the rig's clock (test port,
#: terminal, host simulator and back).
SALE_MAX_S = 2.0

#: The terminal process's CPU over a measured interval (CPU seconds / wall seconds, in %
#: of one CPU): the performance item's own warning limit.
PROCESS_CPU_MAX_PCT = 90.0
#: The terminal process's resident memory: the memory item's own limit.
PROCESS_RSS_MAX_MIB = 512.0

#: How far the memory item's RSS may lie outside the rig's readings taken just before
#: and just after the run (the process allocates a little while it checks).
RSS_AGREEMENT_MIB = 4.0
#: What a CPU-time reading of /proc can miss at each end (one clock tick, 10 ms on
#: Linux with USER_HZ 100), so the item's CPU time may exceed the rig's by twice that.
CPU_TICK_MARGIN_S = 0.02

#: The soak: this many sales, every one approved and counted at the host exactly once.
SOAK_SALES = 200
#: Resident memory may grow by less than this from the first reading to the last.
SOAK_RSS_GROWTH_MAX_MIB = 5.0
#: Amount of each soak sale, minor units.
SOAK_SALE_AMOUNT = 100
