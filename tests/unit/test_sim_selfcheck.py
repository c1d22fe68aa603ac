"""The simulated terminal's pure logic: self-check items, flash store, config, display."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.errors import ConfigError
from hil.host import Behaviour, HostSimulator, load_parameter_set
from hil.sim import selfcheck
from hil.sim.channels import Channels, parse_channels
from hil.sim.comm import CommModule
from hil.sim.config import ConfigKeyError, ConfigStore, ConfigValueError, defaults, validate
from hil.sim.display import Display, Screen
from hil.sim.environment import from_environ
from hil.sim.hardware import Hardware, PowerReading
from hil.sim.security import (
    FACTORY_DEFAULT_ADMIN_PASSWORD,
    PasswordRecord,
    load_admin_record,
    provision_admin_password,
    store_admin_password,
)
from hil.sim.selfcheck import (
    ITEM_IDS,
    SELFCHECK_TABLE,
    CheckContext,
    FirmwareStatus,
    ItemResult,
    fault_lines,
    run_item,
    run_selfcheck,
)
from hil.sim.state import (
    FlashLayout,
    LogStore,
    atomic_write_json,
    read_json,
    remove_durably,
    remove_stale_temps,
)
from hil.suite import FIXTURES
from tests.conftest import fresh_process_hardware

HEALTHY = FIXTURES / "firmware" / "pos-sim-healthy-1.4.2.fw.json"

PAN = "4111111111111111"  # the classic Visa test PAN: Luhn-valid
MIB = 1024 * 1024


class FakeHardware(Hardware):
    """Readings a test sets; nothing measured from the machine."""

    def __init__(self) -> None:
        super().__init__()
        self.supply_v = 12.0
        self.battery_pct = 100
        self.tamper = False
        self.free = 1024 * MIB
        self.rss = 40 * MIB
        #: CPU seconds the process uses per second of wall time (1.0 = one busy CPU)
        self.cpu_rate = 0.01
        self.now = 100.0
        self.load: float | None = None  # None: the item's own run-queue reading
        self.connect_error: OSError | None = None
        self.readers: list[str] | RuntimeError = []
        self.dialled: list[tuple[str, int]] = []

    def supply(self) -> PowerReading:
        return PowerReading(self.supply_v, self.battery_pct)

    def tamper_open(self) -> bool:
        return self.tamper

    def flash_free_bytes(self, path: Path) -> int:
        return self.free

    def rss_bytes(self) -> int:
        return self.rss

    def cpu_seconds(self) -> float:
        return self.now * self.cpu_rate

    def clock(self) -> float:
        return self.now

    def pass_time(self, seconds: float) -> None:
        """The test's sleep: the clock (and the CPU time it implies) moves on."""
        self.now += seconds

    def process_seconds(self) -> float:
        return self.now

    def load_reading(self, measured_per_cpu: float) -> tuple[float, str]:
        if self.load is not None:
            return self.load, "sensor"
        return measured_per_cpu, "measured"

    def cpu_count(self) -> int:
        return 2

    def tcp_connect_ms(self, address: str, port: int, timeout_s: float) -> float:
        self.dialled.append((address, port))
        if self.connect_error is not None:
            raise self.connect_error
        return 1.5

    def pcsc_readers(self) -> list[str]:
        if isinstance(self.readers, RuntimeError):
            raise self.readers
        return self.readers


