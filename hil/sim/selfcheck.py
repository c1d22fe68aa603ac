"""The power-on self-check: the item table, one check per item, and the runner.

``SELFCHECK_TABLE`` is the single source of every item id, its order, its nominal
duration, and every code it can report with its status, message and screen text;
docs/test-port-protocol.md documents it row by row. Each check reports what it can
really observe now: a check that cannot be performed is never a pass (it is a fail
when the hardware is absent, an ``*_UNVERIFIED`` warning when the channel is wired
but this firmware cannot exercise it).

Pure logic: the checks read a ``CheckContext`` and a ``Hardware``; the runner takes
a ``sleep`` and callbacks, so tests drive it without processes or delays.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.firmware import version_is_valid
from hil.masking import contains_full_pan
from hil.sim.cardreader import LEAK_DEFECTS
from hil.sim.channels import Channels
from hil.sim.comm import (
    COMM_CODES,
    RC_APPROVED,
    RC_TID_NOT_REGISTERED,
    CommFailure,
    CommModule,
    SyncOutcome,
    host_target,
)
from hil.sim.hardware import Hardware
from hil.sim.payments import PAYMENT_DEFECTS
from hil.sim.security import FACTORY_DEFAULT_ADMIN_PASSWORD, load_admin_record
from hil.sim.state import FlashLayout, LogStore

Status = Literal["pass", "warn", "fail"]

DEFECT_COMM_LIES = "comm_selfcheck_lies"
#: fw.update installs an image without checking its signature (hil.sim.update)
DEFECT_UPDATE_UNCHECKED = "update_skips_signature"
KNOWN_DEFECTS = (DEFECT_COMM_LIES, *LEAK_DEFECTS, *PAYMENT_DEFECTS, DEFECT_UPDATE_UNCHECKED)


@dataclass(frozen=True)
class Outcome:
    code: str
    status: Status
    message: str  # str.format template over the check's params
    screen: str  # what the idle screen shows for this fault ("" for OK)


@dataclass(frozen=True)
class ItemSpec:
    item: str
    nominal_ms: int
    outcomes: tuple[Outcome, ...]

    def outcome(self, code: str) -> Outcome:
        for o in self.outcomes:
            if o.code == code:
                return o
        raise KeyError(f"self-check item {self.item} has no code {code}")


def _ok(message: str) -> Outcome:
    return Outcome("OK", "pass", message, "")


# fmt: off
SELFCHECK_TABLE: tuple[ItemSpec, ...] = (
    ItemSpec("power", 120, (
        _ok("supply {supply_v:.1f} V, battery {battery_pct}%"),
        Outcome("E_POWER_LOW", "fail",
                "supply voltage {supply_v:.1f} V below {min_v:.1f} V",
                "电源电压低 Supply voltage low"),
        Outcome("E_POWER_BATTERY_LOW", "warn",
                "battery {battery_pct}% below {min_pct}%", "电池电量低 Battery low"),
        Outcome("E_POWER_UNVERIFIED", "warn",
                "fault-line channel wired but unreadable ({reason}); supply not measured",
                "电源未检测 Power not checked"),
    )),
    ItemSpec("memory", 250, (
        _ok("flash free {flash_free_mib} MiB, RSS {rss_mib} MiB, image intact"),
        Outcome("E_MEM_INTEGRITY", "fail",
                "active firmware image changed since it was verified at boot ({reason})",
                "存储校验错误 Flash integrity error"),
        Outcome("E_MEM_FLASH_LOW", "fail",
                "flash free {flash_free_mib} MiB below {min_mib} MiB", "存储空间不足 Flash full"),
        Outcome("E_MEM_RAM", "fail",
                "RSS {rss_mib} MiB above {max_mib} MiB", "内存不足 Out of memory"),
    )),
    ItemSpec("tamper", 80, (
        _ok("tamper switch closed"),
        Outcome("E_TAMPER", "fail", "tamper switch open", "设备被拆 Tamper detected"),
        Outcome("E_TAMPER_UNVERIFIED", "warn",
                "fault-line channel wired but unreadable ({reason}); switch not read",
                "防拆未检测 Tamper not checked"),
    )),
    ItemSpec("comm", 400, (
        _ok("host {address}:{port} answered the echo test in {rtt_ms} ms"),
        Outcome("E_COMM_NO_HOST", "fail", "no host configured", "未配置主机 No host configured"),
        Outcome("E_COMM_CONNECT", "fail",
                "cannot connect to host {address}:{port}: {reason}", "主机不可达 Host unreachable"),
        Outcome("E_COMM_TIMEOUT", "fail",
                "host {address}:{port} did not answer: {reason}", "通讯超时 Communication timeout"),
        Outcome("E_COMM_REFUSED", "fail",
                "host {address}:{port} refused the connection: {reason}",
                "连接被拒绝 Connection refused"),
        Outcome("E_COMM_RESET", "fail",
                "connection to host {address}:{port} broke: {reason}",
                "连接中断 Connection reset"),
        Outcome("E_COMM_MALFORMED", "fail",
                "host {address}:{port} answered with a malformed message: {reason}",
                "报文错误 Bad host message"),
        Outcome("E_COMM_SLOW", "fail",
                "echo round trip {rtt_ms} ms above the {max_ms} ms limit",
                "网络延迟过高 Network too slow"),
    )),
    ItemSpec("terminal_id", 60, (
        _ok("terminal ID {tid} signed on"),
        Outcome("E_TID_INVALID", "fail",
                "terminal ID {tid!r} is not 8 printable characters",
                "终端号无效 Invalid terminal ID"),
        Outcome("E_TID_NO_HOST", "fail",
                "terminal ID {tid} cannot be signed on: no host configured",
                "终端未签到 TID not signed on"),
        Outcome("E_TID_CONFLICT", "fail",
                "host refused sign-on: terminal ID {tid} is registered to another device "
                "(response code {response_code})",
                "终端号冲突 TID used by another device"),
        Outcome("E_TID_REFUSED", "fail",
                "host refused sign-on of terminal ID {tid} (response code {response_code})",
                "签到被拒 Sign-on refused"),
        Outcome("E_TID_SIGNON_FAILED", "fail",
                "sign-on of terminal ID {tid} failed: {reason}", "签到失败 Sign-on failed"),
    )),
    ItemSpec("card_reader", 300, (
        _ok("card reader '{reader}' present"),
        Outcome("E_READER_ABSENT", "fail", "no card reader: {reason}",
                "读卡器故障 Card reader fault"),
        Outcome("E_READER_POWER", "fail", "card reader '{reader}' has no power (supply fault)",
                "读卡器电源故障 Card reader power fault"),
    )),
    ItemSpec("qr_scanner", 200, (
        _ok("camera {camera}: {target} read in {decode_ms} ms"),
        Outcome("E_CAMERA_ABSENT", "fail", "no QR scanner camera: {reason}",
                "扫码器故障 QR scanner fault"),
        Outcome("E_CAMERA_LOW_LIGHT", "warn",
                "calibration target unreadable; scene luminance {luminance_pct}% below "
                "{min_pct}%", "扫码光线不足 Scanner light too low"),
        Outcome("E_CAMERA_WINDOW_DIRTY", "warn",
                "calibration target unreadable at luminance {luminance_pct}%: scan window "
                "dirty or obstructed", "请清洁扫码窗 Clean the scan window"),
    )),
    ItemSpec("payment_interfaces", 50, (
        _ok("usable interfaces: {usable}"),
        Outcome("E_IFACE_NONE", "fail",
                "no payment interface both enabled and permitted ({reason})",
                "无可用支付方式 No payment method"),
    )),
    ItemSpec("data_sync", 250, (
        _ok("{message}"),
        Outcome("E_SYNC_NO_HOST", "fail", "no host configured for parameter and key download",
                "数据同步失败 Data sync failed"),
        Outcome("E_SYNC_INTERRUPTED", "fail", "{message}",
                "参数下载中断 Parameter download interrupted"),
        Outcome("E_SYNC_DIGEST", "fail", "{message}",
                "参数校验失败 Parameter digest mismatch"),
        Outcome("E_SYNC_REFUSED", "fail", "{message}", "参数下载被拒 Parameter download refused"),
        Outcome("E_SYNC_KEYS", "fail", "{message}", "密钥下载失败 Key download failed"),
    )),
    ItemSpec("firmware", 150, (
        _ok("firmware {version} signature verified"),
        Outcome("E_FW_VERSION", "fail", "firmware version {version!r} is not a valid version",
                "固件版本无效 Invalid firmware version"),
    )),
    ItemSpec("security", 100, (
        _ok("admin password set and not the factory default"),
        Outcome("E_SEC_DEFAULT_PASSWORD", "warn", "admin password is still the factory default",
                "请修改默认密码 Change default password"),
        Outcome("E_SEC_NO_PASSWORD", "fail", "no usable admin password record ({reason})",
                "管理员密码缺失 No admin password"),
    )),
    ItemSpec("performance", 120, (
        _ok("CPU {cpu_pct}% over {window_s} s, load {load_per_cpu} per CPU"),
        Outcome("E_PERF_CPU", "warn", "process CPU {cpu_pct}% above {max_pct}% over {window_s} s",
                "处理器繁忙 CPU overloaded"),
        Outcome("E_PERF_LOAD", "warn", "system load {load_per_cpu} per CPU above {max_load}",
                "系统负载高 System load high"),
    )),
    ItemSpec("logs", 150, (
        _ok("log store writable and readable, {entries} entries, no full PAN"),
        Outcome("E_LOG_IO", "fail", "log store unusable: {reason}",
                "日志存储故障 Log storage fault"),
        Outcome("E_LOG_PAN", "fail", "{count} log entries hold a full PAN (seq {seqs})",
                "日志含卡号 PAN in log"),
    )),
)
# fmt: on

ITEM_IDS: tuple[str, ...] = tuple(spec.item for spec in SELFCHECK_TABLE)
_SPECS: dict[str, ItemSpec] = {spec.item: spec for spec in SELFCHECK_TABLE}

# Limits, documented in docs/test-port-protocol.md.
LIMITS: dict[str, float] = {
    "power.min_supply_v": 10.8,
    "power.min_battery_pct": 15,
    "memory.min_flash_free_mib": 16,
    "memory.max_rss_mib": 512,
    "performance.max_cpu_pct": 90,
    # CPU is measured over this window of wall time (a measurement: never scaled)
    "performance.cpu_window_s": 0.25,
    "performance.max_load_per_cpu": 4.0,
    "comm.max_echo_rtt_ms": 1000,
    # below this mean grey level an unreadable calibration target is blamed on the light
    "qr_scanner.min_luminance_pct": 25,
}

PROGRESS_TITLE = ("自检中", "Self-check in progress")


def spec(item: str) -> ItemSpec:
    return _SPECS[item]


def progress_lines(item: str, index: int, total: int) -> list[str]:
    """The "selfcheck" screen while ``item`` (1-based ``index`` of ``total``) runs."""
    return [*PROGRESS_TITLE, f"{item} ({index}/{total})"]


def fault_lines(results: Sequence[ItemResult]) -> list[str]:
    """Lines the idle screen adds for failed and warned items (empty when healthy)."""
    failed = [r for r in results if r.status == "fail"]
    warned = [r for r in results if r.status == "warn"]
    lines = []
    if failed:
        lines.append("故障 Faults: " + ",".join(r.code for r in failed))
    if warned:
        lines.append("警告 Warnings: " + ",".join(r.code for r in warned))
    lines.extend(f"{r.code} {spec(r.item).outcome(r.code).screen}" for r in failed + warned)
    return lines


@dataclass(frozen=True)
class FirmwareStatus:
    """What boot established about the active image."""

    version: str
    model: str
    sha256: str  # of the image file as verified at boot
    path: Path
    verified: bool


@dataclass(frozen=True)
class CheckContext:
    channels: Channels
    config: Mapping[str, Any]
    firmware: FirmwareStatus
    layout: FlashLayout
    log_store: LogStore
    hardware: Hardware
    defects: frozenset[str] = frozenset()
    comm: CommModule | None = None
    #: waits a measurement window; a power-off interrupts it (raises)
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class Finding:
    """A check's raw answer: which table code, the message params, the details."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemResult:
    item: str
    status: Status
    code: str
    message: str
    duration_ms: int
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "duration_ms": self.duration_ms,
            "details": self.details,
        }


