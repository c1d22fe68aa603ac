"""The self-check items as the test-port protocol documents them (rig side).

This is the rig's own statement of the contract in docs/test-port-protocol.md
("Self-check items"), kept apart from the simulated terminal's implementation on
purpose: a scenario judges the terminal against the documented contract, not against
the terminal's own tables, so a terminal that changes its codes is caught.
``tests/unit/test_contract.py`` checks these tables against the documentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hil.contract.maintenance import APP_FAULT_LINES


@dataclass(frozen=True)
class ItemSpec:
    """One self-check item: the rig channel it needs and the code it must report without it."""

    item: str
    needs_channel: str | None = None
    absent_code: str | None = None


ITEMS: tuple[ItemSpec, ...] = (
    ItemSpec("power"),
    ItemSpec("memory"),
    ItemSpec("tamper"),
    ItemSpec("comm", "host", "E_COMM_NO_HOST"),
    ItemSpec("terminal_id", "host", "E_TID_NO_HOST"),
    ItemSpec("card_reader", "pcsc", "E_READER_ABSENT"),
    ItemSpec("qr_scanner", "camera", "E_CAMERA_ABSENT"),
    ItemSpec("payment_interfaces"),
    ItemSpec("data_sync", "host", "E_SYNC_NO_HOST"),
    ItemSpec("firmware"),
    ItemSpec("security"),
    ItemSpec("performance"),
    ItemSpec("logs"),
)

ITEM_NAMES: tuple[str, ...] = tuple(spec.item for spec in ITEMS)

ProblemStatus = Literal["fail", "warn"]


@dataclass(frozen=True)
class ItemCode:
    """A documented failure or warning of an item and the text the idle screen shows for it."""

    item: str
    code: str
    status: ProblemStatus
    screen_text: str

    @property
    def screen_line(self) -> str:
        """The idle-screen line for this code: the code, a space, the screen text."""
        return f"{self.code} {self.screen_text}"


#: Every documented non-OK code of every item (an ``OK`` pass has no screen text).
ITEM_CODES: tuple[ItemCode, ...] = (
    ItemCode("power", "E_POWER_LOW", "fail", "电源电压低 Supply voltage low"),
    ItemCode("power", "E_POWER_BATTERY_LOW", "warn", "电池电量低 Battery low"),
    ItemCode("power", "E_POWER_UNVERIFIED", "warn", "电源未检测 Power not checked"),
    ItemCode("memory", "E_MEM_INTEGRITY", "fail", "存储校验错误 Flash integrity error"),
    ItemCode("memory", "E_MEM_FLASH_LOW", "fail", "存储空间不足 Flash full"),
    ItemCode("memory", "E_MEM_RAM", "fail", "内存不足 Out of memory"),
    ItemCode("tamper", "E_TAMPER", "fail", "设备被拆 Tamper detected"),
    ItemCode("tamper", "E_TAMPER_UNVERIFIED", "warn", "防拆未检测 Tamper not checked"),
    ItemCode("comm", "E_COMM_NO_HOST", "fail", "未配置主机 No host configured"),
    ItemCode("comm", "E_COMM_CONNECT", "fail", "主机不可达 Host unreachable"),
    ItemCode("comm", "E_COMM_TIMEOUT", "fail", "通讯超时 Communication timeout"),
    ItemCode("comm", "E_COMM_REFUSED", "fail", "连接被拒绝 Connection refused"),
    ItemCode("comm", "E_COMM_RESET", "fail", "连接中断 Connection reset"),
    ItemCode("comm", "E_COMM_MALFORMED", "fail", "报文错误 Bad host message"),
    ItemCode("comm", "E_COMM_SLOW", "fail", "网络延迟过高 Network too slow"),
    ItemCode("terminal_id", "E_TID_INVALID", "fail", "终端号无效 Invalid terminal ID"),
    ItemCode("terminal_id", "E_TID_NO_HOST", "fail", "终端未签到 TID not signed on"),
    ItemCode("terminal_id", "E_TID_CONFLICT", "fail", "终端号冲突 TID used by another device"),
    ItemCode("terminal_id", "E_TID_REFUSED", "fail", "签到被拒 Sign-on refused"),
    ItemCode("terminal_id", "E_TID_SIGNON_FAILED", "fail", "签到失败 Sign-on failed"),
    ItemCode("card_reader", "E_READER_ABSENT", "fail", "读卡器故障 Card reader fault"),
    ItemCode("card_reader", "E_READER_POWER", "fail", "读卡器电源故障 Card reader power fault"),
    ItemCode("qr_scanner", "E_CAMERA_ABSENT", "fail", "扫码器故障 QR scanner fault"),
    ItemCode("qr_scanner", "E_CAMERA_LOW_LIGHT", "warn", "扫码光线不足 Scanner light too low"),
    ItemCode("qr_scanner", "E_CAMERA_WINDOW_DIRTY", "warn", "请清洁扫码窗 Clean the scan window"),
    ItemCode("payment_interfaces", "E_IFACE_NONE", "fail", "无可用支付方式 No payment method"),
    ItemCode("data_sync", "E_SYNC_NO_HOST", "fail", "数据同步失败 Data sync failed"),
    ItemCode(
        "data_sync", "E_SYNC_INTERRUPTED", "fail", "参数下载中断 Parameter download interrupted"
    ),
    ItemCode("data_sync", "E_SYNC_DIGEST", "fail", "参数校验失败 Parameter digest mismatch"),
    ItemCode("data_sync", "E_SYNC_REFUSED", "fail", "参数下载被拒 Parameter download refused"),
    ItemCode("data_sync", "E_SYNC_KEYS", "fail", "密钥下载失败 Key download failed"),
    ItemCode("firmware", "E_FW_VERSION", "fail", "固件版本无效 Invalid firmware version"),
    ItemCode(
        "security", "E_SEC_DEFAULT_PASSWORD", "warn", "请修改默认密码 Change default password"
    ),
    ItemCode("security", "E_SEC_NO_PASSWORD", "fail", "管理员密码缺失 No admin password"),
    ItemCode("performance", "E_PERF_CPU", "warn", "处理器繁忙 CPU overloaded"),
    ItemCode("performance", "E_PERF_LOAD", "warn", "系统负载高 System load high"),
    ItemCode("logs", "E_LOG_IO", "fail", "日志存储故障 Log storage fault"),
    ItemCode("logs", "E_LOG_PAN", "fail", "日志含卡号 PAN in log"),
)


def item_code(code: str) -> ItemCode | None:
    """The documented item code ``code``, or None when no item documents it."""
    for documented in ITEM_CODES:
        if documented.code == code:
            return documented
    return None


def codes_of(item: str) -> tuple[ItemCode, ...]:
    """The documented non-OK codes of ``item``."""
    return tuple(documented for documented in ITEM_CODES if documented.item == item)


#: The echo round trip above which the comm item must fail (E_COMM_SLOW), in ms.
COMM_MAX_ECHO_RTT_MS = 1000
#: Back-off between host retries at time scale 1 (scaled like every inherent delay).
COMM_RETRY_BACKOFF_S = 0.5
#: A pending reversal is sent again this often at time scale 1 (scaled).
REVERSAL_RETRY_S = 2.0
#: How many reversal retry intervals an "exactly once" check waits after the first
#: acknowledgement for a late duplicate (docs/decisions.md).
DUPLICATE_GRACE_INTERVALS = 3
#: What a lower bound on a timed-out host exchange leaves for the rig's clock and the
#: terminal's timer resolution: the terminal may give up this much early, no more.
TIMEOUT_LOWER_MARGIN_S = 0.05

#: Fault lines a rig drives (docs "Channel faultlines") and the item code each
#: provokes: line -> the code its item must report (fail or warn) while it is asserted.
FAULT_LINE_CODES: dict[str, str] = {
    "reader_power": "E_READER_POWER",
    "supply_low": "E_POWER_LOW",
    "tamper": "E_TAMPER",
    "battery_low": "E_POWER_BATTERY_LOW",
    "flash_corrupt": "E_MEM_INTEGRITY",
    "flash_full": "E_MEM_FLASH_LOW",
    "ram_pressure": "E_MEM_RAM",
    "cpu_load": "E_PERF_CPU",
    "system_load": "E_PERF_LOAD",
    "log_io": "E_LOG_IO",
    "log_full": "E_LOG_IO",
    "secure_element": "E_SEC_NO_PASSWORD",
}
#: Every line of the fault-line channel, in the documented order: the rig's instruments
#: drive exactly these and the sim's inputs read exactly these.
FAULT_LINES: tuple[str, ...] = (*FAULT_LINE_CODES, *APP_FAULT_LINES)
#: Codes a payment is refused with while a fault line is asserted (nothing is sent to
#: the host). A line not listed does not stop payments (its item only warns, or the
#: documentation gives it no effect on payments).
PAYMENT_REFUSALS: dict[str, str] = {
    "reader_power": "E_READER_FAULT",
    "tamper": "E_TAMPERED",
    "supply_low": "E_POWER_LOW",
    "flash_corrupt": "E_MEM_INTEGRITY",
    "flash_full": "E_MEM_FLASH_LOW",
    "ram_pressure": "E_MEM_RAM",
    "log_io": "E_LOG_IO",
    "log_full": "E_LOG_IO",
}
#: Every code ``payment.sale`` is documented to refuse with (docs "Command error codes").
SALE_REFUSAL_CODES: frozenset[str] = frozenset(
    {
        *PAYMENT_REFUSALS.values(),
        "E_BAD_ARGS",
        "E_COMM_NO_HOST",
        "E_PAY_NOT_PERMITTED",
        "E_PAY_INTERFACE_DISABLED",
        "E_TID_INVALID",
        "E_REVERSAL_PENDING",
    }
)
#: What the power and tamper items report while the fault-line harness is unplugged
#: (channel wired, inputs unreadable): never a pass.
HARNESS_UNPLUGGED_CODES: dict[str, str] = {
    "power": "E_POWER_UNVERIFIED",
    "tamper": "E_TAMPER_UNVERIFIED",
}

#: Amounts ``payment.sale`` accepts, in minor units (docs "payment.sale").
SALE_MIN_AMOUNT = 1
SALE_MAX_AMOUNT = 999_999_999_999

#: Documented limits the items judge against (docs "Self-check items").
POWER_MIN_SUPPLY_V = 10.8
POWER_MIN_BATTERY_PCT = 15
MEMORY_MIN_FLASH_FREE_MIB = 16
MEMORY_MAX_RSS_MIB = 512
MEMORY_FLASH_CAPACITY_MIB = 64
PERFORMANCE_MAX_CPU_PCT = 90
PERFORMANCE_MAX_LOAD_PER_CPU = 4.0
#: The documented firmware version format (the firmware item fails E_FW_VERSION otherwise).
FIRMWARE_VERSION_PATTERN = r"^\d{1,4}\.\d{1,4}\.\d{1,4}([-+][0-9A-Za-z.-]{1,32})?$"

#: Screen ids and the words each must show, per the protocol doc.
SELFCHECK_SCREEN = "selfcheck"
SELFCHECK_WORDS = ("自检中", "Self-check in progress")
IDLE_SCREEN = "idle"
#: The idle screen's summary line of failed items, then of warned items, each
#: followed by the codes separated by commas.
IDLE_SUMMARY_PREFIX: dict[ProblemStatus, str] = {"fail": "故障 Faults:", "warn": "警告 Warnings:"}
#: The idle screen's first two lines, then the TID (or ``NO_TID_LINE``).
IDLE_TITLE = ("请刷卡/插卡/挥卡", "Present card")
NO_TID_LINE = "未设置终端号 No TID"


def idle_screen_lines(terminal_id: str, latest: Sequence[tuple[str, str, str]]) -> list[str]:
    """The idle screen as documented, for a terminal whose latest result of each item is
    ``(item, status, code)`` in any order: title, TID, then the summary of failed and
    of warned codes, then one "CODE text" line per failed, then per warned item, each
    group in item order. A code no item documents is shown as the code alone (the check
    that compares the screen names it)."""
    order = {name: n for n, name in enumerate(ITEM_NAMES)}
    ranked = sorted(latest, key=lambda result: order.get(result[0], len(order)))
    failed = [code for _, status, code in ranked if status == "fail"]
    warned = [code for _, status, code in ranked if status == "warn"]
    lines = [*IDLE_TITLE, terminal_id or NO_TID_LINE]
    if failed:
        lines.append(IDLE_SUMMARY_PREFIX["fail"] + " " + ",".join(failed))
    if warned:
        lines.append(IDLE_SUMMARY_PREFIX["warn"] + " " + ",".join(warned))
    for code in failed + warned:
        entry = item_code(code)
        lines.append(entry.screen_line if entry is not None else code)
    return lines
