"""The example bench (hil/suite/rigs/examples/bench-a.toml) validates, and its preflight
on a machine without its hardware names every missing device, one line each, exit 3,
no traceback, no hang."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.config import load_rig, parse_rig
from hil.suite import SUITE

pytestmark = pytest.mark.integration

BENCH_A = SUITE / "rigs" / "examples" / "bench-a.toml"
HIL = Path(sys.executable).parent / "hil"


def test_the_example_bench_validates_with_every_instrument() -> None:
    config = load_rig(BENCH_A)
    assert config.instruments() == {
        "dut": "physical",
        "console": "pyserial",
        "power": "snmp-pdu",
        "cards": "serial-mux",
        "faultlines": "devantech-relay",
        "host": "sim",
        "magstripe": "serial-coil",
        "network": "proxy",
        "qr_screen": "window",
    }
    assert config.dut.firmware is None  # stated by version, no pos-hil image


def test_binding_off_loopback_must_be_named_in_the_rig_file(tmp_path: Path) -> None:
    from hil.errors import ConfigError

    text = BENCH_A.read_text().replace('bench_addresses = ["192.168.50.1"]', "")
    with pytest.raises(ConfigError, match=r"network\.listen: 192\.168\.50\.1 is not loopback; "):
        parse_rig(text, tmp_path / "bench-a.toml")


def test_rig_check_without_the_hardware_names_each_missing_device(tmp_path: Path) -> None:
    # The PDU stays silent on loopback (a bound UDP port that never answers), so no
    # packet leaves this machine; everything else is simply absent.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    text = BENCH_A.read_text().replace(
        'host = "192.168.50.20"', f'host = "127.0.0.1"\nport = {port}\ntimeout_s = 0.5'
    )
    rig = tmp_path / "bench-a.toml"
    rig.write_text(text)
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(HIL), "rig", "check", "--rig", str(rig)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    finally:
        silent.close()
    took = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    failed = {
        line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("FAIL")
    }
    assert set(failed) == {
        "power",
        "console",
        "cards",
        "faultlines",
        "magstripe",
        "network",
        "qr_screen",
    }, result.stdout
    assert "no SNMP answer from the PDU at 127.0.0.1" in failed["power"]
    assert "/dev/ttyUSB0" in failed["console"] and "plugged in" in failed["console"]
    assert "/dev/ttyUSB1" in failed["cards"]
    assert "/dev/ttyACM0" in failed["faultlines"]
    assert "/dev/ttyUSB2" in failed["magstripe"]
    assert "192.168.50.1:5000" in failed["network"]
    assert ":0.1" in failed["qr_screen"]
    assert took < 60, f"rig check took {took:.1f} s"


def test_a_section_that_needs_a_missing_one_is_reported_not_built(tmp_path: Path) -> None:
    from hil.rig import Rig

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    text = f"""
[rig]
name = "half-bench"

[dut]
driver = "physical"
wiring = "config"
model = "POS-X"
serial_number = "SN1"
terminal_id = "T0000001"
merchant_id = "898310058120001"

[console]
driver = "pyserial"
url = "socket://127.0.0.1:9"

[host]
driver = "sim"
port = {taken.getsockname()[1]}

[network]
driver = "proxy"
"""
    rig = Rig(parse_rig(text, tmp_path / "half.toml"))
    try:
        missing = {line.instrument: line for line in rig.build_for_check()}
    finally:
        rig.close()
        taken.close()
    assert set(missing) == {"console", "host", "network"}
    assert missing["network"].detail == "not built: needs [host]"
    assert not any(line.ok for line in missing.values())
