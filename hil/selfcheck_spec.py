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

#: Screen ids and the words each must show, per the protocol doc.
SELFCHECK_SCREEN = "selfcheck"
SELFCHECK_WORDS = ("自检中", "Self-check in progress")
IDLE_SCREEN = "idle"


def spec_for(item: str) -> ItemSpec:
    for spec in ITEMS:
        if spec.item == item:
            return spec
    raise KeyError(item)