class Rig:
    """A context builder: flash, config, channels and hardware a test can vary."""

    def __init__(self, root: Path) -> None:
        self.layout = FlashLayout(root)
        self.layout.ensure()
        self.layout.active_image.write_bytes(HEALTHY.read_bytes())
        self.logs = LogStore(self.layout.logs_dir)
        self.hw = FakeHardware()
        self.config: dict[str, Any] = defaults() | {
            "terminal_id": "T0000001",
            "merchant_id": "898310058120001",
        }
        self.channels = Channels()
        self.defects: frozenset[str] = frozenset()
        self.version = "1.4.2"
        self.comm: CommModule | None = None
        # Few iterations: the check is the same, the suite stays fast.
        record = PasswordRecord.create("s3cret-admin", iterations=1000)
        atomic_write_json(self.layout.security, {"admin": record.as_dict()})

    def ctx(self) -> CheckContext:
        return CheckContext(
            channels=self.channels,
            config=self.config,
            firmware=FirmwareStatus(
                version=self.version,
                model="POS-SIM-A8",
                sha256=hashlib.sha256(HEALTHY.read_bytes()).hexdigest(),
                path=self.layout.active_image,
                verified=True,
            ),
            layout=self.layout,
            log_store=self.logs,
            hardware=self.hw,
            defects=self.defects,
            comm=self.comm,
            sleep=self.hw.pass_time,
        )

    def run(self, item: str) -> ItemResult:
        return run_item(item, self.ctx(), delay_s=0, sleep=lambda s: None)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "flash")


# --- the table ------------------------------------------------------------------------


def test_table_order_and_codes_are_unique() -> None:
    assert ITEM_IDS == (
        "power", "memory", "tamper", "comm", "terminal_id", "card_reader", "qr_scanner",
        "payment_interfaces", "data_sync", "firmware", "security", "performance", "logs",
    )  # fmt: skip
    codes = [o.code for spec in SELFCHECK_TABLE for o in spec.outcomes if o.code != "OK"]
    assert len(codes) == len(set(codes))
    for spec in SELFCHECK_TABLE:
        assert 50 <= spec.nominal_ms <= 400
        for o in spec.outcomes:
            assert o.code == "OK" or o.code.startswith("E_")
            assert (o.status == "pass") == (o.code == "OK")
            assert o.screen or o.code == "OK"


def test_progress_and_fault_lines(rig: Rig) -> None:
    lines = selfcheck.progress_lines("comm", 4, 13)
    assert lines == ["自检中", "Self-check in progress", "comm (4/13)"]
    results = [rig.run(i) for i in ("power", "comm", "qr_scanner")]
    assert fault_lines(results) == [
        "故障 Faults: E_COMM_NO_HOST,E_CAMERA_ABSENT",
        "E_COMM_NO_HOST 未配置主机 No host configured",
        "E_CAMERA_ABSENT 扫码器故障 QR scanner fault",
    ]
    assert fault_lines(results[:1]) == []


# --- item by item ---------------------------------------------------------------------


def test_power(rig: Rig) -> None:
    r = rig.run("power")
    assert (r.status, r.code) == ("pass", "OK")
    assert (r.details["supply_v"], r.details["battery_pct"]) == (12.0, 100)
    rig.hw.supply_v = 10.7
    r = rig.run("power")
    assert (r.status, r.code) == ("fail", "E_POWER_LOW")
    assert "10.7 V below 10.8 V" in r.message
    rig.hw.supply_v, rig.hw.battery_pct = 12.0, 10
    assert rig.run("power").code == "E_POWER_BATTERY_LOW"
    rig.channels = parse_channels("faultlines=/tmp/x")
    r = rig.run("power")
    assert (r.status, r.code) == ("warn", "E_POWER_UNVERIFIED")


def test_memory(rig: Rig) -> None:
    r = rig.run("memory")
    assert (r.status, r.code) == ("pass", "OK")
    assert r.details["image_sha256_now"] == r.details["image_sha256_at_boot"]
    rig.hw.free = 15 * MIB
    assert rig.run("memory").code == "E_MEM_FLASH_LOW"
    rig.hw.free, rig.hw.rss = 1024 * MIB, 600 * MIB
    assert rig.run("memory").code == "E_MEM_RAM"
    rig.hw.rss = 40 * MIB
    rig.layout.active_image.write_bytes(HEALTHY.read_bytes() + b" ")
    r = rig.run("memory")
    assert (r.status, r.code) == ("fail", "E_MEM_INTEGRITY")
    rig.layout.active_image.unlink()
    assert "unreadable" in rig.run("memory").message


