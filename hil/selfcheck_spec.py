"""The self-check items as the test-port protocol documents them (rig side).

This is the rig's own statement of the contract in docs/test-port-protocol.md,
kept apart from the simulated terminal's implementation on purpose: a scenario
judges the terminal against the documented contract, not against the terminal's
own tables, so a terminal that changes its codes is caught.
"""

from __future__ import annotations

from dataclasses import dataclass


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

#: Warning codes of the qr_scanner item and the text the idle screen must show for each,
#: per the protocol doc (the rig provokes them by showing a degraded calibration target).
QR_SCANNER_WARNINGS: dict[str, str] = {
    "E_CAMERA_WINDOW_DIRTY": "请清洁扫码窗 Clean the scan window",
    "E_CAMERA_LOW_LIGHT": "扫码光线不足 Scanner light too low",
}

#: Host-link failure codes of comm, terminal_id and data_sync and the text the idle
#: screen must show for each, per the protocol doc (provoked through host and network).
HOST_FAULT_SCREENS: dict[str, str] = {
    "E_COMM_TIMEOUT": "通讯超时 Communication timeout",
    "E_COMM_REFUSED": "连接被拒绝 Connection refused",
    "E_COMM_RESET": "连接中断 Connection reset",
    "E_COMM_MALFORMED": "报文错误 Bad host message",
    "E_COMM_SLOW": "网络延迟过高 Network too slow",
    "E_COMM_CONNECT": "主机不可达 Host unreachable",
    "E_TID_CONFLICT": "终端号冲突 TID used by another device",
    "E_TID_REFUSED": "签到被拒 Sign-on refused",
    "E_TID_SIGNON_FAILED": "签到失败 Sign-on failed",
    "E_SYNC_INTERRUPTED": "参数下载中断 Parameter download interrupted",
    "E_SYNC_DIGEST": "参数校验失败 Parameter digest mismatch",
    "E_SYNC_REFUSED": "参数下载被拒 Parameter download refused",
    "E_SYNC_KEYS": "密钥下载失败 Key download failed",
}
#: The echo round trip above which the comm item must fail (E_COMM_SLOW), in ms.
COMM_MAX_ECHO_RTT_MS = 1000
#: Back-off between host retries at time scale 1 (scaled like every inherent delay).
COMM_RETRY_BACKOFF_S = 0.5

#: What each rig fault line provokes, per the protocol doc: line -> (self-check item,
#: code it must fail with, text the idle screen must show for it).
FAULT_LINE_EFFECTS: dict[str, tuple[str, str, str]] = {
    "reader_power": ("card_reader", "E_READER_POWER", "读卡器电源故障 Card reader power fault"),
    "supply_low": ("power", "E_POWER_LOW", "电源电压低 Supply voltage low"),
    "tamper": ("tamper", "E_TAMPER", "设备被拆 Tamper detected"),
}
#: Codes a payment is refused with while a fault line is asserted.
PAYMENT_REFUSALS: dict[str, str] = {"reader_power": "E_READER_FAULT", "tamper": "E_TAMPERED"}

#: Screen ids and the words each must show, per the protocol doc.
SELFCHECK_SCREEN = "selfcheck"
SELFCHECK_WORDS = ("自检中", "Self-check in progress")
IDLE_SCREEN = "idle"


def spec_for(item: str) -> ItemSpec:
    for spec in ITEMS:
        if spec.item == item:
            return spec
    raise KeyError(item)
