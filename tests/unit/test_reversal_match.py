"""The suite finds a sale's reversals the way docs/host.md allows a terminal to send
them: the original STAN in field 61 (with a new STAN of the terminal's own in field 11,
or the original again), or in field 11 alone."""

from __future__ import annotations

from typing import Any

import pytest

from hil.host.records import MessageRecord, masked_fields
from hil.steps.host import _reversals_of, _reversals_sent


def _record(direction: str, fields: dict[str, Any], seq: int) -> MessageRecord:
    return MessageRecord(
        seq=seq,
        at_ms=0.0,
        connection=1,
        direction=direction,
        mti="0400" if direction == "in" else "0410",
        transaction="reversal",
        terminal_id="T0000001",
        fields=masked_fields(fields),
        response_code="00" if direction == "out" else "",
    )


@pytest.mark.parametrize(
    "reversal",
    [
        {"11": "000078", "61": "0000010000771130"},
        {"11": "000077", "61": "0000010000771130"},
        {"11": "000077"},
    ],
    ids=["new-stan-in-11", "original-in-both", "original-in-11-only"],
)
def test_the_reversal_of_sale_77_is_found_whichever_way_it_names_it(
    reversal: dict[str, str],
) -> None:
    records = [_record("in", reversal, 1), _record("out", {**reversal, "39": "00"}, 2)]
    assert len(_reversals_sent(records, "000077")) == 1
    assert len(_reversals_of(records, "000077")) == 1
    assert _reversals_of(records, "000078") == [], "field 61 names the sale, not field 11"
