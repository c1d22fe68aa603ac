"""Wiring a terminal the rig did not start: which config keys carry which channel, the
rig file's promises (fixed ports, bench addresses), and the sim terminal taking its
channels from its configuration at boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.config import parse_rig
from hil.errors import ConfigError
from hil.sim.channels import parse_channels, with_configured
from hil.sim.config import ConfigValueError, validate
from hil.wiring import config_for_channels, is_loopback

PHYSICAL = """
[rig]
name = "bench"
{rig_extra}

[dut]
driver = "physical"
model = "POS-X"
serial_number = "SN1"
terminal_id = "T0000001"
merchant_id = "898310058120001"
{dut_extra}

[console]
driver = "pyserial"
url = "socket://127.0.0.1:9"

[host]
driver = "sim"
{host_extra}

[faultlines]
driver = "sim"
{lines_extra}
"""


def _rig(tmp_path: Path, **parts: str) -> str:
    text = PHYSICAL
    for key in ("rig_extra", "dut_extra", "host_extra", "lines_extra"):
        text = text.replace("{" + key + "}", parts.get(key, ""))
    return text


def test_each_channel_maps_to_its_documented_config_keys() -> None:
    wired = {
        "host": "127.0.0.1:5000",
        "camera": "127.0.0.1:4100",
        "faultlines": "127.0.0.1:4101",
        "maghead": "127.0.0.1:4102",
        "pcsc": "HIL Virtual Card 1 00 00",
    }
    assert config_for_channels(wired) == {
        "channels.camera": "127.0.0.1:4100",
        "channels.faultlines": "127.0.0.1:4101",
        "host.address": "127.0.0.1",
        "host.port": 5000,
        "channels.maghead": "127.0.0.1:4102",
        "channels.pcsc": "HIL Virtual Card 1 00 00",
    }
    assert config_for_channels({"host": "[::1]:7000"}) == {"host.address": "::1", "host.port": 7000}


def test_fixed_wiring_needs_fixed_ports(tmp_path: Path) -> None:
    text = _rig(tmp_path, host_extra="port = 5000")
    with pytest.raises(
        ConfigError, match=r"dut\.wiring: 'fixed' needs a fixed port in \[faultlines\]"
    ):
        parse_rig(text, tmp_path / "bench.toml")
    fixed = _rig(tmp_path, host_extra="port = 5000", lines_extra="port = 5001")
    assert parse_rig(fixed, tmp_path / "bench.toml").dut.driver == "physical"
    pushed = _rig(tmp_path, dut_extra='wiring = "config"')
    assert parse_rig(pushed, tmp_path / "bench.toml").dut.driver == "physical"


def test_a_host_off_loopback_must_be_named_as_a_bench_address(tmp_path: Path) -> None:
    text = _rig(tmp_path, dut_extra='wiring = "config"', host_extra='address = "10.9.8.7"')
    with pytest.raises(
        ConfigError,
        match=r"bench\.toml: host\.address: 10\.9\.8\.7 is not loopback; to bind on a bench "
        r"interface name it in rig\.bench_addresses",
    ):
        parse_rig(text, tmp_path / "bench.toml")
    named = _rig(
        tmp_path,
        rig_extra='bench_addresses = ["10.9.8.7"]',
        dut_extra='wiring = "config"',
        host_extra='address = "10.9.8.7"',
    )
    assert parse_rig(named, tmp_path / "bench.toml").rig.bench_addresses == ["10.9.8.7"]
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("10.9.8.7")


def test_the_sim_takes_channels_from_its_configuration_and_the_rig_wins() -> None:
    config = {
        "host.address": "127.0.0.1",
        "host.port": 5000,
        "channels.camera": "127.0.0.1:4100",
        "channels.faultlines": "",
        "channels.maghead": "127.0.0.1:4102",
    }
    channels = with_configured(parse_channels(""), config)
    assert channels.wired == {
        "host": "127.0.0.1:5000",
        "camera": "127.0.0.1:4100",
        "maghead": "127.0.0.1:4102",
    }
    assert not channels.has("faultlines"), "an empty key wires nothing"
    handed = with_configured(parse_channels("host=127.0.0.1:6000,camera=127.0.0.1:7000"), config)
    assert handed.value("host") == "127.0.0.1:6000" and handed.value("camera") == "127.0.0.1:7000"
    assert with_configured(parse_channels(""), {"host.address": "", "host.port": 0}).wired == {}


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("channels.camera", "127.0.0.1", "ADDRESS:PORT"),
        ("channels.faultlines", "127.0.0.1:0", "ADDRESS:PORT"),
        ("channels.maghead", 5, "string"),
        ("channels.pcsc", "a,b", "reader name"),
    ],
)
def test_the_sim_refuses_channel_values_it_could_not_use(key: str, value: object, why: str) -> None:
    with pytest.raises(ConfigValueError, match=why):
        validate(key, value)
    assert validate("channels.camera", "localhost:4100") == "localhost:4100"


def test_wiring_already_in_place_is_left_alone_and_no_reboot_is_asked() -> None:
    from hil.terminal.strategy import Terminal
    from hil.terminal.testport import TestPortAdapter
    from tests.unit.test_terminal_testport import FakeConsole

    console = FakeConsole({"config.get": {"key": "channels.maghead", "value": "127.0.0.1:4102"}})
    terminal = Terminal(TestPortAdapter(console), None, boot_timeout=1.0)
    terminal.wiring = {"channels.maghead": "127.0.0.1:4102"}
    assert terminal.apply_wiring() is None
    assert [cmd for cmd, _, _ in console.requests] == ["config.get"]


def test_a_terminal_that_refuses_a_wiring_key_is_a_rig_fault_saying_what_to_do() -> None:
    from hil.errors import RigError, TerminalCommandError
    from hil.terminal.strategy import Terminal
    from hil.terminal.testport import TestPortAdapter
    from tests.unit.test_terminal_testport import FakeConsole

    refusal = TerminalCommandError("config.get", "E_CONFIG_KEY", "unknown key channels.maghead")
    console = FakeConsole({"config.get": refusal})
    terminal = Terminal(TestPortAdapter(console), None, boot_timeout=1.0)
    terminal.wiring = {"channels.maghead": "127.0.0.1:4102"}
    with pytest.raises(
        RigError,
        match=r"wiring by configuration: the terminal refused channels\.maghead = "
        r"'127\.0\.0\.1:4102' \(E_CONFIG_KEY: .*\); wire this channel by hand and set "
        r"dut\.wiring = 'fixed'",
    ):
        terminal.apply_wiring()
