"""How the simulated terminal takes the payment instrument of a sale.

``payment.sale`` with ``entry_mode`` (docs/test-port-protocol.md): ``chip`` or
``contactless`` prompts for a card and takes the next read of that reader (the EMV
kernel runs with the sale's amount, ending with an ARQC); ``qr`` prompts and scans the
customer's wallet payment code. Without ``entry_mode`` the sale uses the terminal's
built-in test card, as before. The card data the host needs (PAN in clear, track 2
equivalent, EMV tags) stays inside the terminal: ``SaleCredential`` never reaches a
result, an event, the screen or the log (the sale reports the masked PAN only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hil.masking import mask_pan
from hil.protocol.endpoint import CommandFailed
from hil.sim.emv_kernel import OnlineData

ENTRY_CHIP = "chip"
ENTRY_CONTACTLESS = "contactless"
ENTRY_QR = "qr"
ENTRY_MODES = (ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_QR)

#: ISO 8583 field 22 (POS entry mode: 2 digits how the PAN came, 1 digit PIN capability)
#: per entry mode; docs/host.md lists them.
POS_ENTRY_MODES = {ENTRY_CHIP: "051", ENTRY_CONTACTLESS: "071", ENTRY_QR: "031"}

#: The config switch that enables each entry mode's interface.
INTERFACE_KEYS = {
    ENTRY_CHIP: "interfaces.card",
    ENTRY_CONTACTLESS: "interfaces.nfc",
    ENTRY_QR: "interfaces.qr",
}

#: ``payment_prompt`` screen (Chinese, English); the amount follows.
PROMPT_LINES = {
    ENTRY_CHIP: ("请插卡", "Insert card"),
    ENTRY_CONTACTLESS: ("请挥卡", "Tap card"),
    ENTRY_QR: ("请出示付款码", "Show payment code"),
}

#: Seeded defects (docs/test-port-protocol.md) of this area: the interface check sees
#: only ``interfaces.card`` (as before entry modes), so a contactless or QR sale on a
#: disabled interface goes on; every approved sale leaves 64 KiB behind in memory.
DEFECT_IFACE_CARD_ONLY = "sale_checks_card_interface_only"
DEFECT_SALE_LEAK = "sale_leaks_memory"
PAYMENT_DEFECTS = (DEFECT_IFACE_CARD_ONLY, DEFECT_SALE_LEAK)
SALE_LEAK_BYTES = 64 * 1024

PRESENT_DEFAULT_MS = 30_000
PRESENT_MAX_MS = 120_000


@dataclass(frozen=True)
class SaleCredential:
    """The instrument of one sale as the 0200 carries it."""

    entry_mode: str
    #: the card's data (chip, contactless, built-in test card); None for a QR sale
    card: OnlineData | None = field(default=None, repr=False)
    #: the wallet auth code a QR sale scanned, and its wallet
    wallet_code: str | None = field(default=None, repr=False)
    wallet: str | None = None

    @property
    def masked_card(self) -> str | None:
        return None if self.card is None else mask_pan(self.card.pan)


def sale_entry_mode(args: Mapping[str, Any]) -> str | None:
    """The ``entry_mode`` argument (None: the built-in test card); E_BAD_ARGS if unknown."""
    value = args.get("entry_mode")
    if value is None:
        return None
    if value not in ENTRY_MODES:
        raise CommandFailed("E_BAD_ARGS", f"entry_mode must be one of {', '.join(ENTRY_MODES)}")
    return str(value)


def present_timeout_ms(args: Mapping[str, Any]) -> int:
    value = args.get("timeout_ms", PRESENT_DEFAULT_MS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= PRESENT_MAX_MS:
        raise CommandFailed(
            "E_BAD_ARGS", f"timeout_ms must be an integer from 1 to {PRESENT_MAX_MS}"
        )
    return value


def interface_refusal(entry_mode: str | None, config: Mapping[str, Any]) -> tuple[str, str] | None:
    """E_PAY_INTERFACE_DISABLED when the interface of this entry mode is switched off."""
    key = INTERFACE_KEYS[entry_mode or ENTRY_CHIP]
    if config.get(key, True):
        return None
    what = {ENTRY_CHIP: "card", ENTRY_CONTACTLESS: "contactless", ENTRY_QR: "QR"}[
        entry_mode or ENTRY_CHIP
    ]
    return "E_PAY_INTERFACE_DISABLED", f"{what} payments are disabled ({key})"


def prompt_lines(entry_mode: str, amount: int) -> list[str]:
    return [*PROMPT_LINES[entry_mode], f"{amount / 100:.2f}"]


#: Obtains the instrument of a sale: (entry mode, amount, timeout_ms) -> credential.
CredentialSource = Callable[[str, int, int], SaleCredential]
