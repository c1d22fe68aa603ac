"""The test-port commands docs/test-port-protocol.md documents, by name.

``hil console`` completes these names and ``hil send`` accepts any name (a terminal
may have more); a test checks this list against the protocol document's command
headings, so a command added to the document and not here (or the other way round)
fails the suite.
"""

from __future__ import annotations

DOCUMENTED_COMMANDS: tuple[str, ...] = (
    "app.status",
    "biometric.enrol",
    "biometric.verify",
    "card.last",
    "card.read",
    "card.status",
    "comm.test",
    "config.get",
    "config.set",
    "device.info",
    "display.read",
    "fw.update",
    "keypad.press",
    "log.mark",
    "log.read",
    "payment.sale",
    "pin.enter",
    "reversal.status",
    "scanner.scan",
    "security.login",
    "security.reset_admin",
    "security.set_password",
    "selfcheck.items",
    "selfcheck.last",
    "selfcheck.run",
    "sync.run",
    "sync.status",
    "sys.ping",
    "sys.reboot",
)