def test_memory_measures_for_real(rig: Rig) -> None:
    ctx = rig.ctx()
    real = CheckContext(**{**ctx.__dict__, "hardware": fresh_process_hardware()})
    r = run_item("memory", real, delay_s=0, sleep=lambda s: None)
    assert r.code == "OK"
    assert r.details["rss_bytes"] > MIB
    assert r.details["flash_free_bytes"] > 0


def test_tamper(rig: Rig) -> None:
    assert rig.run("tamper").code == "OK"
    rig.hw.tamper = True
    r = rig.run("tamper")
    assert (r.status, r.code, r.details["switch"]) == ("fail", "E_TAMPER", "open")


def test_comm_without_host_fails(rig: Rig) -> None:
    r = rig.run("comm")
    assert (r.status, r.code, r.message) == ("fail", "E_COMM_NO_HOST", "no host configured")
    assert rig.hw.dialled == []


def _wire_host(rig: Rig, host: HostSimulator) -> None:
    """A real host on loopback and the terminal's comm module, as the boot wires them."""
    address, port = host.address
    rig.channels = parse_channels(f"host={address}:{port}")
    rig.config |= {"comm.connect_timeout_ms": 500, "comm.response_timeout_ms": 500}
    rig.config["comm.retries"] = 0
    rig.comm = CommModule(
        layout=rig.layout, logs=rig.logs, channels=rig.channels, config=lambda: rig.config,
        serial_number="SIM8A0000001", time_scale=0.0, halt=threading.Event(),
        emit=lambda name, data: None, show=lambda screen, lines: None,
    )  # fmt: skip


@pytest.fixture
def host() -> Iterator[HostSimulator]:
    simulator = HostSimulator(load_parameter_set(FIXTURES / "host" / "params-v1.json"))
    simulator.start()
    yield simulator
    simulator.stop()


def test_comm_echoes_configured_host_else_channel(rig: Rig, host: HostSimulator) -> None:
    _wire_host(rig, host)
    r = rig.run("comm")
    assert (r.status, r.code) == ("pass", "OK")
    assert [m.transaction for m in host.records()] == ["echo", "echo"]  # in and out
    with socket.socket() as closed:  # bound, not listening: refused, and stays ours
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        rig.config |= {"host.address": "127.0.0.1", "host.port": port}
        r = rig.run("comm")
    assert (r.status, r.code) == ("fail", "E_COMM_REFUSED")
    assert f"127.0.0.1:{port} refused" in r.message


def test_comm_seeded_defect_lies(rig: Rig) -> None:
    rig.defects = frozenset({"comm_selfcheck_lies"})
    r = rig.run("comm")
    assert (r.status, r.code) == ("pass", "OK")
    assert rig.hw.dialled == []  # it never dialled: the pass is a lie


def test_terminal_id(rig: Rig) -> None:
    r = rig.run("terminal_id")
    assert (r.status, r.code) == ("fail", "E_TID_NO_HOST")
    rig.channels = parse_channels("host=127.0.0.1:1")
    r = rig.run("terminal_id")
    assert (r.status, r.code) == ("fail", "E_TID_NO_HOST")  # no comm module: cannot sign on
    for bad in ("", "T00001", "T000000\x01"):
        rig.config["terminal_id"] = bad
        assert rig.run("terminal_id").code == "E_TID_INVALID"


