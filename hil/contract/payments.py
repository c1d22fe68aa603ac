"""Sales with a presented instrument as the protocol doc promises them (rig side).

The rig's own statement of docs/test-port-protocol.md (``payment.sale`` with
``entry_mode``, screens ``payment_prompt`` and ``payment_result``) and docs/host.md
(what the 0200 carries per entry mode), kept apart from the simulated terminal's tables
on purpose: a scenario judges the terminal against the documentation.
"""

from __future__ import annotations

#: Entry modes ``payment.sale`` takes (``entry_mode``).
SALE_ENTRY_MODES = ("chip", "contactless", "qr")

#: ISO 8583 field 22 (POS entry mode) the 0200 carries per entry mode.
POS_ENTRY_MODE = {"chip": "051", "contactless": "071", "qr": "031"}

#: The config switch of each entry mode's interface (false: E_PAY_INTERFACE_DISABLED).
INTERFACE_KEY = {"chip": "interfaces.card", "contactless": "interfaces.nfc", "qr": "interfaces.qr"}

#: Field of a QR sale's 0200 that carries the customer's wallet auth code.
WALLET_CODE_FIELD = "48"
#: Fields a QR sale's 0200 must not carry: there is no card.
NO_CARD_FIELDS = ("2", "14", "23", "35", "55")
#: EMV tags a card sale's field 55 must carry (the ARQC and what it was computed over).
REQUIRED_ICC_TAGS = ("9F26", "9F27", "9F36", "9F02", "82", "95", "9F37", "5A")

#: What a sale with an entry mode may be refused with besides the general refusals
#: (``SALE_REFUSAL_CODES``): no card in time, no reader for it, the card read's own codes,
#: the scanner's codes.
INSTRUMENT_REFUSAL_CODES = frozenset(
    {
        "E_TIMEOUT",
        "E_READER_FAULT",
        "E_CARD_MUTE",
        "E_CARD_NO_APP",
        "E_CARD_REMOVED",
        "E_CARD_DATA",
        "E_CARD_EXPIRED",
        "E_PIN_BLOCKED",
        "E_CARD_DECLINED",
        "E_QR_NO_CODE",
        "E_QR_CRC",
        "E_QR_FORMAT",
        "E_CAMERA_ABSENT",
    }
)

PROMPT_SCREEN = "payment_prompt"
#: ``payment_prompt`` lines before the amount, per entry mode.
PROMPT_WORDS = {
    "chip": ("请插卡", "Insert card"),
    "contactless": ("请挥卡", "Tap card"),
    "qr": ("请出示付款码", "Show payment code"),
}

RESULT_SCREEN = "payment_result"
APPROVED_LINES = ("交易成功", "Approved")


def amount_text(minor_units: int) -> str:
    """The amount as the payment screens show it (12.34)."""
    return f"{minor_units // 100}.{minor_units % 100:02d}"


def prompt_lines(entry_mode: str, minor_units: int) -> tuple[str, ...]:
    return (*PROMPT_WORDS[entry_mode], amount_text(minor_units))


def declined_lines(response_code: str) -> tuple[str, ...]:
    """``payment_result`` of a sale the host declined with ``response_code``."""
    return ("交易失败", f"Declined {response_code}")