@dataclass(frozen=True)
class Summary:
    trigger: str
    results: tuple[ItemResult, ...]
    duration_ms: int

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "passed": self.count("pass"),
            "warned": self.count("warn"),
            "failed": self.count("fail"),
            "duration_ms": self.duration_ms,
            "results": [r.as_dict() for r in self.results],
        }


# --- the checks ----------------------------------------------------------------------

_MIB = 1024 * 1024


def _fault_source(ctx: CheckContext) -> tuple[str, str]:
    """(where the readings come from, why they cannot be read or "")."""
    if not ctx.channels.has("faultlines"):
        return "nominal (no fault-line channel)", ""
    return "fault lines", ctx.hardware.fault_lines_unreadable()


def check_power(ctx: CheckContext) -> Finding:
    source, unreadable = _fault_source(ctx)
    if unreadable:
        return Finding("E_POWER_UNVERIFIED", {"reason": unreadable}, {"source": source})
    reading = ctx.hardware.supply()
    min_v = LIMITS["power.min_supply_v"]
    min_pct = int(LIMITS["power.min_battery_pct"])
    params = {
        "supply_v": reading.supply_v,
        "battery_pct": reading.battery_pct,
        "min_v": min_v,
        "min_pct": min_pct,
    }
    details = {
        "supply_v": reading.supply_v,
        "battery_pct": reading.battery_pct,
        "min_supply_v": min_v,
        "min_battery_pct": min_pct,
        "source": source,
    }
    if reading.supply_v < min_v:
        return Finding("E_POWER_LOW", params, details)
    if reading.battery_pct < min_pct:
        return Finding("E_POWER_BATTERY_LOW", params, details)
    return Finding("OK", params, details)