def test_card_reader(rig: Rig) -> None:
    r = rig.run("card_reader")
    assert (r.status, r.code) == ("fail", "E_READER_ABSENT")
    rig.channels = parse_channels("pcsc=Virtual PCD 00 00")
    rig.hw.readers = RuntimeError("PC/SC service unusable: no pcscd")
    assert "no pcscd" in rig.run("card_reader").message
    rig.hw.readers = ["Other Reader 00 00"]
    assert rig.run("card_reader").code == "E_READER_ABSENT"
    rig.hw.readers = ["Other Reader 00 00", "Virtual PCD 00 00"]
    r = rig.run("card_reader")
    assert (r.status, r.code) == ("pass", "OK")
    assert r.message == "card reader 'Virtual PCD 00 00' present"


def test_qr_scanner(rig: Rig) -> None:
    assert rig.run("qr_scanner").code == "E_CAMERA_ABSENT"
    rig.channels = parse_channels("camera=shm:frames")
    r = rig.run("qr_scanner")  # more in tests/unit/test_qr_scanner.py
    assert (r.status, r.code) == ("fail", "E_CAMERA_ABSENT")
    assert "not ADDRESS:PORT" in r.message


def test_payment_interfaces(rig: Rig) -> None:
    r = rig.run("payment_interfaces")
    assert (r.status, r.code) == ("pass", "OK")
    assert r.details["interfaces"]["nfc"] == {"enabled": True, "usable": True}
    rig.config |= {"interfaces.card": False, "interfaces.nfc": False}
    r = rig.run("payment_interfaces")
    assert r.code == "OK" and r.message == "usable interfaces: qr"
    rig.config["interfaces.qr"] = False
    r = rig.run("payment_interfaces")
    assert (r.status, r.code) == ("fail", "E_IFACE_NONE")
    assert "all interfaces disabled" in r.message
    rig.config |= {"interfaces.qr": True, "permissions.sale": False, "permissions.refund": False}
    r = rig.run("payment_interfaces")
    assert r.code == "E_IFACE_NONE"
    assert "no transaction type permitted" in r.message
    assert r.details["interfaces"]["qr"] == {"enabled": True, "usable": False}


def test_data_sync(rig: Rig, host: HostSimulator) -> None:
    assert rig.run("data_sync").code == "E_SYNC_NO_HOST"
    _wire_host(rig, host)
    r = rig.run("data_sync")
    assert (r.status, r.code) == ("pass", "OK")
    assert r.details["digest"] == host.parameters.digest
    host.set_parameters(load_parameter_set(FIXTURES / "host" / "params-v2.json"))
    host.behave("parameter_download", Behaviour.close_mid_response(), skip=1)
    r = rig.run("data_sync")
    assert (r.status, r.code) == ("fail", "E_SYNC_INTERRUPTED")
    assert "parameters 2024.11.01 kept" in r.message
    assert rig.comm is not None and rig.comm.parameter_state()["version"] == "2024.11.01"


def test_corrupted_download_data_is_caught_by_digest_and_check_value(
    rig: Rig, host: HostSimulator
) -> None:
    _wire_host(rig, host)
    host.behave("parameter_download", Behaviour.corrupt())
    r = rig.run("data_sync")
    assert (r.status, r.code) == ("fail", "E_SYNC_DIGEST")
    notes = {rec.note for rec in host.records() if rec.direction == "out"}
    assert "field 62 corrupted (last byte flipped)" in notes
    host.reset()
    host.behave("key_download", Behaviour.corrupt())
    r = rig.run("data_sync")
    assert (r.status, r.code) == ("fail", "E_SYNC_KEYS")
    host.reset()
    host.behave("parameter_download", Behaviour.decline("30"))
    assert rig.run("data_sync").code == "E_SYNC_REFUSED"
    host.reset()
    assert rig.run("data_sync").code == "OK"


def test_terminal_id_signs_on(rig: Rig, host: HostSimulator) -> None:
    _wire_host(rig, host)
    assert rig.run("terminal_id").code == "OK"
    host.registry.bind("T0000001", "ANOTHER-DEVICE")
    r = rig.run("terminal_id")
    assert (r.status, r.code) == ("fail", "E_TID_CONFLICT")


