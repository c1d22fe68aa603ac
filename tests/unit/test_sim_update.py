"""The sim terminal's firmware update state machine (hil.sim.update) and the payment
application's watchdog (hil.sim.watchdog), driven directly, without a rig."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hil.contract.maintenance import (
    APP_FAULT_LINES,
    BOOTS_AFTER_CUT,
    UPDATE_PHASES,
    UPDATE_REFUSALS,
    recovery_window_s,
)
from hil.protocol.endpoint import CommandFailed
from hil.sim import update as sim_update
from hil.sim import watchdog as sim_watchdog
from hil.sim.state import FlashLayout, atomic_write_bytes
from hil.sim.terminal import MODEL, load_rom_key
from hil.sim.update import FirmwareUpdater, Running, version_key
from hil.sim.watchdog import AppWatchdog
from hil.suite import FIXTURES

IMAGES = FIXTURES / "firmware"
OLD = IMAGES / "pos-sim-healthy-1.4.2.fw.json"
NEW = IMAGES / "pos-sim-healthy-1.5.0.fw.json"


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.logs: list[tuple[str, str, str]] = []
        self.screens: list[tuple[str, list[str]]] = []
        self.reboots = 0
        self.changed = threading.Condition()

    def emit(self, name: str, data: dict[str, Any]) -> None:
        with self.changed:
            self.events.append((name, data))
            self.changed.notify_all()

    def log(self, level: str, code: str, message: str) -> None:
        self.logs.append((level, code, message))

    def show(self, screen: str, lines: list[str]) -> None:
        self.screens.append((screen, lines))

    def reboot(self) -> None:
        self.reboots += 1

    def wait_for(self, name: str, timeout: float = 5.0, **data: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for event, payload in self.events:
                    if event == name and all(payload.get(k) == v for k, v in data.items()):
                        return payload
                left = deadline - time.monotonic()
                assert left > 0, f"no {name} {data}; events: {self.events}"
                self.changed.wait(left)

    def codes(self) -> list[str]:
        return [code for _, code, _ in self.logs]


class World:
    def __init__(self, root: Path) -> None:
        self.layout = FlashLayout(root / "flash")
        self.layout.ensure()
        self.medium = root / "medium"
        self.medium.mkdir()
        atomic_write_bytes(self.layout.slot_image("a"), OLD.read_bytes())
        self.halt = threading.Event()
        self.seen = Recorder()
        self.updater = self.make_updater()

    def make_updater(self) -> FirmwareUpdater:
        return FirmwareUpdater(
            layout=self.layout,
            medium=self.medium,
            rom_key=load_rom_key(),
            model=MODEL,
            running=lambda: Running("1.4.2", self.layout.active_slot()),
            read_back=Path.read_bytes,
            log=self.seen.log,
            emit=self.seen.emit,
            show=self.seen.show,
            show_idle=lambda: None,
            request_reboot=self.seen.reboot,
            halt=self.halt,
            time_scale=0.0,
        )

    def deliver(self, image: Path) -> str:
        (self.medium / image.name).write_bytes(image.read_bytes())
        return image.name

    def power_cut(self) -> None:
        """The session ends (its threads see the halt); the next boot cleans up."""
        self.halt.set()
        self.updater.stop(5.0)
        self.halt = threading.Event()
        self.seen = Recorder()
        self.updater = self.make_updater()


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_versions_compare_as_numbers_with_pre_releases_first() -> None:
    assert version_key("1.10.0") > version_key("1.9.9")
    assert version_key("2.0.0-rc1") < version_key("2.0.0")
    assert version_key("1.5.0+build7") == version_key("1.5.0")  # a build is not newer


def test_the_contract_restates_the_terminal() -> None:
    assert UPDATE_PHASES == sim_update.PHASES
    assert list(BOOTS_AFTER_CUT) == list(UPDATE_PHASES)
    assert set(APP_FAULT_LINES.values()) == {"E_APP_CRASH", "E_APP_HANG"}
    assert sim_watchdog.FAULT_LINE_CRASH in APP_FAULT_LINES
    low, high = recovery_window_s(1.0)
    assert low == sim_watchdog.WATCHDOG_TIMEOUT_S - sim_watchdog.KICK_INTERVAL_S
    assert high == (
        sim_watchdog.WATCHDOG_TIMEOUT_S + sim_watchdog.CHECK_INTERVAL_S + sim_watchdog.APP_START_S
    )


def test_a_signed_newer_image_goes_to_the_inactive_slot_and_is_selected(world: World) -> None:
    result = world.updater.command({"file": world.deliver(NEW)})
    assert result == {"file": NEW.name, "size": NEW.stat().st_size, "from_version": "1.4.2"}
    finished = world.seen.wait_for("fw.update_finished")
    digest = hashlib.sha256(NEW.read_bytes()).hexdigest()
    assert finished == {"version": "1.5.0", "sha256": digest, "slot": "b"}
    world.updater.stop(5.0)
    phases = [d["phase"] for n, d in world.seen.events if n == "fw.update_progress"]
    assert phases == list(UPDATE_PHASES)
    assert world.layout.active_slot() == "b"
    assert world.layout.slot_image("b").read_bytes() == NEW.read_bytes()
    assert world.layout.slot_image("a").read_bytes() == OLD.read_bytes()  # kept
    assert not world.layout.download_part.exists()
    assert not world.layout.update_record.exists()
    assert world.seen.reboots == 1
    assert "I_FW_UPDATED" in world.seen.codes()


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("unsigned-1.5.0.fw.json", "unsigned"),
        ("tampered-1.5.0.fw.json", "tampered"),
        ("pos-sim-other-model-1.5.0.fw.json", "wrong model"),
        ("pos-sim-healthy-1.3.0.fw.json", "downgrade"),
        ("pos-sim-healthy-1.4.2.fw.json", "downgrade"),  # the same version is not newer
        ("pos-sim-bad-version-1.4.2.7.fw.json", "bad version"),
    ],
)
def test_every_bad_image_is_refused_with_its_code_and_nothing_changes(
    world: World, image: str, why: str
) -> None:
    world.updater.command({"file": world.deliver(IMAGES / image)})
    failed = world.seen.wait_for("fw.update_failed")
    world.updater.stop(5.0)
    assert failed["code"] == UPDATE_REFUSALS[why]
    assert failed["phase"] == "verifying"
    assert ("error", UPDATE_REFUSALS[why]) in [(lvl, code) for lvl, code, _ in world.seen.logs]
    assert world.layout.active_slot() == "a"
    assert not world.layout.slot_image("b").exists()
    assert not world.layout.download_part.exists()
    assert not world.layout.update_record.exists()
    assert world.seen.reboots == 0


def test_a_file_that_is_no_image_is_refused_as_format(world: World) -> None:
    (world.medium / "junk.bin").write_bytes(b"\x00\x01 not json")
    world.updater.command({"file": "junk.bin"})
    assert world.seen.wait_for("fw.update_failed")["code"] == "E_FW_FORMAT"


def test_a_slot_that_reads_back_wrong_is_never_selected(world: World) -> None:
    def flipped(path: Path) -> bytes:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        return bytes(data)

    updater = world.make_updater()
    updater._read_back = flipped
    updater.command({"file": world.deliver(NEW)})
    failed = world.seen.wait_for("fw.update_failed")
    assert (failed["code"], failed["phase"]) == ("E_FW_WRITE", "writing")
    assert world.layout.active_slot() == "a"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({}, "E_BAD_ARGS"),
        ({"file": "../etc/passwd"}, "E_BAD_ARGS"),
        ({"file": "x.fw.json", "hold_at": "flashing"}, "E_BAD_ARGS"),
        ({"file": "x.fw.json", "force": True}, "E_BAD_ARGS"),
        ({"file": "absent.fw.json"}, "E_FW_NOT_FOUND"),
    ],
)
def test_bad_requests_are_refused_at_once(world: World, args: dict[str, Any], code: str) -> None:
    with pytest.raises(CommandFailed) as refused:
        world.updater.command(args)
    assert refused.value.code == code


def test_no_medium_no_update(world: World) -> None:
    world.updater.medium = None
    with pytest.raises(CommandFailed) as refused:
        world.updater.command({"file": "x.fw.json"})
    assert refused.value.code == "E_FW_NO_MEDIA"


def test_one_update_at_a_time(world: World) -> None:
    name = world.deliver(NEW)
    world.updater.command({"file": name, "hold_at": "verifying"})
    world.seen.wait_for("fw.update_progress", phase="verifying", held=True)
    with pytest.raises(CommandFailed) as refused:
        world.updater.command({"file": name})
    assert refused.value.code == "E_BUSY"
    world.power_cut()


@pytest.mark.parametrize("phase", UPDATE_PHASES)
def test_a_power_cut_at_each_hold_point_boots_what_the_contract_allows(
    world: World, phase: str
) -> None:
    world.updater.command({"file": world.deliver(NEW), "hold_at": phase})
    world.seen.wait_for("fw.update_progress", phase=phase, held=True)
    if phase == "writing":  # the inactive slot is torn right now
        assert 0 < world.layout.slot_image("b").stat().st_size < NEW.stat().st_size
    world.power_cut()
    expected_slot = "a" if BOOTS_AFTER_CUT[phase] == "old" else "b"
    assert world.layout.active_slot() == expected_slot
    expected = OLD if expected_slot == "a" else NEW
    assert world.layout.active_image.read_bytes() == expected.read_bytes()
    version = "1.4.2" if expected_slot == "a" else "1.5.0"
    world.updater.recover_at_boot(Running(version, expected_slot))
    interrupted = [m for _, code, m in world.seen.logs if code == "E_FW_UPDATE_INTERRUPTED"]
    assert len(interrupted) == 1 and f"while {phase}" in interrupted[0]
    assert version in interrupted[0]
    assert not world.layout.download_part.exists()
    assert not world.layout.update_record.exists()


def test_a_clean_boot_logs_nothing_about_updates(world: World) -> None:
    world.updater.recover_at_boot(Running("1.4.2", "a"))
    assert world.seen.logs == []


# --- the watchdog -----------------------------------------------------------------------

SCALE = 0.05  # timeout 150 ms, kick 25 ms, check 12.5 ms, start 50 ms


@pytest.fixture
def watchdog() -> Any:
    seen = Recorder()
    dog = AppWatchdog(
        log=seen.log, emit=seen.emit, show=seen.show, show_idle=lambda: None, time_scale=SCALE
    )
    dog.start()
    yield dog, seen
    dog.stop()


@pytest.mark.parametrize(("line", "code"), list(APP_FAULT_LINES.items()))
def test_a_failed_application_is_restarted_once_with_its_code(
    watchdog: Any, line: str, code: str
) -> None:
    dog, seen = watchdog
    started = time.monotonic()
    dog.on_fault_lines({line: True})
    dog.on_fault_lines({line: True})  # still held: no second fault
    restarted = seen.wait_for("app.restarted")
    took = time.monotonic() - started
    low, _ = recovery_window_s(SCALE)
    assert took >= low
    assert restarted["code"] == code and restarted["restarts"] == 1
    assert seen.wait_for("app.fault")["code"] == code
    assert ("error", code) in [(lvl, c) for lvl, c, _ in seen.logs]
    assert "I_APP_RESTARTED" in seen.codes()
    assert ("app_fault", ["应用故障", "Application fault", code]) in seen.screens
    time.sleep(4 * dog.timeout_s)  # the new application kicks: nothing more fires
    assert [n for n, _ in seen.events].count("app.restarted") == 1
    assert dog.status()["state"] == "running" and dog.status()["restarts"] == 1
    assert dog.app_up


def test_the_next_edge_fails_it_again(watchdog: Any) -> None:
    dog, seen = watchdog
    dog.on_fault_lines({"app_crash": True})
    seen.wait_for("app.restarted", restarts=1)
    dog.on_fault_lines({"app_crash": False})
    dog.on_fault_lines({"app_crash": True})
    assert seen.wait_for("app.restarted", restarts=2)["code"] == "E_APP_CRASH"


def test_without_a_fault_the_watchdog_never_fires(watchdog: Any) -> None:
    dog, seen = watchdog
    time.sleep(6 * dog.timeout_s)
    assert seen.events == [] and seen.logs == []
    assert dog.status() | {"watchdog_timeout_ms": 0, "kick_interval_ms": 0} == {
        "state": "running",
        "restarts": 0,
        "last_fault": None,
        "watchdog_timeout_ms": 0,
        "kick_interval_ms": 0,
    }


def test_a_starved_terminal_is_no_application_fault(watchdog: Any) -> None:
    """Everything stops for longer than the timeout (here: the watchdog's own look is
    late because the kick thread and the watchdog could not run); no fault is reported."""
    dog, seen = watchdog
    with dog._lock:  # the application cannot kick, and the watchdog cannot look
        time.sleep(3 * dog.timeout_s)
    time.sleep(2 * dog.timeout_s)
    assert [n for n, _ in seen.events] == []


def test_the_application_is_down_until_its_restart(watchdog: Any) -> None:
    dog, seen = watchdog
    dog.start_s = 1.0  # a slow restart, so "down" lasts long enough to look at
    assert dog.app_up
    dog.on_fault_lines({"app_hang": True})
    seen.wait_for("app.fault")
    assert not dog.app_up and dog.status()["state"] == "restarting"
    seen.wait_for("app.restarted")
    assert dog.app_up
