"""Fixtures for the framework's own tests."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "fixtures" / "firmware"


@pytest.fixture
def repo() -> Path:
    return REPO


def write_sim_rig(
    path: Path,
    *,
    firmware: Path = FIRMWARE / "pos-sim-healthy-1.4.2.fw.json",
    time_scale: float = 0.05,
    extra: str = "",
) -> Path:
    """A sim rig file for tests: fast time scale, absolute firmware path."""
    path.write_text(
        f"""
[rig]
name = "test-sim"

[dut]
driver = "sim"
model = "POS-SIM-A8"
serial_number = "SIM8A0000001"
terminal_id = "T0000001"
merchant_id = "898310058120001"
firmware = "{firmware}"
time_scale = {time_scale}
boot_timeout_s = 20.0

[console]
driver = "pyserial"

[power]
driver = "sim"

[limits]
boot_selfcheck_s = 10.0
{extra}
""",
        encoding="utf-8",
    )
    return path
