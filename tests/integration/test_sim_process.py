"""The simulated terminal as a real process behind a pty, driven over the test port.

Started exactly as the rig starts it (``python -m hil.sim`` with the HIL_* variables
and the pty master inherited); every wait is on the terminal's events, never a sleep.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.errors import TerminalCommandError
from hil.firmware import image_sha256
from hil.protocol.session import ConsoleSession, Event
from hil.suite import FIXTURES

pytestmark = pytest.mark.integration

FIRMWARE = FIXTURES / "firmware"
HEALTHY = FIRMWARE / "pos-sim-healthy-1.4.2.fw.json"
TAMPERED = FIRMWARE / "tampered-1.4.2.fw.json"
COMM_LIES = FIRMWARE / "pos-sim-comm-lies-1.4.2.fw.json"

SERIAL = "SIM8A0000042"
TID = "T0000042"
MID = "898310058120042"
BOOT_TIMEOUT = 15.0
ITEMS = (
    "power", "memory", "tamper", "comm", "terminal_id", "card_reader", "qr_scanner",
    "payment_interfaces", "data_sync", "firmware", "security", "performance", "logs",
)  # fmt: skip
NO_CHANNEL_FAILURES = {
    "comm": "E_COMM_NO_HOST",
    "terminal_id": "E_TID_NO_HOST",
    "card_reader": "E_READER_ABSENT",
    "qr_scanner": "E_CAMERA_ABSENT",
    "data_sync": "E_SYNC_NO_HOST",
}


class SimRig:
    """A pty whose slave end is open on the rig side, and the terminal process on its
    master end; the pty outlives power cycles like a lab's serial cable."""

    def __init__(self, tmp_path: Path) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.state_dir = tmp_path / "flash"
        self.stderr_path = tmp_path / "dut-stderr.log"
        # Opened before the terminal runs: pyserial's open flushes input.
        self.console = ConsoleSession.open_url(os.ttyname(self.slave))
        self.console.start()
        self.process: subprocess.Popen[bytes] | None = None

    def power_on(self, firmware: Path | None = HEALTHY, **extra: str) -> int:
        """Start the terminal; returns the event cursor taken just before."""
        env = {
            **os.environ,
            "HIL_CONSOLE_FD": str(self.master),
            "HIL_STATE_DIR": str(self.state_dir),
            "HIL_FACTORY_SERIAL": SERIAL,
            "HIL_PROVISION_TID": TID,
            "HIL_PROVISION_MID": MID,
            "HIL_TIME_SCALE": "0.05",
            "HIL_CHANNELS": "",
            **extra,
        }
        env.pop("HIL_FIRMWARE", None)
        if firmware is not None:
            env["HIL_FIRMWARE"] = str(firmware)
        cursor = self.console.events.mark()
        with self.stderr_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hil.sim"],
                env=env,
                pass_fds=(self.master,),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        return cursor

    def wait(self, name: str, cursor: int, **kw: Any) -> Event:
        return self.console.events.wait_for(name, since=cursor, timeout=BOOT_TIMEOUT, **kw)

    def events(self, cursor: int, name: str) -> list[Event]:
        return self.console.events.find(name, since=cursor)

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.console.request(cmd, args or {}, timeout=5.0)

    def refused(self, cmd: str, args: dict[str, Any] | None = None) -> TerminalCommandError:
        with pytest.raises(TerminalCommandError) as err:
            self.request(cmd, args)
        return err.value

    def cut_power(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        return ""

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.console.close()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRig]:
    rig = SimRig(tmp_path)
    try:
        yield rig
    finally:
        rig.close()
    if rig.process is not None and rig.process.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"terminal exited {rig.process.returncode}:\n{rig.stderr()}")


