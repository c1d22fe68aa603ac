"""Card reading as the protocol doc promises it (rig side).

The rig's own statement of the card codes and screens in docs/test-port-protocol.md,
kept apart from the simulated terminal's tables on purpose: a scenario judges the
terminal against the documentation, not against the terminal's own code.
"""

from __future__ import annotations

#: Entry modes ``card.read`` reports.
ENTRY_MODES = ("chip", "contactless", "magstripe")

#: Card read failure codes -> the words the ``card_error`` screen must show.
CARD_ERROR_SCREENS: dict[str, tuple[str, str]] = {
    "E_CARD_MUTE": ("卡片无响应", "Card not responding"),
    "E_CARD_NO_APP": ("不支持此卡", "Card not supported"),
    "E_CARD_REMOVED": ("卡片已拔出", "Card removed"),
    "E_CARD_DATA": ("读卡错误", "Card read error"),
    "E_CARD_EXPIRED": ("卡片已过期", "Card expired"),
    "E_PIN_BLOCKED": ("密码已锁", "PIN tries exceeded"),
    "E_CARD_DECLINED": ("卡片拒绝", "Declined by card"),
    "E_SWIPE_READ": ("请重新刷卡", "Swipe again"),
    "E_USE_CHIP": ("请插卡", "Use chip"),
}

CARD_ERROR_SCREEN = "card_error"
CARD_READ_SCREEN = "card_read"
CARD_READING_SCREEN = "card_reading"
