"""The simulated POS terminal: boot, self-check, commands, power-off and reboot.

One ``SimTerminal`` object is one power-on session. ``main`` (``python -m hil.sim``)
builds a new one for every boot in the same process: a ``sys.reboot`` tears the
session down (endpoint included, so event ``seq`` and ``ts_ms`` restart like on a
real reboot) and boots again from the flash directory. SIGTERM is a graceful
power-off, and so is the rig going away (end-of-file on ``HIL_RIG_ALIVE_FD``); SIGKILL
is a power cut that the next boot reports as ``power_loss``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from hil.errors import ConfigError
from hil.firmware import FirmwareImage, image_from_bytes, verify
from hil.protocol.endpoint import CommandFailed, TerminalEndpoint
from hil.protocol.transport import FdPort, SerialLike
from hil.sim import config as config_keys
from hil.sim import defects as seeded
from hil.sim.admin import AdminLogin
from hil.sim.biometrics import BiometricSensors
from hil.sim.cardreader import DEFECT_PAN_IN_LOG, LEAK_DEFECTS, CardPeripherals
from hil.sim.channels import with_configured
from hil.sim.comm import CommCommands, CommModule
from hil.sim.config import ConfigKeyError, ConfigStore, ConfigValueError
from hil.sim.display import Display, Screen
from hil.sim.environment import SimEnvironment, from_environ
from hil.sim.hardware import Hardware
from hil.sim.keypad import Keypad
from hil.sim.logcommands import LogCommands
from hil.sim.payments import (
    DEFECT_IFACE_CARD_ONLY,
    DEFECT_SALE_LEAK,
    ENTRY_QR,
    SaleCredential,
    interface_refusal,
    prompt_lines,
    sale_entry_mode,
)
from hil.sim.render import DisplayFace
from hil.sim.scanner import Scanner
from hil.sim.security import provision_admin_password
from hil.sim.selfcheck import (
    ITEM_IDS,
    KNOWN_DEFECTS,
    LIMITS,
    CheckContext,
    FirmwareStatus,
    ItemResult,
    Summary,
    fault_lines,
    progress_lines,
    run_selfcheck,
    tid_is_valid,
    unknown_items,
)
from hil.sim.state import (
    FIRMWARE_SLOTS,
    FlashLayout,
    LogStore,
    atomic_write_bytes,
    atomic_write_json,
    iso_now,
    read_json,
    remove_durably,
    set_flash_sync,
)
from hil.sim.update import FirmwareUpdater, Running
from hil.sim.watchdog import AppWatchdog

log = logging.getLogger("hil.sim")

MODEL = "POS-SIM-A8"  # the hardware model, fixed in ROM; images for another model are refused
PROTOCOL_VERSION = 1

# Nominal boot: ROM start-up until the image is verified, then the OS start-up.
BOOT_ROM_S = 0.4
BOOT_OS_S = 1.1
# A reboot waits this long after its command returns so the answer leaves first.
REBOOT_ANSWER_GRACE_S = 0.1
SHUTDOWN_FLUSH_S = 1.0
# A SIGTERM must not hang on a self-check stuck in a slow probe (TCP connect).
SELFCHECK_STOP_WAIT_S = 2.0

MIB = 1024 * 1024

LOG_READ_DEFAULT_LIMIT = 200
LOG_READ_MAX_LIMIT = 1000
# Answered at once without a worker (TerminalEndpoint quick): they never wait.
QUICK_COMMANDS = frozenset({"sys.ping", "device.info", "display.read"})

Phase = Literal["booting", "boot_selfcheck", "idle", "recovery", "shutdown"]
ShutdownReason = Literal["power_off", "reboot"]

BOOT_LINES = ["POS-SIM", "Starting..."]
IDLE_TITLE = ["请刷卡/插卡/挥卡", "Present card"]
FW_INVALID_LINES = ["固件无效", "Firmware invalid"]
FW_MISSING_LINES = ["无固件", "No firmware"]
SHUTDOWN_LINES: dict[ShutdownReason, list[str]] = {
    "power_off": ["关机中", "Shutting down..."],
    "reboot": ["重启中", "Restarting..."],
}


class Halted(Exception):
    """A power-off or reboot interrupted an inherent delay."""


@dataclass(frozen=True)
class BootFailure:
    code: str
    message: str


def load_rom_key() -> bytes:
    """The vendor public key burned into the simulated terminal's ROM."""
    return resources.files("hil.sim").joinpath("rom_key.pub").read_bytes()


