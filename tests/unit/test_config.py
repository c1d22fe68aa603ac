"""Rig file validation: every error is one line naming the file and the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.config import load_rig, parse_rig
from hil.errors import ConfigError
from hil.suite import DEFAULT_RIG

SIM = (DEFAULT_RIG).read_text()
SOURCE = DEFAULT_RIG.parent / "x.toml"  # so ../fixtures resolves as for the real file


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_rig(text, SOURCE)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_default_sim_rig_is_valid() -> None:
    config = load_rig(DEFAULT_RIG)
    assert config.dut.driver == "sim"
    assert config.dut.firmware is not None and config.dut.firmware.is_file()
    wired = config.instruments()
    assert {"dut": "sim", "console": "pyserial", "power": "sim"}.items() <= wired.items()
    assert {"cards": "vpcd", "magstripe": "sim", "faultlines": "sim"}.items() <= wired.items()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("baud = 115200", 'baud = "fast"', "hil/suite/rigs/x.toml: console.baud: expected integer"),
        ("baud = 115200", "baud = 1.5", "hil/suite/rigs/x.toml: console.baud: expected integer"),
        (
            "time_scale = 0.1",
            'time_scale = "x"',
            "hil/suite/rigs/x.toml: dut.time_scale: expected number",
        ),
        ("[limits]", "[limits]\nbogus = 1", "hil/suite/rigs/x.toml: limits.bogus: unknown key"),
        (
            'driver = "sim"\noff',
            'driver = "relay"\noff',
            "hil/suite/rigs/x.toml: power.driver: unknown driver 'relay'",
        ),
        (
            'driver = "pyserial"',
            'driver = "usb"',
            "hil/suite/rigs/x.toml: console.driver: unknown driver 'usb'",
        ),
        ('name = "sim"', "name = 3", "hil/suite/rigs/x.toml: rig.name: expected string"),
        (
            'terminal_id = "T0000001"',
            'terminal_id = "T1"',
            "hil/suite/rigs/x.toml: dut.terminal_id: terminal ID must be 8",
        ),
        (
            'merchant_id = "898310058120001"',
            'merchant_id = "1"',
            "hil/suite/rigs/x.toml: dut.merchant_id: merchant ID must be 15",
        ),
        (
            "pos-sim-healthy-1.4.2",
            "missing-9.9.9",
            "hil/suite/rigs/x.toml: dut.firmware: file not found",
        ),
        (
            "boot_timeout_s = 20.0",
            "boot_timeout_s = -1.0",
            "hil/suite/rigs/x.toml: dut.boot_timeout_s: Input should be greater than 0",
        ),
    ],
)
def test_errors_name_file_and_field(old: str, new: str, expected: str) -> None:
    assert old in SIM
    assert _error(SIM.replace(old, new, 1)).startswith(expected)


def test_missing_driver_is_named() -> None:
    text = SIM.replace('[power]\ndriver = "sim"', "[power]")
    assert _error(text).startswith("hil/suite/rigs/x.toml: power.driver: required field missing")


def test_invalid_toml_names_position() -> None:
    message = _error("[rig\nname = 1")
    assert message.startswith("hil/suite/rigs/x.toml: invalid TOML:")
    assert "line 1" in message


def test_physical_dut_needs_a_real_port() -> None:
    text = (
        SIM.replace('driver = "sim"\nmodel', 'driver = "physical"\nmodel')
        .replace("time_scale = 0.1\n", "")
        .replace('[power]\ndriver = "sim"\noff_timeout_s = 5.0\n', "")
    )
    assert _error(text).startswith("hil/suite/rigs/x.toml: console.url: a physical terminal needs")


def test_missing_rig_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: rig file not found"):
        load_rig(tmp_path / "nope.toml")


def test_relative_paths_follow_the_rig_file(tmp_path: Path) -> None:
    (tmp_path / "fw.json").write_text("{}")
    text = SIM.replace("../fixtures/firmware/pos-sim-healthy-1.4.2.fw.json", "fw.json")
    config = parse_rig(text, tmp_path / "rig.toml")
    assert config.dut.firmware == tmp_path / "fw.json"