def test_boot_sequence_identity_and_commands(sim: SimRig) -> None:
    cursor = sim.power_on()
    ready = sim.wait("sys.ready", cursor)
    boot = sim.wait("sys.boot", cursor)
    assert boot.data == {
        "boot_reason": "power_on",
        "firmware_version": "1.4.2",
        "model": "POS-SIM-A8",
    }
    started = sim.wait("selfcheck.started", cursor)
    assert started.data == {"trigger": "boot", "items": list(ITEMS)}
    items = sim.events(cursor, "selfcheck.item")
    assert [e.data["item"] for e in items] == list(ITEMS)
    finished = sim.wait("selfcheck.finished", cursor)
    assert boot.seq < started.seq < items[0].seq < items[-1].seq < finished.seq < ready.seq
    failed = {e.data["item"]: e.data["code"] for e in items if e.data["status"] == "fail"}
    assert failed == NO_CHANNEL_FAILURES
    assert all(e.data["status"] == "pass" for e in items if e.data["item"] not in failed)
    assert (finished.data["passed"], finished.data["warned"], finished.data["failed"]) == (8, 0, 5)

    screens = [e.data["screen"] for e in sim.events(cursor, "display.changed")]
    assert screens[0] == "boot" and screens[-1] == "idle" and "selfcheck" in screens
    progress = sim.events(cursor, "display.changed")[1].data["lines"]
    assert progress == ["自检中", "Self-check in progress", "power (1/13)"]

    info = sim.request("device.info")
    assert {k: info[k] for k in ("model", "serial_number", "terminal_id", "merchant_id")} == {
        "model": "POS-SIM-A8",
        "serial_number": SERIAL,
        "terminal_id": TID,
        "merchant_id": MID,
    }
    assert info["firmware_version"] == "1.4.2"
    assert info["firmware_sha256"] == image_sha256(HEALTHY)
    assert (info["protocol_version"], info["boot_reason"], info["state"]) == (1, "power_on", "idle")
    assert sim.request("sys.ping")["uptime_ms"] >= 0

    screen = sim.request("display.read")
    assert screen["screen"] == "idle"
    assert screen["lines"][:3] == ["请刷卡/插卡/挥卡", "Present card", TID]
    assert screen["lines"][3] == "故障 Faults: " + ",".join(NO_CHANNEL_FAILURES.values())

    logged = {e["code"] for e in sim.request("log.read", {"limit": 1000})["entries"]}
    assert set(NO_CHANNEL_FAILURES.values()) <= logged
    assert {"I_BOOT", "I_SELFCHECK"} <= logged

    assert sim.request("selfcheck.items")["items"] == list(ITEMS)
    assert sim.request("selfcheck.last")["results"] == finished.data["results"]

    # A command self-check: same events, trigger "command", table order.
    cursor = sim.console.events.mark()
    result = sim.request("selfcheck.run", {"items": ["security", "power"]})
    assert [r["item"] for r in result["results"]] == ["power", "security"]
    assert result["passed"] == 2
    done = sim.wait("selfcheck.finished", cursor)
    assert done.data["trigger"] == "command"
    assert len(sim.events(cursor, "selfcheck.item")) == 2

    assert sim.refused("selfcheck.run", {"items": ["power", "warp"]}).code == "E_BAD_ARGS"
    assert "warp" in sim.refused("selfcheck.run", {"items": ["warp"]}).terminal_message
    assert sim.refused("coffee.make").code == "E_UNKNOWN_COMMAND"
    assert sim.refused("config.get", {"key": "host.nope"}).code == "E_CONFIG_KEY"
    bad = sim.refused("config.set", {"key": "host.port", "value": 70000})
    assert bad.code == "E_CONFIG_VALUE" and "65535" in bad.terminal_message
    assert sim.request("config.set", {"key": "interfaces.qr", "value": False}) == {
        "key": "interfaces.qr",
        "value": False,
    }
    assert sim.request("config.get")["config"]["interfaces.qr"] is False

    # A second self-check while one runs is refused, not queued.
    cursor = sim.console.events.mark()
    first: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(sim.request("selfcheck.run")))
    runner.start()
    try:
        sim.wait("selfcheck.started", cursor, where=lambda d: d["trigger"] == "command")
        assert sim.refused("selfcheck.run").code == "E_BUSY"
    finally:
        runner.join(10)
    assert len(first["results"]) == 13

    # Garbage on the port (a frame announcing 64 KiB, broken frames, stray controls)
    # costs at most a retransmission, never the terminal.
    os.write(sim.slave, b"\x02\xff\xff garbage \x03\x00\x00\x15\x06" + bytes(range(256)))
    os.write(sim.slave, b"\x02\x00\x05{bad}\x03\x12\x34")
    assert sim.request("device.info")["state"] == "idle"
    assert sim.process is not None and sim.process.poll() is None


