"""The labgrid drivers' rig-file rules, and the check that the serial package on disk
is labgrid's fork (tests/integration/test_labgrid.py runs them against a real
coordinator and exporter)."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import sys
from pathlib import Path

import pytest

from hil.config import load_rig, parse_rig
from hil.errors import ConfigError, RigError
from hil.labgrid import place as labgrid_place
from hil.labgrid.drivers import LabgridPlaceDriver
from hil.suite import DEFAULT_RIG

RIG = """
[rig]
name = "lab-a"

[place]
driver = "labgrid"
coordinator = "lab-coordinator.example:20408"
name = "pos-a"

[dut]
driver = "physical"
model = "POS-SIM-A8"
serial_number = "SIM8A0000001"
terminal_id = "T0000001"
merchant_id = "898310058120001"

[console]
driver = "labgrid"

[power]
driver = "labgrid"
"""


def _error(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_rig(text, tmp_path / "lab.toml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_place_rig_builds_the_place_first_and_releases_it_last(tmp_path: Path) -> None:
    config = parse_rig(RIG, tmp_path / "lab.toml")
    order = list(config.build_order)
    # console and power come from the place; teardown runs in reverse, so the place is
    # released only after the supply is off and the port closed
    assert order.index("place") < order.index("console") < order.index("power")
    assert config.instruments()["place"] == "labgrid"


def test_a_labgrid_console_without_a_labgrid_place_is_a_rig_file_error(tmp_path: Path) -> None:
    text = RIG.replace('[place]\ndriver = "labgrid"\n', "").replace(
        'coordinator = "lab-coordinator.example:20408"\nname = "pos-a"\n', ""
    )
    assert "console.driver: 'labgrid' needs [place] driver = \"labgrid\"" in _error(text, tmp_path)


def test_the_coordinator_is_host_and_port(tmp_path: Path) -> None:
    text = RIG.replace('"lab-coordinator.example:20408"', '"lab-coordinator.example"')
    assert "place.coordinator" in _error(text, tmp_path)


def test_without_labgrid_installed_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "labgrid", None)  # import labgrid -> ImportError
    config = parse_rig(RIG, tmp_path / "lab.toml")
    with pytest.raises(ConfigError, match=r"pip install 'pos-hil\[labgrid\]'"):
        LabgridPlaceDriver.build(config.sections["place"], None)  # type: ignore[arg-type]


def test_the_serial_package_on_disk_is_the_fork_after_setup() -> None:
    # scripts/setup.sh reinstalls the fork last; this environment is what CI runs
    assert labgrid_place.serial_package_problem() is None


class _FakeFork(importlib.metadata.Distribution):
    """A pyserial-labgrid whose record names a serial/__init__.py with its own hash."""

    def __init__(self, root: Path, recorded: bytes, version: str = "3.5.0.2") -> None:
        self.root = root
        self.recorded = recorded
        self._version = version

    def read_text(self, filename: str) -> str | None:
        if filename == "METADATA":
            return f"Name: pyserial-labgrid\nVersion: {self._version}\n"
        if filename == "RECORD":
            digest = base64.urlsafe_b64encode(hashlib.sha256(self.recorded).digest())
            return f"serial/__init__.py,sha256={digest.rstrip(b'=').decode()},10\n"
        return None

    def locate_file(self, path: str | Path) -> Path:
        return self.root / path


def test_pyserial_files_in_place_of_the_fork_are_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "serial").mkdir()
    (tmp_path / "serial" / "__init__.py").write_bytes(b"__version__ = '3.5'\n")
    fork = _FakeFork(tmp_path, recorded=b"__version__ = '3.5.0.2'\n")
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: fork)
    problem = labgrid_place.serial_package_problem()
    assert (
        problem == "serial/__init__.py is not pyserial-labgrid's (pyserial's files won the install)"
    )
    with pytest.raises(
        RigError, match=r"pip install --force-reinstall --no-deps pyserial-labgrid==3\.5\.0\.2"
    ):
        labgrid_place.check_serial_package()
    # the same files, recorded as they are: no problem
    same = _FakeFork(tmp_path, recorded=b"__version__ = '3.5'\n")
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: same)
    assert labgrid_place.serial_package_problem() is None
    other = _FakeFork(tmp_path, recorded=b"", version="3.5.0.3")
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: other)
    assert "pins 3.5.0.2" in (labgrid_place.serial_package_problem() or "")


def test_the_shipped_example_place_rig_is_valid() -> None:
    config = load_rig(DEFAULT_RIG.parent / "examples" / "labgrid-place.toml")
    wired = config.instruments()
    assert {"place": "labgrid", "console": "labgrid", "power": "labgrid"}.items() <= wired.items()
