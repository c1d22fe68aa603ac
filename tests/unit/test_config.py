"""Rig file validation: every error is one line naming the file and the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.config import DutConfig, load_rig, parse_rig
from hil.errors import ConfigError
from hil.instruments.host import SimHostConfig
from hil.instruments.network.proxy import ProxyNetworkConfig
from hil.suite import DEFAULT_RIG, FIXTURES

SIM = (DEFAULT_RIG).read_text()
SOURCE = DEFAULT_RIG.parent / "x.toml"  # so ../fixtures resolves as for the real file
SHOWN = "hil/suite/rigs/x.toml"  # how errors name SOURCE from the repository root


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_rig(text, SOURCE)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_default_sim_rig_is_valid() -> None:
    config = load_rig(DEFAULT_RIG)
    assert config.dut.driver == "sim"
    assert isinstance(config.dut, DutConfig)
    assert config.dut.firmware is not None and config.dut.firmware.is_file()
    wired = config.instruments()
    assert {"dut": "sim", "console": "pyserial", "power": "sim"}.items() <= wired.items()
    assert {"cards": "vpcd", "magstripe": "sim", "faultlines": "sim"}.items() <= wired.items()


def test_build_order_comes_from_declared_needs() -> None:
    order = list(load_rig(DEFAULT_RIG).build_order)
    # the terminal, its port and its supply first; the fault proxy after the host it fronts
    assert order[:3] == ["dut", "console", "power"]
    assert order.index("host") < order.index("network")
    assert sorted(order) == sorted(load_rig(DEFAULT_RIG).sections)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("baud = 115200", 'baud = "fast"', "console.baud: expected integer"),
        ("baud = 115200", "baud = 1.5", "console.baud: expected integer"),
        ("time_scale = 0.05", 'time_scale = "x"', "dut.time_scale: expected number"),
        ("[limits]", "[limits]\nbogus = 1", "limits.bogus: unknown key"),
        (
            'driver = "sim"\noff',
            'driver = "relay"\noff',
            "power.driver: unknown driver 'relay' "
            "(known: 'devantech-relay', 'labgrid', 'manual', 'sim'",
        ),
        (
            'driver = "pyserial"',
            'driver = "usb"',
            "console.driver: unknown driver 'usb' (known: 'labgrid', 'pyserial')",
        ),
        (
            '[network]\ndriver = "proxy"',
            '[network]\ndriver = "tcp"',
            "network.driver: unknown driver 'tcp' (known: 'netem', 'proxy', 'toxiproxy')",
        ),
        ('name = "sim"', "name = 3", "rig.name: expected string"),
        (
            'terminal_id = "T0000001"',
            'terminal_id = "T1"',
            "dut.terminal_id: terminal ID must be 8",
        ),
        (
            'merchant_id = "898310058120001"',
            'merchant_id = "1"',
            "dut.merchant_id: merchant ID must be 15",
        ),
        ("pos-sim-healthy-1.4.2", "missing-9.9.9", "dut.firmware: file not found"),
        (
            "boot_timeout_s = 20.0",
            "boot_timeout_s = -1.0",
            "dut.boot_timeout_s: Input should be greater than 0",
        ),
        # an option of another driver of the same section says whose it is
        (
            '[network]\ndriver = "proxy"',
            '[network]\ndriver = "proxy"\napi = "http://127.0.0.1:8474"',
            "network.api: an option of driver 'toxiproxy', not of 'proxy'",
        ),
        (
            '[network]\ndriver = "proxy"',
            '[network]\ndriver = "proxy"\nupstream = "nowhere"',
            "network.upstream: expected ADDRESS:PORT, got 'nowhere'",
        ),
        (
            'profiles = "../fixtures/cards"\nreader',
            'profiles = "../fixtures/nope"\nreader',
            "cards.profiles: folder not found: ../fixtures/nope",
        ),
        (
            'parameters = "../fixtures/host/params-v1.json"',
            'parameters = "params-v9.json"',
            "host.parameters: file not found: params-v9.json",
        ),
        (
            'serial_number = "SIM8A0000002"',
            "serial_number = 2",
            "host.terminals[0].serial_number: expected string",
        ),
        ("[faultlines]", "[faultlines]\nvoltage = 3", "faultlines.voltage: unknown key"),
        ('[magstripe]\ndriver = "sim"', '[magstripe]\ndriver = "coil"', "unknown driver 'coil'"),
        ("[limits]", "[periscope]\ndriver = 'usb'\n[limits]", "periscope: unknown section (known:"),
    ],
)
def test_errors_name_file_and_field(old: str, new: str, expected: str) -> None:
    assert old in SIM
    message = _error(SIM.replace(old, new, 1))
    assert message.startswith(f"{SHOWN}: ")
    assert expected in message


def test_missing_driver_is_named() -> None:
    text = SIM.replace('[power]\ndriver = "sim"', "[power]")
    assert _error(text).startswith(f"{SHOWN}: power.driver: required field missing")


def test_missing_required_section() -> None:
    start = SIM.index("[console]")
    text = SIM[:start] + SIM[SIM.index("[power]") :]
    assert _error(text).startswith(f"{SHOWN}: console: required field missing")


def test_invalid_toml_names_position() -> None:
    message = _error("[rig\nname = 1")
    assert message.startswith(f"{SHOWN}: invalid TOML:")
    assert "line 1" in message


def test_physical_dut_needs_a_real_port() -> None:
    text = (
        SIM.replace('driver = "sim"\nmodel', 'driver = "physical"\nwiring = "config"\nmodel')
        .replace("time_scale = 0.05\n", "")
        .replace('[power]\ndriver = "sim"\noff_timeout_s = 5.0\n', "")
    )
    assert _error(text).startswith(f"{SHOWN}: console.url: a physical terminal needs")


def test_sim_power_needs_a_process_terminal() -> None:
    text = (
        SIM.replace('driver = "sim"\nmodel', 'driver = "physical"\nwiring = "config"\nmodel')
        .replace("time_scale = 0.05\n", "")
        .replace('url = "dut:"', 'url = "socket://127.0.0.1:4001"')
    )
    assert _error(text).startswith(
        f"{SHOWN}: power.driver: 'sim' needs dut.driver 'sim' or 'command'"
    )


def test_a_missing_dependency_is_a_rig_file_error() -> None:
    start = SIM.index("[host]")
    text = SIM[:start] + SIM[SIM.index("# Network faults") :]
    assert _error(text).startswith(f"{SHOWN}: network.driver: 'proxy' needs a [host] section")


def test_network_with_its_own_upstream_needs_no_host() -> None:
    start = SIM.index("[host]")
    text = SIM[:start] + SIM[SIM.index("# Network faults") :]
    text = text.replace(
        '[network]\ndriver = "proxy"', '[network]\ndriver = "proxy"\nupstream = "127.0.0.1:9"'
    )
    config = parse_rig(text, SOURCE)
    assert "host" not in config.sections
    network = config.section("network")
    assert isinstance(network, ProxyNetworkConfig)
    assert network.upstream == "127.0.0.1:9"


def test_missing_rig_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: rig file not found"):
        load_rig(tmp_path / "nope.toml")


def test_relative_paths_are_resolved_once_against_the_rig_file(tmp_path: Path) -> None:
    (tmp_path / "fw.json").write_text("{}")
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "p.json").write_text("{}")
    text = (
        SIM.replace("../fixtures/firmware/pos-sim-healthy-1.4.2.fw.json", "fw.json")
        .replace("../fixtures/host/params-v1.json", "params/p.json")
        .replace("../fixtures", str(FIXTURES))
    )
    config = parse_rig(text, tmp_path / "rig.toml")
    assert config.dut.firmware == tmp_path / "fw.json"
    host = config.section("host")
    assert isinstance(host, SimHostConfig)
    assert host.parameters == tmp_path / "params" / "p.json"
    assert host.keys == FIXTURES / "host" / "keys-test.json"


def test_paths_read_as_written_in_errors(tmp_path: Path) -> None:
    text = SIM.replace("../fixtures", str(FIXTURES)).replace(
        'parameters = "' + str(FIXTURES) + '/host/params-v1.json"', 'parameters = "../p.json"'
    )
    with pytest.raises(ConfigError, match=r"host\.parameters: file not found: \.\./p\.json$"):
        parse_rig(text, tmp_path / "rig.toml")


def test_host_defaults_to_the_shipped_parameters() -> None:
    text = SIM.replace('parameters = "../fixtures/host/params-v1.json"\n', "")
    host = parse_rig(text, SOURCE).section("host")
    assert isinstance(host, SimHostConfig)
    assert host.parameters == FIXTURES / "host" / "params-v1.json"
