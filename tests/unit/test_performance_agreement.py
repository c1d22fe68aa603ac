"""The performance item's CPU figure against the rig's reading of the terminal process:
the item reports demand (ran + waited for a core), so the rig compares demand."""

from __future__ import annotations

import pytest

from hil.procusage import UsageSample
from hil.steps.performance import UsageCheck, cpu_time_agrees
from hil.terminal import SelfCheckItemResult, SelfCheckRun


def _check(claimed_s: float) -> UsageCheck:
    item = SelfCheckItemResult("performance", "pass", "OK", "", details={"cpu_seconds": claimed_s})
    run = SelfCheckRun("command", 1, 0, 0, 250.0, (item,))
    # Four rigs on two cores: the process got 10 ms of CPU and waited 60 ms for a core.
    before = UsageSample(9, at=0.0, cpu_s=1.00, rss_bytes=0, thread_demand_s={"9": 3.0, "10": 1.0})
    after = UsageSample(9, at=0.4, cpu_s=1.01, rss_bytes=0, thread_demand_s={"9": 3.05, "10": 1.02})
    return UsageCheck(run, before, after)


def test_a_truthful_terminal_kept_waiting_for_a_core_agrees() -> None:
    # Its 250 ms window saw 45 ms of demand: more than the 10 ms of CPU it got.
    cpu_time_agrees(_check(0.045))


def test_a_terminal_claiming_more_than_it_asked_for_fails() -> None:
    with pytest.raises(AssertionError, match="more CPU than the process asked for"):
        cpu_time_agrees(_check(0.2))