def check_memory(ctx: CheckContext) -> Finding:
    hw = ctx.hardware
    free = hw.flash_free_bytes(ctx.layout.root)
    rss = hw.rss_bytes()
    try:
        current = hashlib.sha256(hw.read_flash(ctx.firmware.path)).hexdigest()
        integrity = "intact" if current == ctx.firmware.sha256 else "sha256 differs"
    except OSError as e:
        current = ""
        integrity = f"image unreadable: {e.strerror or e}"
    params = {
        "flash_free_mib": free // _MIB,
        "rss_mib": round(rss / _MIB, 1),
        "min_mib": int(LIMITS["memory.min_flash_free_mib"]),
        "max_mib": int(LIMITS["memory.max_rss_mib"]),
        "reason": integrity,
    }
    details = {
        "flash_free_bytes": free,
        "rss_bytes": rss,
        "image_sha256_at_boot": ctx.firmware.sha256,
        "image_sha256_now": current,
        "min_flash_free_mib": params["min_mib"],
        "max_rss_mib": params["max_mib"],
    }
    if integrity != "intact":
        return Finding("E_MEM_INTEGRITY", params, details)
    if free < LIMITS["memory.min_flash_free_mib"] * _MIB:
        return Finding("E_MEM_FLASH_LOW", params, details)
    if rss > LIMITS["memory.max_rss_mib"] * _MIB:
        return Finding("E_MEM_RAM", params, details)
    return Finding("OK", params, details)