def test_firmware_item(rig: Rig) -> None:
    r = rig.run("firmware")
    assert (r.status, r.code, r.details["version"]) == ("pass", "OK", "1.4.2")
    assert len(r.details["sha256"]) == 64
    rig.version = "1.4"
    assert rig.run("firmware").code == "E_FW_VERSION"


def test_security(rig: Rig) -> None:
    r = rig.run("security")
    assert (r.status, r.code) == ("pass", "OK")
    store_admin_password(rig.layout, FACTORY_DEFAULT_ADMIN_PASSWORD)
    r = rig.run("security")
    assert (r.status, r.code) == ("warn", "E_SEC_DEFAULT_PASSWORD")
    rig.layout.security.unlink()
    assert rig.run("security").code == "E_SEC_NO_PASSWORD"
    rig.layout.security.write_text("{", encoding="utf-8")
    assert rig.run("security").code == "E_SEC_NO_PASSWORD"


def test_security_record_holds_no_password(rig: Rig) -> None:
    store_admin_password(rig.layout, "s3cret-admin")
    text = rig.layout.security.read_text(encoding="utf-8")
    assert "s3cret" not in text
    record = load_admin_record(rig.layout)
    assert record is not None and record.matches("s3cret-admin") and not record.matches("x")


def test_provision_admin_password_only_once(rig: Rig) -> None:
    rig.layout.security.unlink()
    assert provision_admin_password(rig.layout, None)
    first = rig.layout.security.read_bytes()
    assert not provision_admin_password(rig.layout, FACTORY_DEFAULT_ADMIN_PASSWORD)
    assert rig.layout.security.read_bytes() == first
    assert rig.run("security").code == "OK"  # a random password is not the default


def test_performance(rig: Rig) -> None:
    r = rig.run("performance")
    assert (r.status, r.code) == ("pass", "OK")
    assert r.details["cpu_pct"] == 1.0 and r.details["window_s"] == 0.25
    rig.hw.cpu_rate = 0.95  # busy during the window the item measures
    r = rig.run("performance")
    assert (r.status, r.code) == ("warn", "E_PERF_CPU")
    assert "95.0% above 90%" in r.message
    rig.hw.cpu_rate = 0.9  # at the limit is not above it
    assert rig.run("performance").code == "OK"
    rig.hw.cpu_rate = 0.01
    rig.hw.load = 4.5
    r = rig.run("performance")
    assert (r.status, r.code) == ("warn", "E_PERF_LOAD")
    rig.hw.load = 4.0  # at the limit
    assert rig.run("performance").code == "OK"


