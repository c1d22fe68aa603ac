"""A driver package outside pos-hil, installed as a lab installs it, powers a terminal.

examples/pos-hil-exec-power is pip-installed into a folder of its own (its entry point
registers ``("power", "exec")``); the rig file names a *physical* terminal on a bench
(tests/integration/bench_supply.py: a simulated terminal behind a switchable supply,
its test port a pty the rig opens like /dev/ttyUSB0) and switches it with the exec
driver's commands. The boot feature then runs end to end through the plug-in: power
off, on and a hard cut, all by the lab's own commands.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hil.config import parse_rig
from hil.drivers import DriverRegistry
from hil.errors import ConfigError
from hil.rig import Rig
from hil.suite import FEATURES, FIXTURES
from tests.conftest import REPO

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "pos-hil-exec-power"
BENCH = Path(__file__).with_name("bench_supply.py")
HIL = Path(sys.executable).parent / "hil"
FIRMWARE = FIXTURES / "firmware" / "pos-sim-healthy-1.4.2.fw.json"


@pytest.fixture(scope="module")
def exec_power_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package, pip-installed into a folder of its own (with its metadata,
    so its entry point is visible to any process that has the folder on its path)."""
    site = tmp_path_factory.mktemp("lab-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    assert (site / "pos_hil_exec_power" / "__init__.py").is_file()
    return site


@dataclass(frozen=True)
class Bench:
    folder: Path
    port: str
    control: Path

    def command(self, action: str) -> list[str]:
        return [sys.executable, str(BENCH), "ctl", str(self.control), action]

    def actions(self) -> list[str]:
        log = self.folder / "actions.log"
        return log.read_text().split() if log.is_file() else []


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    folder = tmp_path / "bench"
    process = subprocess.Popen(
        [
            sys.executable,
            str(BENCH),
            "serve",
            "--folder",
            str(folder),
            "--firmware",
            str(FIRMWARE),
            "--serial",
            "SIM8A0000001",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    port = process.stdout.readline().split()[1]
    control = Path(process.stdout.readline().split()[1])
    try:
        yield Bench(folder, port, control)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _bench_rig(path: Path, bench: Bench, *, plugins: str = "") -> Path:
    def toml_list(words: list[str]) -> str:
        return json.dumps(words)

    path.write_text(
        f"""
[rig]
name = "bench-with-exec-power"
{plugins}

[dut]
driver = "physical"
model = "POS-SIM-A8"
serial_number = "SIM8A0000001"
terminal_id = "T0000001"
merchant_id = "898310058120001"
firmware = "{FIRMWARE}"
boot_timeout_s = 20.0

[console]
driver = "pyserial"
url = "{bench.port}"

[power]
driver = "exec"
on = {toml_list(bench.command("on"))}
off = {toml_list(bench.command("off"))}
cut = {toml_list(bench.command("cut"))}
status = {toml_list(bench.command("status"))}

[limits]
boot_selfcheck_s = 10.0
""",
        encoding="utf-8",
    )
    return path


def test_an_installed_driver_package_switches_a_bench_terminal(
    exec_power_site: Path, bench: Bench, tmp_path: Path
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    shutil.copy(FEATURES / "boot_self_check.feature", features)
    rig = _bench_rig(tmp_path / "bench.toml", bench)
    result = subprocess.run(
        [str(HIL), "run", "--rig", str(rig), "--features", str(features), "--no-html"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(exec_power_site)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["passed"] == 5, counts
    assert sum(counts.values()) == 5, counts  # nothing failed, broke, was skipped or cut
    assert summary["environment"]["instrument.power"] == "exec"
    assert summary["environment"]["instrument.dut"] == "physical"
    actions = bench.actions()
    # every switch went through the lab's commands: the scenarios power off, on, and cut
    assert {"on", "off", "cut"} <= set(actions), actions
    assert actions[-1] == "off", "the rig switches the terminal off when it closes"


def test_exec_power_names_a_command_that_is_not_there(
    exec_power_site: Path, bench: Bench, tmp_path: Path, registry: DriverRegistry
) -> None:
    sys.path.insert(0, str(exec_power_site))
    try:
        text = _bench_rig(
            tmp_path / "bench.toml", bench, plugins='plugins = ["pos_hil_exec_power"]'
        )
        text_value = text.read_text().replace(f'on = ["{sys.executable}"', 'on = ["no-such-switch"')
        config = parse_rig(text_value, text)
        rig = Rig(config)
        try:
            with pytest.raises(ConfigError) as caught:
                rig.build(["dut", "power"])
        finally:
            rig.close()
        assert str(caught.value).endswith("power.on: command not found: no-such-switch")
    finally:
        sys.path.remove(str(exec_power_site))