def _arg_names(args: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) if allowed else "none"
        raise CommandFailed(
            "E_BAD_ARGS", f"unknown argument(s) {', '.join(unknown)}; expected: {expected}"
        )


def _int_arg(args: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CommandFailed("E_BAD_ARGS", f"{name} must be an integer from {low} to {high}")
    return value


class SimTerminal:
    """One power-on session of the simulated terminal. Handlers are thread-safe."""

    def __init__(
        self,
        env: SimEnvironment,
        port: SerialLike,
        *,
        flash: Path | None = None,
        hardware: Hardware | None = None,
        rom_key: bytes | None = None,
    ) -> None:
        self.env = env
        self.layout = FlashLayout(env.state_dir)
        self.layout.ensure()
        self.hardware = hardware or Hardware(decode_memo=env.decode_memo)
        self._rom_key = rom_key if rom_key is not None else load_rom_key()
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._shutdown_reason: ShutdownReason = "power_off"
        self._phase: Phase = "booting"
        self._selfcheck_lock = threading.Lock()
        self._selfcheck_running = False
        self._latest: dict[str, ItemResult] = {}
        self._last_summary: Summary | None = None
        self._image: FirmwareImage | None = None
        self._image_sha256: str | None = None
        self._booted_slot = FIRMWARE_SLOTS[0]
        self._firmware: FirmwareStatus | None = None
        self._defects: frozenset[str] = frozenset()
        #: under seeded defect stale_fault_on_idle: every fault shown since power-on
        self._stale_faults: dict[str, ItemResult] = {}
        self._boot_started = time.monotonic()

        self.logs = LogStore(self.layout.logs_dir, storage_error=self.hardware.log_storage_error)
        for warning in self.logs.load_warnings:
            self.logs.append("error", "E_LOG_IO", warning)
        self.config = ConfigStore(self.layout)
        if self.config.load_warning:
            self.logs.append("error", "E_CONFIG_CORRUPT", self.config.load_warning)
        if flash is not None:
            self._flash(flash)
        self.serial_number = self._factory_record()
        self._provision()
        self.boot_reason, self.boot_count = self._boot_record()
        # The wiring of this boot: what the rig handed over, completed by the channels
        # configured over the test port (a terminal the rig did not start).
        env = self.env = dataclasses.replace(
            env, channels=with_configured(env.channels, self.config.values())
        )
        for name in env.channels.ignored:
            self.logs.append("warn", "I_CHANNEL_IGNORED", f"unknown channel '{name}' ignored")

        # Commands that only read state under a short lock: answered on the port's
        # reader thread, ACK and answer in one write (hil.protocol.endpoint).
        self.endpoint = TerminalEndpoint(port, self.handle, name="terminal", quick=QUICK_COMMANDS)
        # The rig's camera looks at the face the sim draws (channel display).
        self.face = (
            DisplayFace(Path(env.channels.value("display")), self.logs.append)
            if env.channels.has("display")
            else None
        )
        self.display = Display(self._on_display)
        self.comm = CommModule(
            layout=self.layout,
            logs=self.logs,
            channels=env.channels,
            config=self._config_values,
            serial_number=self.serial_number,
            time_scale=env.time_scale,
            halt=self._halt,
            emit=self.endpoint.emit,
            show=self.display.show,
        )
        comm_commands = CommCommands(self.comm)
        camera = env.channels.value("camera") if env.channels.has("camera") else None
        self.scanner = Scanner(
            camera, emit=self.endpoint.emit, sleep=self._sleep, log=self.logs.append
        )
        self.cards = CardPeripherals(
            env.channels,
            self.hardware,
            display=self.display,
            emit=self.endpoint.emit,
            log_entry=self.logs.append,
            show_idle=self._show_idle,
            is_idle=lambda: self._phase == "idle",
            time_scale=env.time_scale,
        )
        # Firmware update (A/B slots) and the payment application's watchdog.
        self.updater = FirmwareUpdater(
            layout=self.layout,
            medium=Path(env.channels.value("updates")) if env.channels.has("updates") else None,
            rom_key=self._rom_key,
            model=MODEL,
            running=self._running_firmware,
            read_back=self.hardware.read_flash,
            log=self.logs.append,
            emit=self.endpoint.emit,
            show=self.display.show,
            show_idle=self._show_idle,
            request_reboot=self._request_reboot,
            halt=self._halt,
            time_scale=env.time_scale,
            defects=lambda: self._defects,
        )
        self.watchdog = AppWatchdog(
            log=self.logs.append,
            emit=self.endpoint.emit,
            show=self.display.show,
            show_idle=self._show_idle,
            time_scale=env.time_scale,
        )
        self._commands: dict[
            str, tuple[frozenset[Phase], Callable[[dict[str, Any]], dict[str, Any]]]
        ]
        everywhere = frozenset[Phase](("booting", "boot_selfcheck", "idle", "recovery", "shutdown"))
        # sys.ping answers in recovery too: a rig's liveness probe must not need a good image.
        powered = frozenset[Phase](("booting", "boot_selfcheck", "idle", "recovery"))
        idle = frozenset[Phase](("idle",))
        self._commands = {
            "device.info": (everywhere, self._cmd_device_info),
            "display.read": (everywhere, self._cmd_display_read),
            "log.read": (everywhere, self._cmd_log_read),
            "sys.ping": (powered, self._cmd_ping),
            "sys.reboot": (frozenset[Phase](("idle", "recovery")), self._cmd_reboot),
            "selfcheck.items": (idle, self._cmd_selfcheck_items),
            "selfcheck.run": (idle, self._cmd_selfcheck_run),
            "selfcheck.last": (idle, self._cmd_selfcheck_last),
            "config.get": (idle, self._cmd_config_get),
            "config.set": (idle, self._cmd_config_set),
            "comm.test": (idle, comm_commands.comm_test),
            "sync.run": (idle, comm_commands.sync_run),
            "sync.status": (idle, comm_commands.sync_status),
            "payment.sale": (idle, comm_commands.payment_sale),
            "reversal.status": (idle, comm_commands.reversal_status),
            "scanner.scan": (idle, self._cmd_scanner_scan),
            "fw.update": (idle, self.updater.command),
            "app.status": (everywhere, self._cmd_app_status),
        }
        self._commands.update({name: (idle, run) for name, run in self.cards.commands().items()})
        # Admin login, biometric sensors, log retention: their own modules (hil.sim.admin,
        # hil.sim.biometrics, hil.sim.logcommands); only the wiring is here.
        self.admin = AdminLogin(self.layout, log=self.logs.append, time_scale=env.time_scale)
        self.biometrics = BiometricSensors(
            env.channels.value("biometric") if env.channels.has("biometric") else None,
            self.layout,
            log=self.logs.append,
        )
        self.logs.retention_ms = lambda: round(
            int(self._config_values()["log.retention_s"]) * env.time_scale * 1000
        )
        for extra in (self.admin.commands(), self.biometrics.commands()):
            self._commands.update({name: (idle, run) for name, run in extra.items()})
        self._commands.update(
            {name: (idle, run) for name, run in LogCommands(self.logs).commands().items()}
        )
        self.keypad = Keypad(self.display, log=self.logs.append, show_idle=self._show_idle)
        self._commands.update({name: (idle, run) for name, run in self.keypad.commands().items()})
        if self.cards.fault_lines is not None:
            self.hardware.attach_fault_lines(self.cards.fault_lines, flash_root=self.layout.root)
            self.cards.fault_lines.on_change(self.watchdog.on_fault_lines)
        # A sale with an entry mode takes its card from the reader or its code from the
        # scanner (hil.sim.payments).
        self.comm.credential_source = self._sale_credential
        # A terminal that cannot keep a payment safe refuses it before anything is sent.
        sale = self._commands.get("payment.sale")
        if sale is not None:
            self._commands["payment.sale"] = (sale[0], self._guard_payment(sale[1]))

    # -- flash: first boot, provisioning, boot reason -------------------------------

    def _flash(self, image: Path) -> None:
        try:
            data = image.read_bytes()
        except OSError as e:
            raise ConfigError(f"HIL_FIRMWARE: cannot read {image}: {e.strerror or e}") from e
        # The flashing station writes slot A and makes it the one that boots.
        atomic_write_bytes(self.layout.slot_image(FIRMWARE_SLOTS[0]), data)
        remove_durably(self.layout.boot_select)
        digest = hashlib.sha256(data).hexdigest()
        self.logs.append("info", "I_FW_FLASHED", f"firmware image flashed, sha256 {digest[:12]}")

    def _factory_record(self) -> str:
        try:
            record = read_json(self.layout.factory)
        except ValueError as e:
            self.logs.append("error", "E_FACTORY_CORRUPT", f"factory record unreadable: {e}")
            return ""
        if isinstance(record, dict):
            stored = str(record.get("serial_number", ""))
            if self.env.factory_serial and self.env.factory_serial != stored:
                self.logs.append(
                    "warn",
                    "I_SERIAL_KEPT",
                    f"factory serial {stored} kept; HIL_FACTORY_SERIAL "
                    f"{self.env.factory_serial} ignored",
                )
            return stored
        if not self.env.factory_serial:
            raise ConfigError("HIL_FACTORY_SERIAL is required on the first boot (empty flash)")
        atomic_write_json(
            self.layout.factory,
            {"serial_number": self.env.factory_serial, "model": MODEL, "written_at": iso_now()},
        )
        self.logs.append("info", "I_FACTORY", f"factory serial {self.env.factory_serial} written")
        return self.env.factory_serial

    def _provision(self) -> None:
        updates = {}
        if not self.config.get("terminal_id") and self.env.provision_tid:
            updates["terminal_id"] = self.env.provision_tid
        if not self.config.get("merchant_id") and self.env.provision_mid:
            updates["merchant_id"] = self.env.provision_mid
        if updates:
            self.config.set_many(updates)
            self.logs.append("info", "I_PROVISIONED", f"provisioned {', '.join(sorted(updates))}")
        if provision_admin_password(self.layout, self.env.provision_admin_password):
            self.logs.append("info", "I_ADMIN_PROVISIONED", "admin password provisioned")

    def _boot_record(self) -> tuple[str, int]:
        try:
            marker = read_json(self.layout.shutdown_marker)
        except ValueError:
            marker = {"reason": "power_off"}  # a marker exists: the shutdown was clean
        try:
            previous = read_json(self.layout.boot)
        except ValueError:
            previous = {}
        if marker is not None:
            reason = (
                "reboot"
                if isinstance(marker, dict) and marker.get("reason") == "reboot"
                else "power_on"
            )
            remove_durably(self.layout.shutdown_marker)
        elif previous is None:
            reason = "power_on"  # first boot ever
        else:
            reason = "power_loss"
            self.logs.append(
                "warn", "E_POWER_LOSS", "previous session ended without a clean shutdown"
            )
        count = 1
        if isinstance(previous, dict) and isinstance(previous.get("boot_count"), int):
            count = previous["boot_count"] + 1
        atomic_write_json(
            self.layout.boot,
            {"boot_count": count, "last_boot_reason": reason, "last_boot_at": iso_now()},
        )
        return reason, count

    # -- power ----------------------------------------------------------------------

    def power_off(self) -> None:
        """Graceful power-off request (SIGTERM). Safe from a signal handler."""
        self._shutdown_reason = "power_off"
        self._halt.set()

    def _request_reboot(self) -> None:
        with self._lock:
            if not self._halt.is_set():
                self._shutdown_reason = "reboot"
            self._halt.set()

    def _sleep(self, seconds: float) -> None:
        if self._halt.wait(max(seconds, 0.0)):
            raise Halted

    def run(self) -> ShutdownReason:
        """Boot, serve until power-off or reboot, shut down; returns which."""
        self.endpoint.start()
        with contextlib.suppress(Halted):
            self._boot()
        while not self._halt.wait(0.5):
            pass
        reason = self._shutdown_reason
        self._shutdown(reason)
        return reason

    def _shutdown(self, reason: ShutdownReason) -> None:
        with self._lock:
            self._phase = "shutdown"
        if reason == "reboot":
            time.sleep(REBOOT_ANSWER_GRACE_S)
        # A running self-check sees the halt at its next delay and lets go.
        got = self._selfcheck_lock.acquire(timeout=SELFCHECK_STOP_WAIT_S)
        self.comm.stop(SELFCHECK_STOP_WAIT_S)
        self.watchdog.stop()
        self.updater.stop(SELFCHECK_STOP_WAIT_S)
        self.cards.stop()
        self.biometrics.close()
        self.hardware.close()
        try:
            self.display.show("shutdown", SHUTDOWN_LINES[reason])
            self.endpoint.emit("sys.shutdown", {"reason": reason})
            self.logs.append("info", "I_SHUTDOWN", f"clean shutdown ({reason})")
            if not self.endpoint.flush(SHUTDOWN_FLUSH_S):
                log.warning("events not delivered before shutdown")
            atomic_write_json(self.layout.shutdown_marker, {"reason": reason, "at": iso_now()})
        finally:
            self.endpoint.close()
            self.scanner.close()
            if got:
                self._selfcheck_lock.release()

    # -- boot -----------------------------------------------------------------------

    def _boot(self) -> None:
        self.display.show("boot", BOOT_LINES)
        self.cards.start_inputs()  # fault lines are sampled from power-on
        self.biometrics.start()
        self._sleep(BOOT_ROM_S * self.env.time_scale)
        failure = self._verify_firmware()
        self.updater.recover_at_boot(self._running_firmware())
        if failure is not None:
            self._enter_recovery(failure)
            return
        self._sleep(BOOT_OS_S * self.env.time_scale)
        assert self._firmware is not None
        self.endpoint.emit(
            "sys.boot",
            {
                "boot_reason": self.boot_reason,
                "firmware_version": self._firmware.version,
                "model": MODEL,
            },
        )
        self.logs.append(
            "info",
            "I_BOOT",
            f"boot {self.boot_count} ({self.boot_reason}), firmware {self._firmware.version}",
        )
        with self._lock:
            self._phase = "boot_selfcheck"
        with self._selfcheck_lock:
            self._selfcheck(ITEM_IDS, "boot")
        self.watchdog.start()
        with self._lock:
            self._phase = "idle"
        self._show_idle()
        self.endpoint.emit("sys.ready", {})
        self.cards.start_reader()
        self.comm.start()  # a reversal left pending by the last session goes out now

    def _running_firmware(self) -> Running:
        image = self._image if self._firmware is not None else None
        return Running(version=image.version if image is not None else None, slot=self._booted_slot)

    def _verify_firmware(self) -> BootFailure | None:
        self._booted_slot = self.layout.active_slot()
        path = self.layout.slot_image(self._booted_slot)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return BootFailure("E_FW_MISSING", "no firmware image in flash")
        except OSError as e:
            return BootFailure("E_FW_MISSING", f"firmware image unreadable: {e.strerror or e}")
        self._image_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            image = image_from_bytes(raw, source="active image")
        except ConfigError as e:
            return BootFailure("E_FW_FORMAT", str(e))
        self._image = image
        if not verify(image, self._rom_key):
            return BootFailure(
                "E_FW_SIGNATURE",
                f"firmware {image.version} signature does not verify with the ROM key",
            )
        if image.model != MODEL:
            return BootFailure(
                "E_FW_MODEL", f"image is for model {image.model}, this terminal is {MODEL}"
            )
        defects = set(image.manifest.seeded_defects)
        for name in sorted(defects - set(KNOWN_DEFECTS)):
            self.logs.append("info", "I_DEFECT_IGNORED", f"unknown seeded defect '{name}' ignored")
        self._defects = frozenset(defects & set(KNOWN_DEFECTS))
        self.cards.reader.leaks = self._defects & set(LEAK_DEFECTS)
        self.comm.leaks_per_sale = DEFECT_SALE_LEAK in self._defects
        self.logs.mask_messages = DEFECT_PAN_IN_LOG not in self._defects
        self.comm.defects = self.cards.reader.defects = self.scanner.defects = self._defects
        self._firmware = FirmwareStatus(
            version=image.version,
            model=image.model,
            sha256=self._image_sha256,
            path=path,
            verified=True,
        )
        return None

    def _enter_recovery(self, failure: BootFailure) -> None:
        with self._lock:
            self._phase = "recovery"
        if failure.code == "E_FW_MISSING":
            self.display.show("fw_missing", [*FW_MISSING_LINES, failure.code])
        else:
            self.display.show("fw_invalid", [*FW_INVALID_LINES, failure.code])
        self.logs.append("error", failure.code, failure.message)
        self.endpoint.emit(
            "sys.boot_failed",
            {"code": failure.code, "message": failure.message, "boot_reason": self.boot_reason},
        )

    # -- self-check -----------------------------------------------------------------

    def _check_context(self) -> CheckContext:
        assert self._firmware is not None
        with self._lock:
            config = self.config.values()
        return CheckContext(
            channels=self.env.channels,
            config=config,
            firmware=self._firmware,
            layout=self.layout,
            log_store=self.logs,
            hardware=self.hardware,
            defects=self._defects,
            comm=self.comm,
            sleep=self._sleep,
        )

    def _selfcheck(self, items: Sequence[str], trigger: str) -> Summary:
        """Run items (caller holds the self-check lock), emitting the self-check events."""
        ordered = [i for i in ITEM_IDS if i in set(items)]
        ctx = self._check_context()
        self.endpoint.emit("selfcheck.started", {"trigger": trigger, "items": ordered})

        def on_start(item: str, n: int, total: int) -> None:
            self.display.show("selfcheck", progress_lines(item, n, total))

        def on_done(result: ItemResult) -> None:
            with self._lock:
                self._latest[result.item] = result
            self.endpoint.emit("selfcheck.item", result.as_dict())
            if result.status != "pass":
                level = "error" if result.status == "fail" else "warn"
                self.logs.append(level, result.code, f"{result.item}: {result.message}")

        summary = run_selfcheck(
            ordered,
            ctx,
            trigger=trigger,
            time_scale=self.env.time_scale,
            sleep=self._sleep,
            on_item_start=on_start,
            on_item_done=on_done,
        )
        with self._lock:
            self._last_summary = summary
        self.endpoint.emit("selfcheck.finished", summary.as_dict())
        self.logs.append(
            "info" if summary.count("fail") == 0 else "warn",
            "I_SELFCHECK",
            f"self-check ({trigger}): {summary.count('pass')} passed, "
            f"{summary.count('warn')} warned, {summary.count('fail')} failed",
        )
        return summary

    # -- display --------------------------------------------------------------------

    def _on_display(self, screen: Screen) -> None:
        if self.face is not None:
            self.face.draw(screen)
        self.endpoint.emit(
            "display.changed",
            {
                "screen": screen.screen,
                "lines": list(screen.lines),
                "changed_seq": screen.changed_seq,
            },
        )

    def _show_idle(self) -> None:
        with self._lock:
            if self._phase != "idle":
                return
            tid = str(self.config.get("terminal_id")) or "未设置终端号 No TID"
            latest = [self._latest[i] for i in ITEM_IDS if i in self._latest]
            if seeded.STALE_FAULT_ON_IDLE in self._defects:
                latest = self._with_stale_faults(latest)
        faults = fault_lines(latest)
        if seeded.COMM_SLOW_SCREEN_TEXT_DIFFERS in self._defects:
            faults = [line.replace("Network too slow", "Network slow") for line in faults]
        self.display.show("idle", [*IDLE_TITLE, tid, *faults])

    def _with_stale_faults(self, latest: list[ItemResult]) -> list[ItemResult]:
        """Seeded defect: the fault list is appended to, never rebuilt, so an item that
        failed once keeps its fault on the idle screen after it passes again."""
        for result in latest:
            if result.status != "pass":
                self._stale_faults[result.item] = result
        return [self._stale_faults.get(r.item, r) if r.status == "pass" else r for r in latest]

    # -- payments -------------------------------------------------------------------

    def _payment_refusal(self, entry_mode: str | None = None) -> tuple[str, str] | None:
        """Why a payment must be refused now (code, message), or None. Each condition is
        read live: a fault the rig released no longer stops payments, one it holds does,
        whatever the last self-check said."""
        refusal = self.cards.reader.payment_refusal()  # tamper switch, reader power
        tamper_ignored = seeded.PAYMENT_ALLOWED_WHILE_TAMPERED in self._defects
        if refusal is not None and refusal[0] == "E_TAMPERED" and tamper_ignored:
            refusal = None  # seeded defect: the tamper interlock is missing here
        if refusal is not None:
            return refusal
        hw = self.hardware
        supply = hw.supply().supply_v
        if supply < LIMITS["power.min_supply_v"]:
            return "E_POWER_LOW", f"supply {supply:.1f} V too low to complete a payment"
        firmware = self._firmware
        if firmware is not None:
            try:
                intact = hashlib.sha256(hw.read_flash(firmware.path)).hexdigest() == (
                    firmware.sha256
                )
            except OSError:
                intact = False
            if not intact:
                return "E_MEM_INTEGRITY", "firmware image in flash no longer matches: no payment"
        if hw.flash_free_bytes(self.layout.root) < LIMITS["memory.min_flash_free_mib"] * MIB:
            return "E_MEM_FLASH_LOW", "flash full: no room to record a payment"
        if hw.rss_bytes() > LIMITS["memory.max_rss_mib"] * MIB:
            return "E_MEM_RAM", "out of memory: no payment"
        if hw.log_storage_error() is not None:
            return "E_LOG_IO", "log storage unusable: a payment could not be journaled"
        config = self._config_values()
        if not tid_is_valid(str(config.get("terminal_id", ""))):
            return "E_TID_INVALID", "no valid terminal ID: no payment"
        if DEFECT_IFACE_CARD_ONLY in self._defects:
            entry_mode = None  # seeded defect: only interfaces.card is ever looked at
        refusal = interface_refusal(entry_mode, config)
        if refusal is not None:
            return refusal
        if not self.watchdog.app_up:
            return "E_APP_DOWN", "the payment application is not running (watchdog restart)"
        return None

    def _guard_payment(
        self, command: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def guarded(args: dict[str, Any]) -> dict[str, Any]:
            refusal = self._payment_refusal(sale_entry_mode(args))
            if refusal is not None:
                self.logs.append("warn", refusal[0], f"payment refused: {refusal[1]}")
                raise CommandFailed(*refusal)
            return command(args)

        return guarded

    def _sale_credential(self, entry_mode: str, amount: int, timeout_ms: int) -> SaleCredential:
        """The instrument of a sale: prompt, then the card read or the wallet code scanned.
        Whatever fails refuses the sale with its code; nothing has been sent yet, and a
        prompt left on the screen gives way to the idle screen."""
        try:
            return self._take_instrument(entry_mode, amount, timeout_ms)
        except CommandFailed:
            if self.display.read().screen == "payment_prompt":
                self._show_idle()
            raise

    def _take_instrument(self, entry_mode: str, amount: int, timeout_ms: int) -> SaleCredential:
        def prompt() -> None:
            self.display.show("payment_prompt", prompt_lines(entry_mode, amount))

        if entry_mode != ENTRY_QR:
            _, card = self.cards.reader.read_for_sale(entry_mode, amount, timeout_ms, prompt)
            return SaleCredential(entry_mode, card=card)
        prompt()
        try:
            scanned = self.scanner.scan_for_sale(timeout_ms)
        except Halted:
            raise CommandFailed(
                "E_NOT_READY", "sale aborted: the terminal is shutting down"
            ) from None
        if scanned.get("kind") != "wallet":
            raise CommandFailed(
                "E_QR_FORMAT",
                f"the code read is not a wallet payment code (kind {scanned.get('kind')})",
            )
        return SaleCredential(
            entry_mode, wallet_code=str(scanned["payload"]), wallet=scanned.get("wallet")
        )

    # -- commands -------------------------------------------------------------------

    def handle(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        entry = self._commands.get(cmd)
        if entry is None:
            raise CommandFailed("E_UNKNOWN_COMMAND", f"unknown command '{cmd}'")
        phases, run = entry
        with self._lock:
            phase = self._phase
        if phase not in phases:
            raise CommandFailed(
                "E_NOT_READY", f"{cmd} is not available while {self._state_name(phase)}"
            )
        return run(args)

    def _state_name(self, phase: Phase) -> str:
        if phase == "boot_selfcheck" or (phase == "idle" and self._selfcheck_running):
            return "selfcheck"
        return phase

    def _cmd_device_info(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        with self._lock:
            config = self.config.values()
            state = self._state_name(self._phase)
        image = self._image
        return {
            "model": MODEL,
            "serial_number": self.serial_number,
            "terminal_id": config["terminal_id"],
            "merchant_id": config["merchant_id"],
            "firmware_version": image.version if image is not None else None,
            "firmware_sha256": self._image_sha256,
            "firmware_verified": self._firmware is not None,
            "firmware_build": image.manifest.build if image is not None else None,
            "firmware_slot": self._booted_slot,
            "protocol_version": PROTOCOL_VERSION,
            "boot_reason": self.boot_reason,
            "boot_count": self.boot_count,
            "uptime_ms": self._uptime_ms(),
            "state": state,
        }

    def _config_values(self) -> dict[str, Any]:
        with self._lock:
            return self.config.values()

    def _uptime_ms(self) -> int:
        return int((time.monotonic() - self._boot_started) * 1000)

    def _cmd_display_read(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        shown = self.display.read()
        return {
            "screen": shown.screen,
            "lines": list(shown.lines),
            "changed_seq": shown.changed_seq,
            "leds": shown.leds,
        }

    def _cmd_log_read(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ("since", "limit"))
        since = _int_arg(args, "since", 0, 0, 2**53)
        limit = _int_arg(args, "limit", LOG_READ_DEFAULT_LIMIT, 1, LOG_READ_MAX_LIMIT)
        entries, nxt = self.logs.read(since, limit)
        return {"entries": [e.as_dict() for e in entries], "next": nxt}

    def _cmd_app_status(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        return self.watchdog.status()

    def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        return {"uptime_ms": self._uptime_ms()}

    def _cmd_reboot(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        self.logs.append("info", "I_REBOOT", "reboot requested on the test port")
        self._request_reboot()
        return {}

    def _cmd_selfcheck_items(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        return {"items": list(ITEM_IDS)}

    def _cmd_selfcheck_run(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ("items",))
        items = args.get("items")
        if items is None:
            wanted: list[str] = list(ITEM_IDS)
        else:
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise CommandFailed("E_BAD_ARGS", "items must be a list of item names")
            if not items:
                raise CommandFailed("E_BAD_ARGS", "items must not be empty (omit it for all)")
            unknown = unknown_items(items)
            if unknown:
                raise CommandFailed(
                    "E_BAD_ARGS", f"unknown self-check item(s): {', '.join(unknown)}"
                )
            wanted = items
        if not self._selfcheck_lock.acquire(blocking=False):
            raise CommandFailed("E_BUSY", "a self-check is already running")
        try:
            with self._lock:
                self._selfcheck_running = True
            summary = self._selfcheck(wanted, "command")
        except Halted:
            raise CommandFailed(
                "E_NOT_READY", "self-check aborted: the terminal is shutting down"
            ) from None
        finally:
            with self._lock:
                self._selfcheck_running = False
            self._selfcheck_lock.release()
        self._show_idle()
        return summary.as_dict()

    def _cmd_scanner_scan(self, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.scanner.scan_command(args)
        except Halted:
            raise CommandFailed(
                "E_NOT_READY", "scan aborted: the terminal is shutting down"
            ) from None

    def _cmd_selfcheck_last(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ())
        with self._lock:
            summary = self._last_summary
        if summary is None:
            return Summary("", (), 0).as_dict() | {"trigger": None}
        return summary.as_dict()

    def _cmd_config_get(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ("key",))
        with self._lock:
            if "key" not in args:
                return {"config": self.config.values()}
            key = args["key"]
            if not isinstance(key, str):
                raise CommandFailed("E_BAD_ARGS", "key must be a string")
            try:
                return {"key": key, "value": self.config.get(key)}
            except ConfigKeyError:
                raise CommandFailed("E_CONFIG_KEY", self._unknown_key(key)) from None

    @staticmethod
    def _unknown_key(key: str) -> str:
        return f"unknown config key '{key}'; known: {', '.join(config_keys.CONFIG_KEYS)}"

    def _cmd_config_set(self, args: dict[str, Any]) -> dict[str, Any]:
        _arg_names(args, ("key", "value"))
        key = args.get("key")
        if not isinstance(key, str):
            raise CommandFailed("E_BAD_ARGS", "key (string) is required")
        if "value" not in args:
            raise CommandFailed("E_BAD_ARGS", "value is required")
        with self._lock:
            try:
                value = self.config.set(key, args["value"])
            except ConfigKeyError:
                raise CommandFailed("E_CONFIG_KEY", self._unknown_key(key)) from None
            except ConfigValueError as e:
                raise CommandFailed("E_CONFIG_VALUE", str(e)) from None
        self.logs.append("info", "I_CONFIG_SET", f"config {key} set to {value!r}")
        if key == "terminal_id":
            self._show_idle()
        return {"key": key, "value": value}


def _power_off_when_rig_gone(fd: int, power_off: Callable[[], None]) -> None:
    """The watchdog: nobody ever writes to ``fd``; end-of-file means the rig's process
    is gone (killed, crashed, or its teardown never came), so power off as on SIGTERM."""
    while True:
        try:
            data = os.read(fd, 64)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            log.warning("the rig is gone (HIL_RIG_ALIVE_FD closed): powering off")
            power_off()
            return


def main() -> int:
    """``python -m hil.sim``: run terminal sessions until a graceful power-off."""
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="hil.sim %(levelname)s %(name)s: %(message)s",
    )
    try:
        env = from_environ(os.environ)
    except ConfigError as e:
        print(f"hil.sim: {e}", file=sys.stderr)
        return 2
    set_flash_sync(env.flash_sync)
    port = FdPort(env.console_fd, close_fd=False)
    power_off = threading.Event()
    current: list[SimTerminal] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        power_off.set()
        if current:
            current[0].power_off()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if env.rig_alive_fd is not None:
        threading.Thread(
            target=_power_off_when_rig_gone,
            args=(env.rig_alive_fd, lambda: on_signal(signal.SIGTERM, None)),
            name="rig-watchdog",
            daemon=True,
        ).start()
    # A signal mask is inherited across exec: whoever started us may have SIGINT
    # blocked. Started by hand, Ctrl-C must still power the terminal off.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    flash = env.firmware
    try:
        while True:
            try:
                terminal = SimTerminal(env, port, flash=flash)
            except ConfigError as e:
                print(f"hil.sim: {e}", file=sys.stderr)
                return 2
            flash = None  # flashed once, at power-on; a reboot boots what is in flash
            current[:] = [terminal]
            if power_off.is_set():
                terminal.power_off()
            if terminal.run() == "power_off":
                return 0
    finally:
        port.close()
