"""The terminal's screens as docs/test-port-protocol.md ("Screens") documents them, and
the reader LED each screen goes with ("Reader LED").

A screen read over the test port comes with its id; one read by a camera is only text.
``identify_screen`` names the screen from its documented fixed lines, so steps can ask
"is this the idle screen?" of either source. ``documented_screens`` lists one instance
of every screen the protocol doc gives (with every documented code in it), the set the
camera's OCR accuracy is measured on.
"""

from __future__ import annotations

from collections.abc import Sequence

from hil.camera.text import fold
from hil.contract.cards import CARD_ERROR_SCREEN, CARD_ERROR_SCREENS, ENTRY_MODES
from hil.contract.selfcheck import (
    IDLE_SCREEN,
    IDLE_TITLE,
    ITEM_CODES,
    ITEM_NAMES,
    NO_TID_LINE,
    SELFCHECK_SCREEN,
    SELFCHECK_WORDS,
    idle_screen_lines,
)

UNKNOWN_SCREEN = "unknown"
READING_LINES = ("读卡中", "Reading card...")
PROMPT_LINES = ("请插卡/挥卡/刷卡", "Insert, tap or swipe card")
REMOVE_LINE = "请取卡 Remove card"
TAP_READ_LINE = "读卡成功 Card read"

#: Screens told apart by their first line (folded, see ``hil.camera.text``).
FIRST_LINES: dict[str, str] = {
    "自检中": SELFCHECK_SCREEN,
    IDLE_TITLE[0]: IDLE_SCREEN,
    "固件无效": "fw_invalid",
    "无固件": "fw_missing",
    "关机中": "shutdown",
    "重启中": "shutdown",
    "交易处理中": "payment",
    "交易成功": "payment_result",
    "交易失败": "payment_result",
    READING_LINES[0]: "card_reading",
    PROMPT_LINES[0]: "card_prompt",
    TAP_READ_LINE: "card_read",
    "POS-SIM": "boot",
}

#: The reader LED (docs "Reader LED") on each screen; ``off`` on every other one.
READER_LED_BY_SCREEN: dict[str, str] = {
    "card_prompt": "blue",
    "card_reading": "blue",
    "card_read": "green",
    "card_error": "red",
}


def identify_screen(lines: Sequence[str]) -> str:
    """The documented screen these lines are, or ``unknown``."""
    if not lines:
        return UNKNOWN_SCREEN
    first = fold(lines[0])
    for words, _english in CARD_ERROR_SCREENS.values():
        if first == fold(words):
            return CARD_ERROR_SCREEN
    for line, screen in FIRST_LINES.items():
        if first == fold(line):
            return screen
    # A chip card's result starts with its label; it ends with the removal prompt.
    if fold(lines[-1]) == fold(REMOVE_LINE):
        return "card_read"
    return UNKNOWN_SCREEN


def reader_led_for(screen: str) -> str:
    return READER_LED_BY_SCREEN.get(screen, "off")


def documented_screens(terminal_id: str = "T0000001") -> list[tuple[str, list[str]]]:
    """One instance of every documented screen, every documented code shown once:
    ``(screen id, lines)``."""
    screens: list[tuple[str, list[str]]] = [("boot", ["POS-SIM", "Starting..."])]
    total = len(ITEM_NAMES)
    for n, item in enumerate(ITEM_NAMES, start=1):
        screens.append((SELFCHECK_SCREEN, [*SELFCHECK_WORDS, f"{item} ({n}/{total})"]))
    screens.append((IDLE_SCREEN, idle_screen_lines(terminal_id, [])))
    screens.append((IDLE_SCREEN, idle_screen_lines("", [])))
    # Every item code on an idle screen, up to four per screen and one per item (an
    # item shows its latest result only).
    buckets: list[list[tuple[str, str, str]]] = []
    for c in ITEM_CODES:
        home = next(
            (b for b in buckets if len(b) < 4 and all(item != c.item for item, _, _ in b)), None
        )
        if home is None:
            home = []
            buckets.append(home)
        home.append((c.item, c.status, c.code))
    screens.extend((IDLE_SCREEN, idle_screen_lines(terminal_id, bucket)) for bucket in buckets)
    for code in ("E_FW_SIGNATURE", "E_FW_FORMAT", "E_FW_MODEL"):
        screens.append(("fw_invalid", ["固件无效", "Firmware invalid", code]))
    screens.append(("fw_missing", ["无固件", "No firmware", "E_FW_MISSING"]))
    screens.append(("shutdown", ["关机中", "Shutting down..."]))
    screens.append(("shutdown", ["重启中", "Restarting..."]))
    screens.append(("payment", ["交易处理中", "Processing", "12.34"]))
    screens.append(("payment_result", ["交易成功", "Approved"]))
    screens.append(("payment_result", ["交易失败", "Declined 05"]))
    screens.append(("payment_result", ["交易失败", "Communication error", "E_COMM_TIMEOUT"]))
    for code, (chinese, english) in CARD_ERROR_SCREENS.items():
        screens.append((CARD_ERROR_SCREEN, [chinese, english, code, REMOVE_LINE]))
    for mode in ENTRY_MODES:
        screens.append(("card_reading", [*READING_LINES, mode]))
    screens.append(("card_prompt", list(PROMPT_LINES)))
    screens.append(("card_read", ["VISA CREDIT", "476173******0010", REMOVE_LINE]))
    screens.append(("card_read", [TAP_READ_LINE, "MASTERCARD", "541333******4111"]))
    screens.append((IDLE_SCREEN, [*IDLE_TITLE, NO_TID_LINE]))
    return screens