def check_tamper(ctx: CheckContext) -> Finding:
    source, unreadable = _fault_source(ctx)
    if unreadable:
        return Finding("E_TAMPER_UNVERIFIED", {"reason": unreadable}, {"source": source})
    is_open = ctx.hardware.tamper_open()
    details = {"switch": "open" if is_open else "closed", "source": source}
    return Finding("E_TAMPER" if is_open else "OK", details=details)


def _host_target(ctx: CheckContext) -> tuple[str, int] | None:
    """Where the terminal dials: its configured host, else the address the rig wired."""
    return host_target(ctx.config, ctx.channels)


def check_comm(ctx: CheckContext) -> Finding:
    target = _host_target(ctx) if ctx.channels.has("host") else None
    if DEFECT_COMM_LIES in ctx.defects:
        # Seeded defect: reports a healthy link without ever dialling.
        address, port = target or (str(ctx.config.get("host.address", "")) or "host", 0)
        lie = {"address": address, "port": port, "rtt_ms": 12}
        return Finding("OK", lie, dict(lie))
    settings = ctx.comm.settings(ctx.config) if ctx.comm is not None and target else None
    if settings is None or ctx.comm is None:
        return Finding("E_COMM_NO_HOST", details={"host_channel": ctx.channels.has("host")})
    details: dict[str, Any] = {
        "address": settings.address,
        "port": settings.port,
        "connect_timeout_ms": settings.connect_timeout_s * 1000,
        "response_timeout_ms": settings.response_timeout_s * 1000,
        "retries": settings.retries,
    }
    params: dict[str, Any] = {"address": settings.address, "port": settings.port}
    try:
        echo = ctx.comm.echo(ctx.config, settings)
    except CommFailure as e:
        details["error"] = str(e)
        return Finding(COMM_CODES[e.kind], params | {"reason": str(e)}, details)
    limit = int(LIMITS["comm.max_echo_rtt_ms"])
    details.update(
        rtt_ms=echo.rtt_ms, connect_ms=echo.connect_ms, attempts=echo.attempts, max_rtt_ms=limit
    )
    params |= {"rtt_ms": echo.rtt_ms, "max_ms": limit}
    if echo.rtt_ms > limit:
        return Finding("E_COMM_SLOW", params, details)
    return Finding("OK", params, details)


