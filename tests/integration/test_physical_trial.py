"""The physical-terminal trial: a terminal the rig did not start, wired by configuration.

tests/integration/vendor_bench.py plays a vendor's terminal on a bench: its test port
behind ``socket://`` (ser2net), its supply through relay 1 of a scripted Devantech
USB-RLY16 on a pty, no ``HIL_CHANNELS``. The rig file names it ``physical`` with
``wiring = "config"``: the rig pushes the host (through its fault proxy), the QR
screen, the fault lines and the mag head over the test port at session start, and
every boot, comm, fault-line and QR-scanner scenario runs with power through the
relay board.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hil.suite import FEATURES, FIXTURES
from tests.conftest import REPO

pytestmark = pytest.mark.integration

BENCH = Path(__file__).with_name("vendor_bench.py")
HIL = Path(sys.executable).parent / "hil"
FIRMWARE = FIXTURES / "firmware" / "pos-sim-healthy-1.4.2.fw.json"


@dataclass(frozen=True)
class VendorBench:
    folder: Path
    console: str
    relay: str
    control: Path

    def relay_bytes(self) -> bytes:
        path = self.folder / "relay.bin"
        return path.read_bytes() if path.is_file() else b""

    def flash_command(self) -> list[str]:
        return [sys.executable, str(BENCH), "flash", str(self.control), "{image}"]


@pytest.fixture
def vendor_bench(tmp_path: Path) -> Iterator[VendorBench]:
    yield from serve_vendor_bench(tmp_path / "vendor")


def serve_vendor_bench(folder: Path, *extra: str) -> Iterator[VendorBench]:
    """The vendor bench (vendor_bench.py serve, ``extra`` its options) while the caller
    uses it; stopped afterwards."""
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
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    lines = dict(process.stdout.readline().split() for _ in range(3))
    try:
        yield VendorBench(folder, lines["console"], lines["relay"], Path(lines["control"]))
    finally:
        process.terminate()
        process.wait(timeout=15)


def trial_rig(
    path: Path,
    bench: VendorBench,
    *,
    dut_extra: str = "",
    name: str = "vendor-bench",
    console_url: str | None = None,
    console_extra: str = "",
) -> Path:
    """The bench's rig file: its test port (or ``console_url`` in front of it), its
    relay as the supply, the sim's other instruments."""
    path.write_text(
        f"""
[rig]
name = "{name}"

[dut]
driver = "physical"
wiring = "config"
model = "POS-SIM-A8"
serial_number = "SIM8A0000001"
terminal_id = "T0000001"
merchant_id = "898310058120001"
boot_timeout_s = 20.0
{dut_extra}

[console]
driver = "pyserial"
url = "{console_url or bench.console}"
{console_extra}

[power]
driver = "devantech-relay"
url = "{bench.relay}"
relay = 1
settle_s = 0.1

[host]
driver = "sim"

[network]
driver = "proxy"

[qr_screen]
driver = "sim"

[faultlines]
driver = "sim"

[magstripe]
driver = "sim"

[limits]
boot_selfcheck_s = 10.0
""",
        encoding="utf-8",
    )
    return path


