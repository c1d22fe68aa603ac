"""The seeded defects the simulated terminal honours, by name.

A firmware image names the defects it carries in ``manifest.seeded_defects`` (signed,
like the rest of the manifest); the sim then misbehaves in exactly that one documented
way, so the shipped suite can prove it catches each (the detection matrix, ``hil
matrix``). Each defect is a realistic firmware bug, implemented by a small check next to
the behaviour it corrupts (grep for its constant). docs/defects.md says, build by build,
what the terminal does wrong and which scenario catches it; docs/test-port-protocol.md
lists them.

Imports nothing from the sim, so any sim module can import it.
"""

from __future__ import annotations

#: The memory item reports fixed figures (128 MiB flash free, 48 MiB RSS, image intact)
#: left over from bring-up, without measuring anything.
MEMORY_ITEM_FIXED_FIGURES = "memory_item_fixed_figures"
#: The power item never reads the supply monitor: it reports the nominal 12.0 V, 100 %.
POWER_ITEM_NEVER_READS_SENSOR = "power_item_never_reads_sensor"
#: The comm item maps a connection reset to E_COMM_TIMEOUT (one wrong branch).
COMM_RESET_REPORTED_AS_TIMEOUT = "comm_reset_reported_as_timeout"
#: The terminal_id item reports any refused sign-on as a TID conflict (E_TID_CONFLICT).
SIGN_ON_REFUSAL_REPORTED_AS_CONFLICT = "sign_on_refusal_reported_as_conflict"
#: payment.sale checks the amount with ``<`` instead of ``<=``: the documented maximum
#: (999999999999 minor units) is refused.
AMOUNT_LIMIT_REFUSES_MAXIMUM = "amount_limit_refuses_maximum"
#: The echo test's retry loop runs one attempt more than ``comm.retries`` allows.
ECHO_RETRIES_ONE_EXTRA = "echo_retries_one_extra"
#: A chip card expiring this month is refused as expired (month end compared with ``>=``).
CARD_EXPIRING_THIS_MONTH_REFUSED = "card_expiring_this_month_refused"
#: A sale waits half of ``comm.response_timeout_ms`` for the host's answer (ms read as
#: half-seconds by the timer), so it gives up before its documented timeout.
SALE_GIVES_UP_EARLY = "sale_gives_up_early"
#: Every 5th chip or contactless read fails with E_CARD_DATA (a buffer counter that
#: wraps: deterministic, once in five reads; ``--repeat`` makes it show).
EVERY_FIFTH_CARD_READ_FAILS = "every_fifth_card_read_fails"
#: After the host acknowledged a reversal, the retry timer still fires once: a late
#: duplicate reversal of the same sale one retry interval later.
LATE_DUPLICATE_REVERSAL = "late_duplicate_reversal"
#: The idle screen keeps every fault it ever showed in this power-on session, even once
#: the item passes again (the fault list is appended to, never rebuilt).
STALE_FAULT_ON_IDLE = "stale_fault_on_idle"
#: The idle screen shows E_COMM_SLOW as "网络延迟过高 Network slow" instead of the
#: documented "网络延迟过高 Network too slow" (an old string table).
COMM_SLOW_SCREEN_TEXT_DIFFERS = "comm_slow_screen_text_differs"
#: A swipe's ``card.read`` event carries the raw track 2 it decoded (a debug field left in).
TRACK2_IN_SWIPE_EVENT = "track2_in_swipe_event"
#: An interrupted parameter download leaves the blocks received so far in force (the
#: download writes the live parameter file block by block); the code is still honest.
SYNC_KEEPS_PARTIAL_PARAMETERS = "sync_keeps_partial_parameters"
#: payment.sale forgets the tamper interlock: a sale goes to the host with the switch open.
PAYMENT_ALLOWED_WHILE_TAMPERED = "payment_allowed_while_tampered"
#: The scanner reports an EMVCo merchant QR code without checking its CRC (tag 63).
QR_CRC_NOT_CHECKED = "qr_crc_not_checked"
#: The payment_interfaces item counts an enabled interface as usable even when no
#: transaction type is permitted (``or`` where ``and`` belongs).
INTERFACES_ITEM_IGNORES_PERMISSIONS = "interfaces_item_ignores_permissions"
#: A chip card swiped (service code 2xx/6xx) is read from the stripe instead of being
#: sent to the chip reader (E_USE_CHIP): chip-first rule missing.
CHIP_CARD_SWIPE_ACCEPTED = "chip_card_swipe_accepted"

SEEDED_DEFECTS: tuple[str, ...] = (
    MEMORY_ITEM_FIXED_FIGURES,
    POWER_ITEM_NEVER_READS_SENSOR,
    COMM_RESET_REPORTED_AS_TIMEOUT,
    SIGN_ON_REFUSAL_REPORTED_AS_CONFLICT,
    AMOUNT_LIMIT_REFUSES_MAXIMUM,
    ECHO_RETRIES_ONE_EXTRA,
    CARD_EXPIRING_THIS_MONTH_REFUSED,
    SALE_GIVES_UP_EARLY,
    EVERY_FIFTH_CARD_READ_FAILS,
    LATE_DUPLICATE_REVERSAL,
    STALE_FAULT_ON_IDLE,
    COMM_SLOW_SCREEN_TEXT_DIFFERS,
    TRACK2_IN_SWIPE_EVENT,
    SYNC_KEEPS_PARTIAL_PARAMETERS,
    PAYMENT_ALLOWED_WHILE_TAMPERED,
    QR_CRC_NOT_CHECKED,
    INTERFACES_ITEM_IGNORES_PERMISSIONS,
    CHIP_CARD_SWIPE_ACCEPTED,
)