def tid_is_valid(tid: str) -> bool:
    """A terminal ID is exactly 8 printable ASCII characters ("" is none assigned)."""
    return len(tid) == 8 and all(0x20 <= ord(c) <= 0x7E for c in tid)


def check_terminal_id(ctx: CheckContext) -> Finding:
    tid = str(ctx.config.get("terminal_id", ""))
    details: dict[str, Any] = {
        "terminal_id": tid,
        "format_valid": tid_is_valid(tid),
        "signed_on": False,
    }
    if not tid_is_valid(tid):
        return Finding("E_TID_INVALID", {"tid": tid}, details)
    wired = ctx.comm is not None and ctx.channels.has("host")
    settings = ctx.comm.settings(ctx.config) if wired and ctx.comm is not None else None
    if settings is None or ctx.comm is None:
        return Finding("E_TID_NO_HOST", {"tid": tid}, details)
    details.update(address=settings.address, port=settings.port)
    try:
        signed = ctx.comm.sign_on(ctx.config, settings)
    except CommFailure as e:
        details["error"] = str(e)
        return Finding("E_TID_SIGNON_FAILED", {"tid": tid, "reason": str(e)}, details)
    details.update(response_code=signed.response_code, attempts=signed.attempts)
    params = {"tid": tid, "response_code": signed.response_code}
    if signed.response_code == RC_APPROVED:
        details["signed_on"] = True
        return Finding("OK", params, details)
    if signed.response_code == RC_TID_NOT_REGISTERED:
        return Finding("E_TID_CONFLICT", params, details)
    return Finding("E_TID_REFUSED", params, details)


def check_card_reader(ctx: CheckContext) -> Finding:
    if not ctx.channels.has("pcsc"):
        return Finding("E_READER_ABSENT", {"reason": "no PC/SC reader connected"})
    wanted = ctx.channels.value("pcsc")
    contactless = ctx.channels.value("pcsc_cl") if ctx.channels.has("pcsc_cl") else ""
    if ctx.channels.has("faultlines") and not ctx.hardware.reader_powered():
        # An unpowered reader drops off the bus: the fault line is the finding.
        power = {"reader": wanted, "reader_power": "cut", "source": "fault lines"}
        return Finding("E_READER_POWER", {"reader": wanted or "card reader"}, power)
    try:
        names = ctx.hardware.pcsc_readers()
    except RuntimeError as e:
        return Finding("E_READER_ABSENT", {"reason": str(e)}, {"reader": wanted})
    details: dict[str, Any] = {"reader": wanted, "readers_seen": names}
    if contactless:
        details["contactless_reader"] = contactless
    found = [n for n in names if not wanted or n == wanted]
    if not found:
        reason = f"reader '{wanted}' not listed by PC/SC" if wanted else "PC/SC lists no reader"
        return Finding("E_READER_ABSENT", {"reason": reason}, details)
    if contactless and contactless not in names:
        reason = f"contactless reader '{contactless}' not listed by PC/SC"
        return Finding("E_READER_ABSENT", {"reason": reason}, details)
    return Finding("OK", {"reader": found[0]}, details)


def check_qr_scanner(ctx: CheckContext) -> Finding:
    """Read the calibration target the blank screen shows (hil/sim/scanner.py)."""
    if not ctx.channels.has("camera"):
        return Finding("E_CAMERA_ABSENT", {"reason": "no camera connected"})
    camera = ctx.channels.value("camera")
    reading = ctx.hardware.read_calibration_target(camera)
    min_pct = int(LIMITS["qr_scanner.min_luminance_pct"])
    luminance = round(reading.luminance_pct, 1)
    details: dict[str, Any] = {
        "camera": camera,
        "frames": reading.frames,
        "decode_ms": round(reading.decode_ms, 2),
        "luminance_pct": luminance,
        "min_luminance_pct": min_pct,
        "decoded": reading.decoded,
    }
    if reading.error is not None:
        details["error"] = reading.error
        return Finding("E_CAMERA_ABSENT", {"reason": reading.error}, details)
    if reading.decoded is not None:
        target = (
            "calibration target"
            if reading.decoded == CALIBRATION_PAYLOAD
            else "a code (not the calibration target)"
        )
        params = {"camera": camera, "target": target, "decode_ms": round(reading.decode_ms, 1)}
        return Finding("OK", params, details)
    params = {"luminance_pct": luminance, "min_pct": min_pct}
    if luminance < min_pct:
        return Finding("E_CAMERA_LOW_LIGHT", params, details)
    return Finding("E_CAMERA_WINDOW_DIRTY", params, details)


