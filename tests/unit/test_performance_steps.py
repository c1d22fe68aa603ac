"""The performance steps' honesty about what the rig cannot measure, and the contract's
limits as docs/performance.md states them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil.contract import performance
from hil.errors import RigError
from hil.instruments.dut import BenchTerminal
from hil.steps.common import RigCursor
from hil.steps.performance import Soak, terminal_pid, unavailable

DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"


class RigWith:
    def __init__(self, dut: object | None) -> None:
        self.dut = dut

    def instrument(self, name: str) -> object:
        if self.dut is None:
            raise RigError("no such instrument", instrument=name)
        return self.dut


def test_a_terminal_the_rig_did_not_start_has_no_pid_and_the_step_skips_saying_so() -> None:
    assert terminal_pid(RigWith(BenchTerminal("POS-SIM-A8", "SIM8A0000001"))) is None  # type: ignore[arg-type]
    assert terminal_pid(RigWith(None)) is None  # type: ignore[arg-type]
    with pytest.raises(pytest.skip.Exception, match=r"rig limitation: .* not a pass"):
        unavailable("CPU and memory")


def test_a_soak_without_readings_skips_its_memory_check() -> None:
    from hil.steps.performance import soak_memory_bounded

    soak = Soak(RigCursor(0, None, 0.0))
    soak.sales = [object()] * performance.SOAK_SALES  # type: ignore[list-item]
    with pytest.raises(pytest.skip.Exception, match="rig limitation"):
        soak_memory_bounded(soak)


def test_the_documented_limits_are_the_contract() -> None:
    text = DOC.read_text(encoding="utf-8")
    for figure in (
        f"{performance.BOOT_TO_READY_MAX_S:g} s",
        f"{performance.SALE_MAX_S:g} s",
        f"{performance.PROCESS_CPU_MAX_PCT:g}%",
        f"{performance.PROCESS_RSS_MAX_MIB:g} MiB",
        f"{performance.RSS_AGREEMENT_MIB:g} MiB",
        f"{performance.SOAK_SALES} sales",
        f"< {performance.SOAK_RSS_GROWTH_MAX_MIB:g} MiB",
    ):
        assert figure in text, figure
    assert os.sysconf("SC_CLK_TCK") >= 100  # the tick margin assumes ticks of 10 ms or less
    assert 2 / os.sysconf("SC_CLK_TCK") <= performance.CPU_TICK_MARGIN_S