def test_performance_measures_for_real(rig: Rig) -> None:
    """The CPU figure is this process's own demand over the window: busy, then idle,
    the same whether or not other processes load the machine."""

    def busy(seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            pass

    real = CheckContext(**{**rig.ctx().__dict__, "hardware": Hardware(), "sleep": busy})
    idle = CheckContext(**{**real.__dict__, "sleep": time.sleep})
    spinners: list[subprocess.Popen[bytes]] = []
    for others in (0, 2 * (os.cpu_count() or 1)):
        while len(spinners) < others:  # other people's work on a shared machine
            spinners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        try:
            r = run_item("performance", real, delay_s=0, sleep=lambda s: None)
            assert r.details["cpu_seconds"] > 0.2 and r.details["cpu_pct"] > 90, (others, r)
            assert r.details["load_source"] == "measured"
            assert r.details["run_queue"] > 0.9  # the busy thread was running or runnable
            r = run_item("performance", idle, delay_s=0, sleep=lambda s: None)
            assert r.details["cpu_pct"] < 50 and r.details["window_s"] >= 0.25, (others, r)
            assert r.code == "OK", (others, r)
        finally:
            if others:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()


def test_logs(rig: Rig) -> None:
    rig.logs.append("info", "I_X", "hello")
    r = rig.run("logs")
    assert (r.status, r.code, r.details["entries"]) == ("pass", "OK", 1)
    assert not (rig.layout.logs_dir / "write-probe.json").exists()


def test_logs_finds_a_pan_written_behind_the_stores_back(rig: Rig) -> None:
    rig.logs.append("info", "I_X", "hello")
    segment = next(rig.layout.logs_dir.glob("seg-*.json"))
    data = json.loads(segment.read_text(encoding="utf-8"))
    data["entries"].append(
        {
            "seq": 2,
            "ts": "2025-01-01T00:00:00.000+00:00",
            "level": "info",
            "code": "I_X",
            "message": f"card {PAN}",
        }
    )
    segment.write_text(json.dumps(data), encoding="utf-8")
    r = rig.run("logs")
    assert (r.status, r.code) == ("fail", "E_LOG_PAN")
    assert "seq 2" in r.message and PAN not in r.message


def test_logs_unwritable(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(rig.logs, "probe_writable", refuse)
    r = rig.run("logs")
    assert (r.status, r.code) == ("fail", "E_LOG_IO")
    assert "Permission denied" in r.message


def test_no_channels_fails_exactly_the_channel_items(rig: Rig) -> None:
    statuses = {i: rig.run(i) for i in ITEM_IDS}
    failed = {i: r.code for i, r in statuses.items() if r.status != "pass"}
    assert failed == {
        "comm": "E_COMM_NO_HOST",
        "terminal_id": "E_TID_NO_HOST",
        "card_reader": "E_READER_ABSENT",
        "qr_scanner": "E_CAMERA_ABSENT",
        "data_sync": "E_SYNC_NO_HOST",
    }


# --- the runner -----------------------------------------------------------------------


def test_run_selfcheck_order_delays_and_callbacks(rig: Rig) -> None:
    slept: list[float] = []
    started: list[tuple[str, int, int]] = []
    done: list[str] = []
    summary = run_selfcheck(
        ["logs", "power", "comm"],
        rig.ctx(),
        trigger="command",
        time_scale=0.5,
        sleep=slept.append,
        on_item_start=lambda item, n, total: started.append((item, n, total)),
        on_item_done=lambda result: done.append(result.item),
    )
    assert started == [("power", 1, 3), ("comm", 2, 3), ("logs", 3, 3)]
    assert done == ["power", "comm", "logs"]
    assert slept == [0.06, 0.2, 0.075]
    d = summary.as_dict()
    assert (d["trigger"], d["passed"], d["warned"], d["failed"]) == ("command", 2, 0, 1)
    assert [r["item"] for r in d["results"]] == ["power", "comm", "logs"]
    assert set(d["results"][0]) == {"item", "status", "code", "message", "duration_ms", "details"}
    json.dumps(d)  # goes on the wire as is


def test_sleep_can_abort_a_run(rig: Rig) -> None:
    class Off(Exception):
        pass

    def sleep(seconds: float) -> None:
        raise Off

    with pytest.raises(Off):
        run_selfcheck(ITEM_IDS, rig.ctx(), trigger="boot", time_scale=1.0, sleep=sleep)


def test_unknown_items() -> None:
    assert selfcheck.unknown_items(["power", "warp_drive"]) == ["warp_drive"]


# --- flash store ----------------------------------------------------------------------


def test_atomic_write_leaves_old_content_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "config.json"
    atomic_write_json(target, {"v": 1})

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write_json(target, {"v": 2})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # temp cleaned up


_HAMMER = """
import sys
from pathlib import Path
from hil.sim.state import atomic_write_json
target = Path(sys.argv[1])
i = 0
print("go", flush=True)
while True:
    i += 1
    atomic_write_json(target, {"i": i, "pad": "x" * 20000})
"""


def test_sigkill_mid_write_never_tears_a_file(tmp_path: Path) -> None:
    target = tmp_path / "config.json"
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _HAMMER, str(target)], stdout=subprocess.PIPE
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"go\n"
            time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
        data = read_json(target)
        assert data["pad"] == "x" * 20000
        remove_stale_temps(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_read_json_and_remove_durably(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    assert read_json(path) is None
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError):
        read_json(path)
    remove_durably(path)
    remove_durably(path)  # absent is fine
    assert not path.exists()


def test_log_store_persists_seq_and_masks_pans(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    store.append("info", "I_A", "first")
    store.append("error", "E_B", f"card {PAN} read")
    again = LogStore(tmp_path)
    entry = again.append("warn", "I_C", "after reboot")
    assert entry.seq == 3
    entries, nxt = again.read()
    assert [e.seq for e in entries] == [1, 2, 3] and nxt == 4
    assert entries[1].message == "card 411111******1111 read"
    for segment in tmp_path.iterdir():
        assert PAN not in segment.read_text(encoding="utf-8")
    with pytest.raises(ValueError):
        store.append("debug", "I_X", "no such level")


def test_log_store_read_cursor(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    for i in range(5):
        store.append("info", "I_X", f"entry {i}")
    first, nxt = store.read(0, limit=2)
    assert [e.seq for e in first] == [1, 2] and nxt == 3
    rest, nxt = store.read(nxt, limit=200)
    assert [e.seq for e in rest] == [3, 4, 5] and nxt == 6
    none, nxt = store.read(nxt)
    assert none == [] and nxt == 6


def test_log_store_rotates_segments(tmp_path: Path) -> None:
    store = LogStore(tmp_path, segment_size=3, max_segments=2)
    for i in range(10):
        store.append("info", "I_X", f"entry {i}")
    # Each rotation is recorded as an entry of its own (I_LOG_ROTATED): 10 entries and
    # two rotation records make 12, in segments 1-4; the newest two segments are kept.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg-000003.json", "seg-000004.json"]
    reopened = LogStore(tmp_path, segment_size=3, max_segments=2)
    entries, _ = reopened.read()
    assert [e.seq for e in entries] == list(range(entries[0].seq, entries[-1].seq + 1))
    assert entries[-1].message == "entry 9"
    assert [e.seq for e in entries] == [7, 8, 9, 10, 11, 12]
    assert store.rotated_entries == 6 and store.capacity == 6
    assert [e.code for e in entries].count("I_LOG_ROTATED") >= 1
    assert reopened.append("info", "I_X", "next").seq == entries[-1].seq + 1


def test_log_store_skips_a_corrupt_segment(tmp_path: Path) -> None:
    store = LogStore(tmp_path, segment_size=2)
    for i in range(4):
        store.append("info", "I_X", f"entry {i}")
    (tmp_path / "seg-000001.json").write_text("garbage", encoding="utf-8")
    reopened = LogStore(tmp_path, segment_size=2)
    assert reopened.load_warnings and "seg-000001.json" in reopened.load_warnings[0]
    assert [e.seq for e in reopened.read()[0]] == [3, 4]


# --- config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("terminal_id", "T0000002"),
        ("merchant_id", "123456789012345"),
        ("host.address", "127.0.0.1"),
        ("host.address", "acquirer.example"),
        ("host.address", "::1"),
        ("host.address", ""),
        ("host.port", 5000),
        ("comm.connect_timeout_ms", 100),
        ("comm.response_timeout_ms", 45000),
        ("comm.retries", 0),
        ("interfaces.nfc", False),
        ("permissions.refund", False),
    ],
)
def test_config_accepts(key: str, value: Any) -> None:
    assert validate(key, value) == value


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("terminal_id", "T01", "exactly 8"),
        ("terminal_id", 12345678, "string"),
        ("merchant_id", "12345678901234\u00e9", "printable ASCII"),
        ("host.address", "bad host!", "neither an IP"),
        ("host.port", 70000, "between 0 and 65535"),
        ("host.port", "5000", "integer"),
        ("comm.retries", True, "integer"),
        ("comm.connect_timeout_ms", 50, "between 100"),
        ("interfaces.card", 1, "true or false"),
    ],
)
def test_config_rejects(key: str, value: Any, reason: str) -> None:
    with pytest.raises(ConfigValueError, match=reason):
        validate(key, value)