_INTERFACES = ("card", "qr", "nfc")
_PERMISSIONS = ("sale", "refund")


def check_payment_interfaces(ctx: CheckContext) -> Finding:
    permissions = {p: bool(ctx.config.get(f"permissions.{p}", False)) for p in _PERMISSIONS}
    any_permitted = any(permissions.values())
    interfaces = {}
    for name in _INTERFACES:
        enabled = bool(ctx.config.get(f"interfaces.{name}", False))
        interfaces[name] = {"enabled": enabled, "usable": enabled and any_permitted}
    usable = [n for n, s in interfaces.items() if s["usable"]]
    details = {"interfaces": interfaces, "permissions": permissions}
    if usable:
        return Finding("OK", {"usable": ", ".join(usable)}, details)
    if not any(s["enabled"] for s in interfaces.values()):
        reason = "all interfaces disabled"
    else:
        reason = "no transaction type permitted"
    return Finding("E_IFACE_NONE", {"reason": reason}, details)


def check_data_sync(ctx: CheckContext) -> Finding:
    wired = ctx.comm is not None and ctx.channels.has("host")
    settings = ctx.comm.settings(ctx.config) if wired and ctx.comm is not None else None
    if settings is None or ctx.comm is None:
        return Finding("E_SYNC_NO_HOST")
    try:
        outcome = ctx.comm.sync(ctx.config, settings)
    except CommFailure as e:  # only a power-off gets here
        outcome = SyncOutcome("E_SYNC_INTERRUPTED", f"data sync aborted: {e}", {})
    ctx.comm.last_sync = outcome
    return Finding(outcome.code, {"message": outcome.message}, outcome.details)


def check_firmware(ctx: CheckContext) -> Finding:
    fw = ctx.firmware
    details = {
        "version": fw.version,
        "model": fw.model,
        "sha256": fw.sha256,
        "signature_verified": fw.verified,
    }
    if not version_is_valid(fw.version):
        return Finding("E_FW_VERSION", {"version": fw.version}, details)
    return Finding("OK", {"version": fw.version}, details)


def check_security(ctx: CheckContext) -> Finding:
    unreachable = ctx.hardware.secure_element_error()
    if unreachable:
        return Finding("E_SEC_NO_PASSWORD", {"reason": unreachable}, {"store": "secure element"})
    try:
        record = load_admin_record(ctx.layout)
    except (ValueError, OSError) as e:
        return Finding("E_SEC_NO_PASSWORD", {"reason": str(e)})
    if record is None:
        return Finding("E_SEC_NO_PASSWORD", {"reason": "security.json missing"})
    details = {"scheme": record.scheme, "iterations": record.iterations}
    if record.matches(FACTORY_DEFAULT_ADMIN_PASSWORD):
        return Finding("E_SEC_DEFAULT_PASSWORD", details=details)
    return Finding("OK", details=details)