def run_hil(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIL), *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_boot_comm_fault_line_and_qr_scenarios_pass_on_a_terminal_wired_by_configuration(
    vendor_bench: VendorBench, tmp_path: Path
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    for name in (
        "boot_self_check.feature",
        "communication.feature",
        "fault_lines.feature",
        "qr_scanner.feature",
    ):
        shutil.copy(FEATURES / name, features)
    rig = trial_rig(tmp_path / "bench.toml", vendor_bench, dut_extra=f'firmware = "{FIRMWARE}"')
    result = run_hil(["run", "--rig", str(rig), "--features", str(features), "--no-html"], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    counts = summary["counts"]
    # 5 boot + 9 comm + 2 fault-line + 23 QR scanner scenarios, all passed: the fault
    # lines and the QR screen reach the terminal through the channels the rig pushed
    # over its test port, not through HIL_CHANNELS
    assert counts["passed"] == 39 and sum(counts.values()) == 39, counts
    assert summary["environment"]["instrument.power"] == "devantech-relay"
    assert summary["environment"]["instrument.dut"] == "physical"
    sent = vendor_bench.relay_bytes()
    # only the data sheet's bytes for relay 1 reached the board: on, off, states
    assert set(sent) <= {0x65, 0x6F, 0x5B, 0x5A}, sent.hex()
    assert sent.startswith(bytes([0x5B])), "the rig reads the state before it switches"
    assert bytes([0x65, 0x5B]) in sent and bytes([0x6F, 0x5B]) in sent
    assert sent.endswith(bytes([0x6F, 0x5B])), "the rig switches the terminal off at the end"


def test_the_terminal_is_told_its_channels_and_reboots_once_to_take_them(
    vendor_bench: VendorBench, tmp_path: Path
) -> None:
    rig = trial_rig(tmp_path / "bench.toml", vendor_bench)
    result = run_hil(["rig", "check", "--rig", str(rig)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wiring config" in result.stdout
    config = json.loads((vendor_bench.folder / "flash" / "config.json").read_text())["values"]
    assert config["host.address"] == "127.0.0.1" and config["host.port"] > 0
    for channel in ("camera", "faultlines", "maghead"):
        assert config[f"channels.{channel}"].startswith("127.0.0.1:"), config
    log = (vendor_bench.folder / "flash" / "logs").glob("seg-*.json")
    entries = [e for path in sorted(log) for e in json.loads(path.read_text())["entries"]]
    boots = [e for e in entries if e["code"] == "I_BOOT"]
    assert len(boots) == 2, "the first boot, then one reboot with the pushed wiring"
    assert "(reboot)" in boots[-1]["message"]


def test_a_vendor_image_is_flashed_by_the_vendor_command_and_its_identity_checked(
    vendor_bench: VendorBench, tmp_path: Path
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    shutil.copy(FEATURES / "boot_self_check.feature", features)
    command = json.dumps(vendor_bench.flash_command())
    rig = trial_rig(
        tmp_path / "bench.toml",
        vendor_bench,
        dut_extra=f'firmware_version = "1.4.2"\nflash_command = {command}',
    )
    result = run_hil(
        [
            "run",
            "--rig",
            str(rig),
            "--features",
            str(features),
            "--firmware",
            str(FIRMWARE),
            "--no-html",
            "--",
            "-k",
            "identity",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert summary["counts"]["passed"] == 1, summary["counts"]
    environment = summary["environment"]
    assert environment["firmware_flash_exit"] == "0"
    assert "flashing station: staged" in environment["firmware_flash_output"]
    assert environment["firmware_version"] == "1.4.2"
    flashed = (vendor_bench.folder / "flashes.log").read_text().split()
    assert flashed == [str(FIRMWARE.resolve())]


def test_a_flash_command_that_fails_is_a_rig_fault_with_its_output(
    vendor_bench: VendorBench, tmp_path: Path
) -> None:
    failing = json.dumps(
        [sys.executable, "-c", "import sys; print('no device in DFU mode'); sys.exit(4)"]
    )
    rig = trial_rig(
        tmp_path / "bench.toml",
        vendor_bench,
        dut_extra=f'firmware_version = "1.4.2"\nflash_command = {failing}',
    )
    result = run_hil(["rig", "check", "--rig", str(rig), "--firmware", str(FIRMWARE)], tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "dut: flash command exited 4: no device in DFU mode" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_wrong_port_and_a_relay_that_does_not_answer_are_one_line_each(
    tmp_path: Path,
) -> None:
    from tests.unit.test_relayboard import ScriptedBoard

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    mute = ScriptedBoard(mute=True)
    try:
        bench = VendorBench(
            tmp_path,
            f"socket://127.0.0.1:{closed.getsockname()[1]}",
            mute.path,
            tmp_path / "none.sock",
        )
        rig = trial_rig(tmp_path / "bench.toml", bench)
        result = run_hil(["rig", "check", "--rig", str(rig)], tmp_path)
    finally:
        mute.close()
        closed.close()
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "Traceback" not in output
    failed = {
        line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("FAIL")
    }
    assert set(failed) == {"console", "power"}, result.stdout
    assert "Connection refused" in failed["console"] and "check console.url" in failed["console"]
    assert "no answer to 0x5A" in failed["power"] and "Devantech USB-RLY" in failed["power"]
