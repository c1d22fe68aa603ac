"""Every mistake a lab can make in the driver layer: ``hil run`` exits 2 with one line
naming the file and field or the plug-in; never 1 (the terminal) or 3 (the rig)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hil.suite import DEFAULT_RIG, FIXTURES

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"
SIM = DEFAULT_RIG.read_text().replace("../fixtures", str(FIXTURES))
DUPLICATE_SIM_POWER = """
from hil.drivers import Driver, register

@register("power", "sim")
class Mine(Driver):
    pass
"""


def _with_plugin(text: str, module: str) -> str:
    return text.replace('[rig]\nname = "sim"', f'[rig]\nname = "sim"\nplugins = ["{module}"]', 1)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace('[power]\ndriver = "sim"', '[power]\ndriver = "relay"'),
            "rig.toml: power.driver: unknown driver 'relay' "
            "(known: 'devantech-relay', 'labgrid', 'manual', 'sim', 'snmp-pdu')",
        ),
        (
            lambda t: t.replace(
                '[network]\ndriver = "proxy"', '[network]\ndriver = "proxy"\ninterface = "lo"'
            ),
            "rig.toml: network.interface: an option of driver 'netem', not of 'proxy'",
        ),
        (
            lambda t: t[: t.index("[host]")] + t[t.index("# Network faults") :],
            "rig.toml: network.driver: 'proxy' needs a [host] section",
        ),
        (
            lambda t: _with_plugin(t, "lab_missing_module"),
            "rig.toml: rig.plugins: plug-in 'lab_missing_module': cannot load: ModuleNotFoundError",
        ),
        (
            lambda t: _with_plugin(t, "lab_duplicate"),
            "plug-in 'lab_duplicate': driver power.sim registered twice: by hil.instruments.power",
        ),
        (
            lambda t: t.replace(str(FIXTURES / "host" / "params-v1.json"), "bad-params.json"),
            "hil: configuration error: rig.toml: host.parameters: ",
        ),
    ],
    ids=[
        "unknown-driver",
        "other-drivers-option",
        "missing-need",
        "plugin-import",
        "duplicate",
        "build-time",
    ],
)
def test_driver_layer_mistakes_exit_2_with_one_line(
    tmp_path: Path, edit: object, expected: str
) -> None:
    (tmp_path / "lab_duplicate.py").write_text(DUPLICATE_SIM_POWER)
    (tmp_path / "bad-params.json").write_text('{"version": 1')
    text = edit(SIM)  # type: ignore[operator]
    assert text != SIM
    (tmp_path / "rig.toml").write_text(text)
    result = subprocess.run(
        [str(HIL), "run", "--rig", "rig.toml", "--no-html"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lines[0].startswith("hil: ")
