"""Fixtures for the framework's own tests."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hil.drivers import REGISTRY, DriverRegistry
from hil.suite import FEATURES, FIXTURES

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = FIXTURES / "firmware"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DriverRegistry]:
    """pos-hil's driver registry, with what a test registers undone afterwards; plug-in
    modules a test writes into ``tmp_path`` import from there and are forgotten after."""
    REGISTRY.load_builtin()
    saved = REGISTRY.snapshot()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield REGISTRY
    REGISTRY.restore(saved)
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


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


@dataclass(frozen=True)
class FeatureRun:
    """One pytest-bdd run of repository features in a pytester folder."""

    result: pytest.RunResult
    results: Path
    summary_path: Path

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.summary_path.read_text())
        return data


def run_features(
    pytester: pytest.Pytester,
    features: Sequence[str],
    *pytest_args: str,
    extra: str = "",
    rig: Path | None = None,
) -> FeatureRun:
    """Copy ``features`` into pytester's folder and run them on a sim rig (real pty,
    processes) with Allure results and the hil summary."""
    folder = pytester.path / "features"
    folder.mkdir(exist_ok=True)
    for name in features:
        shutil.copy(FEATURES / name, folder)
    rig = rig or write_sim_rig(pytester.path / "rig.toml", extra=extra)
    results = pytester.path / "allure-results"
    summary = pytester.path / "summary.json"
    result = pytester.runpytest_subprocess(
        "features",
        "-o",
        "hil_features=true",
        f"--rig={rig}",
        f"--alluredir={results}",
        f"--hil-summary={summary}",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    )
    return FeatureRun(result, results, summary)


def fresh_process_hardware() -> Any:
    """The sim's real hardware, measured inside the test process as if it were a fresh
    sim process: RSS counted from when it was made, plus what a sim process holds at
    start. What other tests loaded into this process (the OCR engine's models: hundreds
    of MB) is not the terminal's memory and must not read as E_MEM_RAM."""
    from hil.sim.hardware import Hardware

    class FreshProcessHardware(Hardware):
        FRESH_SIM_RSS = 64 * 1024 * 1024

        def __init__(self) -> None:
            super().__init__()
            self._baseline = super().rss_bytes()

        def rss_bytes(self) -> int:
            return max(super().rss_bytes() - self._baseline, 0) + self.FRESH_SIM_RSS

    return FreshProcessHardware()