def test_config_unknown_key() -> None:
    with pytest.raises(ConfigKeyError):
        validate("host.nope", 1)


def test_config_store_persists_and_survives_corruption(tmp_path: Path) -> None:
    layout = FlashLayout(tmp_path)
    store = ConfigStore(layout)
    assert store.get("comm.retries") == 3
    store.set("comm.response_timeout_ms", 45000)
    assert ConfigStore(layout).get("comm.response_timeout_ms") == 45000
    layout.config.write_text("{", encoding="utf-8")
    fallback = ConfigStore(layout)
    assert fallback.values() == defaults()
    assert "unreadable" in fallback.load_warning


# --- display, channels, environment ---------------------------------------------------


def test_display_counts_changes_and_notifies() -> None:
    seen: list[Screen] = []
    display = Display(seen.append)
    assert display.show("boot", ["POS-SIM", "Starting..."])
    assert not display.show("boot", ["POS-SIM", "Starting..."])
    assert display.show("idle", ["x"])
    assert [(s.screen, s.changed_seq) for s in seen] == [("boot", 1), ("idle", 2)]
    assert display.read() == Screen("idle", ("x",), 2)


def test_parse_channels() -> None:
    ch = parse_channels(" host=127.0.0.1:5000, pcsc=Virtual PCD 00 00,warp, ,camera")
    assert dict(ch.wired) == {"host": "127.0.0.1:5000", "pcsc": "Virtual PCD 00 00", "camera": ""}
    assert ch.ignored == ("warp",)
    assert ch.host_endpoint() == ("127.0.0.1", 5000)
    assert parse_channels("host").host_endpoint() is None
    assert parse_channels("").wired == {}