def check_performance(ctx: CheckContext) -> Finding:
    """The terminal's CPU demand over a window of wall time measured now, and its run
    queue over the same window (see Hardware.cpu_seconds for why demand)."""
    hw = ctx.hardware
    window = LIMITS["performance.cpu_window_s"]
    cpu_before, clock_before = hw.cpu_seconds(), hw.clock()
    ctx.sleep(window)
    cpu_s = hw.cpu_seconds() - cpu_before
    window_s = max(hw.clock() - clock_before, 1e-3)
    cpu_pct = round(100.0 * cpu_s / window_s, 1)
    cpus = hw.cpu_count()
    run_queue = cpu_s / window_s  # threads running or runnable, on average
    load, load_source = hw.load_reading(run_queue / cpus)
    load_per_cpu = round(load, 2)
    params = {
        "cpu_pct": cpu_pct,
        "window_s": round(window_s, 2),
        "max_pct": LIMITS["performance.max_cpu_pct"],
        "load_per_cpu": load_per_cpu,
        "max_load": LIMITS["performance.max_load_per_cpu"],
    }
    details = {
        "cpu_seconds": round(cpu_s, 3),
        "window_s": round(window_s, 3),
        "cpu_pct": cpu_pct,
        "uptime_s": round(hw.process_seconds(), 3),
        "run_queue": round(run_queue, 2),
        "load_source": load_source,
        "cpu_count": cpus,
        "load_per_cpu": load_per_cpu,
        "max_cpu_pct": LIMITS["performance.max_cpu_pct"],
        "max_load_per_cpu": LIMITS["performance.max_load_per_cpu"],
    }
    if cpu_pct > LIMITS["performance.max_cpu_pct"]:
        return Finding("E_PERF_CPU", params, details)
    if load_per_cpu > LIMITS["performance.max_load_per_cpu"]:
        return Finding("E_PERF_LOAD", params, details)
    return Finding("OK", params, details)


def check_logs(ctx: CheckContext) -> Finding:
    store = ctx.log_store
    try:
        store.probe_writable()
        store.purge_expired()  # the retention period applies before the entries are counted
        entries = store.reread_from_flash()
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        return Finding("E_LOG_IO", {"reason": reason}, {"directory": str(store.directory)})
    leaking = [e.seq for e in entries if contains_full_pan(e.message) or contains_full_pan(e.code)]
    details = {
        "entries": len(entries),
        "entries_with_pan": leaking[:20],
        "capacity": store.capacity,
        "oldest_seq": entries[0].seq if entries else None,
        "rotated_entries": store.rotated_entries,
        "purged_entries": store.purged_entries,
    }
    if leaking:
        seqs = ",".join(str(s) for s in leaking[:5]) + ("..." if len(leaking) > 5 else "")
        return Finding("E_LOG_PAN", {"count": len(leaking), "seqs": seqs}, details)
    return Finding("OK", {"entries": len(entries)}, details)


CHECKS: dict[str, Callable[[CheckContext], Finding]] = {
    "power": check_power,
    "memory": check_memory,
    "tamper": check_tamper,
    "comm": check_comm,
    "terminal_id": check_terminal_id,
    "card_reader": check_card_reader,
    "qr_scanner": check_qr_scanner,
    "payment_interfaces": check_payment_interfaces,
    "data_sync": check_data_sync,
    "firmware": check_firmware,
    "security": check_security,
    "performance": check_performance,
    "logs": check_logs,
}
assert tuple(CHECKS) == ITEM_IDS, "every table item needs exactly one check, in order"


# --- the runner ----------------------------------------------------------------------


def unknown_items(items: Sequence[str]) -> list[str]:
    return [i for i in items if i not in _SPECS]


def run_item(
    item: str, ctx: CheckContext, *, delay_s: float, sleep: Callable[[float], None]
) -> ItemResult:
    """Run one item: its inherent delay, then its check, resolved through the table."""
    item_spec = _SPECS[item]
    started = time.monotonic()
    sleep(delay_s)
    finding = CHECKS[item](ctx)
    outcome = item_spec.outcome(finding.code)
    return ItemResult(
        item=item,
        status=outcome.status,
        code=finding.code,
        message=outcome.message.format(**finding.params),
        duration_ms=round((time.monotonic() - started) * 1000),
        details=finding.details,
    )


def run_selfcheck(
    items: Sequence[str],
    ctx: CheckContext,
    *,
    trigger: str,
    time_scale: float,
    sleep: Callable[[float], None],
    on_item_start: Callable[[str, int, int], None] = lambda item, n, total: None,
    on_item_done: Callable[[ItemResult], None] = lambda result: None,
) -> Summary:
    """Run ``items`` in table order; ``sleep`` may raise to abort (power-off)."""
    wanted = set(items)
    ordered = [i for i in ITEM_IDS if i in wanted]
    started = time.monotonic()
    results = []
    for n, item in enumerate(ordered, start=1):
        on_item_start(item, n, len(ordered))
        result = run_item(
            item, ctx, delay_s=_SPECS[item].nominal_ms / 1000 * time_scale, sleep=sleep
        )
        results.append(result)
        on_item_done(result)
    return Summary(trigger, tuple(results), round((time.monotonic() - started) * 1000))