def test_config_survives_power_cut(sim: SimRig) -> None:
    sim.wait("sys.ready", sim.power_on())
    sim.request("config.set", {"key": "comm.response_timeout_ms", "value": 45000})
    sim.cut_power()

    cursor = sim.power_on(firmware=None)  # boots the image already in flash
    boot = sim.wait("sys.boot", cursor)
    assert boot.data["boot_reason"] == "power_loss"
    sim.wait("sys.ready", cursor)
    assert sim.request("config.get", {"key": "comm.response_timeout_ms"})["value"] == 45000
    assert sim.request("device.info")["boot_reason"] == "power_loss"
    entries = sim.request("log.read")["entries"]
    assert "E_POWER_LOSS" in [e["code"] for e in entries]
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # one sequence across boots


def test_sigterm_is_a_graceful_power_off(sim: SimRig) -> None:
    # At full time scale the boot lasts long enough to power off in the middle of it.
    cursor = sim.power_on(HIL_TIME_SCALE="1.0")
    sim.wait("display.changed", cursor, where=lambda d: d["screen"] == "boot")
    assert sim.process is not None
    sim.process.send_signal(signal.SIGTERM)
    assert sim.wait("sys.shutdown", cursor).data == {"reason": "power_off"}
    assert sim.process.wait(5) == 0
    assert not sim.events(cursor, "sys.ready")

    cursor = sim.power_on(firmware=None)
    assert sim.wait("sys.boot", cursor).data["boot_reason"] == "power_on"
    sim.wait("sys.ready", cursor)
    cursor = sim.console.events.mark()
    sim.process.send_signal(signal.SIGTERM)
    sim.wait("sys.shutdown", cursor)
    assert sim.process.wait(5) == 0


def test_reboot_runs_the_boot_again(sim: SimRig) -> None:
    sim.wait("sys.ready", sim.power_on())
    cursor = sim.console.events.mark()
    assert sim.request("sys.reboot") == {}
    assert sim.wait("sys.shutdown", cursor).data == {"reason": "reboot"}
    boot = sim.wait("sys.boot", cursor)
    assert boot.data["boot_reason"] == "reboot"
    sim.wait("sys.ready", cursor)
    assert len(sim.events(cursor, "selfcheck.item")) == 13
    info = sim.request("device.info")
    assert (info["boot_reason"], info["state"], info["serial_number"]) == ("reboot", "idle", SERIAL)


def test_tampered_image_stays_in_recovery(sim: SimRig) -> None:
    cursor = sim.power_on(firmware=TAMPERED)
    failed = sim.wait("sys.boot_failed", cursor)
    assert failed.data["code"] == "E_FW_SIGNATURE"
    assert not sim.events(cursor, "sys.boot")
    screen = sim.request("display.read")
    assert screen["screen"] == "fw_invalid" and "E_FW_SIGNATURE" in screen["lines"]
    assert sim.request("device.info")["state"] == "recovery"
    assert sim.refused("config.get").code == "E_NOT_READY"
    assert sim.refused("selfcheck.run").code == "E_NOT_READY"
    assert "E_FW_SIGNATURE" in [e["code"] for e in sim.request("log.read")["entries"]]


def test_seeded_defect_comm_selfcheck_lies(sim: SimRig) -> None:
    cursor = sim.power_on(firmware=COMM_LIES)
    sim.wait("sys.ready", cursor)
    comm = sim.wait("selfcheck.item", cursor, where=lambda d: d["item"] == "comm")
    assert (comm.data["status"], comm.data["code"]) == ("pass", "OK")  # no host wired: a lie