def _env(**extra: str) -> dict[str, str]:
    return {"HIL_CONSOLE_FD": "5", "HIL_STATE_DIR": "/tmp/flash", **extra}


def test_environment_defaults_and_values() -> None:
    env = from_environ(_env())
    assert (env.console_fd, env.time_scale, env.firmware, env.channels.wired) == (5, 1.0, None, {})
    env = from_environ(
        _env(HIL_TIME_SCALE="0.05", HIL_FIRMWARE="/x.fw.json", HIL_PROVISION_TID="T0000001")
    )
    assert (env.time_scale, env.firmware) == (0.05, Path("/x.fw.json"))
    assert env.provision_tid == "T0000001"
    assert env.flash_sync is True  # a terminal run alone syncs its flash
    assert from_environ(_env(HIL_FLASH_SYNC="0")).flash_sync is False
    assert env.decode_memo is None  # every frame decoded
    assert from_environ(_env(HIL_DECODE_MEMO="/m")).decode_memo == Path("/m")


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"HIL_STATE_DIR": "/x"}, "HIL_CONSOLE_FD is required"),
        ({"HIL_CONSOLE_FD": "x", "HIL_STATE_DIR": "/x"}, "HIL_CONSOLE_FD must be"),
        ({"HIL_CONSOLE_FD": "5"}, "HIL_STATE_DIR is required"),
        (_env(HIL_TIME_SCALE="fast"), "HIL_TIME_SCALE"),
        (_env(HIL_TIME_SCALE="-1"), "HIL_TIME_SCALE"),
        (_env(HIL_PROVISION_TID="T1"), "HIL_PROVISION_TID"),
        (_env(HIL_PROVISION_MID="M1"), "HIL_PROVISION_MID"),
        (_env(HIL_FLASH_SYNC="yes"), "HIL_FLASH_SYNC must be 0 or 1"),
    ],
)
def test_environment_errors_name_the_variable(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        from_environ(environ)
