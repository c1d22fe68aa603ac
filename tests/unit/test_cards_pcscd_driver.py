"""The vpcd driver a hil pcscd loads: Debian's unless the pool names another (the bench
compares a patched one, docs/cards.md "Insertion latency: the floor")."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.cards.pcscd import VPCD_DRIVER, VpcdPool, _start
from hil.errors import RigError


def test_a_pool_loads_debians_driver_unless_told_otherwise() -> None:
    assert VpcdPool("HIL Virtual Card", 35990).driver == VPCD_DRIVER


def test_a_missing_driver_is_a_rig_fault_naming_it_before_pcscd_starts(tmp_path: Path) -> None:
    missing = tmp_path / "libifdvpcd-patched.so"
    pool = VpcdPool("HIL Driver Check", 39990, 1, driver=missing)
    with pytest.raises(RigError, match=f"vpcd driver {missing} missing$"):
        _start(pool, timeout=1.0)
