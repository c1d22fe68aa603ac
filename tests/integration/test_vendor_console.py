"""A console driver that brings its own ``TerminalPort`` (a terminal with another wire
protocol needs one adapter class): the rig drives the terminal through it, and the
shipped steps run unchanged.

The plug-in's port delegates to pos-hil's own adapter over the sim's pty, because the
simulated terminal speaks only the test-port protocol: what is under test is the seam
(the rig takes whatever TerminalPort the console driver built, nothing reaches past
it), not a second wire format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hil.suite import FEATURES
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"

VENDOR_PLUGIN = '''
from pathlib import Path
from typing import Any

from hil.drivers import Built, Driver, DriverConfig, register
from hil.instruments.console import PyserialConsole
from hil.instruments.dut import TestPortProvider
from hil.terminal.testport import TestPortAdapter


class VendorPort:
    """Stands for a vendor's protocol adapter; records what the rig asked of it."""

    name = "console"

    def __init__(self, url, log):
        self._console = PyserialConsole(url)
        self._adapter = TestPortAdapter(self._console)
        self._log = log

    def __getattr__(self, attribute):
        value = getattr(self._adapter, attribute)
        if callable(value):
            with self._log.open("a") as log:
                log.write(attribute + "\\n")
        return value

    def put_back(self):
        pass

    def preflight(self):
        return "vendor protocol port"

    def close(self):
        self._console.close()


class VendorConfig(DriverConfig):
    calls: str


@register("console", "vendor")
class VendorConsole(Driver):
    config_model = VendorConfig
    needs = ("dut",)

    @classmethod
    def build(cls, config, context):
        url = context.instrument("dut", TestPortProvider).port_url
        return Built(VendorPort(url, Path(config.calls)))
'''


def _attachment_names(node: dict[str, Any]) -> list[str]:
    """Attachments of an Allure result or step, and of every step below it."""
    names = [a["name"] for a in node.get("attachments", [])]
    for step in node.get("steps", []):
        names += _attachment_names(step)
    return names


def test_a_console_driver_with_its_own_terminal_port_runs_the_shipped_steps(
    tmp_path: Path,
) -> None:
    (tmp_path / "lab_vendor.py").write_text(VENDOR_PLUGIN)
    calls = tmp_path / "calls.log"
    rig = write_sim_rig(tmp_path / "rig.toml")
    text = rig.read_text().replace(
        '[console]\ndriver = "pyserial"', f'[console]\ndriver = "vendor"\ncalls = "{calls}"'
    )
    text = text.replace('name = "test-sim"', 'name = "test-sim"\nplugins = ["lab_vendor"]')
    rig.write_text(text)
    features = tmp_path / "features"
    features.mkdir()
    shutil.copy(FEATURES / "boot_self_check.feature", features)
    result = subprocess.run(
        [str(HIL), "run", "--rig", str(rig), "--features", str(features)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["counts"]["passed"] == 5
    assert summary["environment"]["instrument.console"] == "vendor"
    asked = set(calls.read_text().split())
    assert {"device_info", "mark", "wait_event", "reboot", "config_set"} <= asked, asked
    attachments = [
        name
        for f in (tmp_path / "reports" / "allure-results").glob("*-result.json")
        for name in _attachment_names(json.loads(f.read_text()))
    ]
    assert "boot record" in attachments
    assert "test-port transcript" not in attachments  # the vendor port keeps none
