"""Card reading figures, all measured in one run on this machine.

1. APDU round trip through the real stack (pyscard -> pcscd -> vpcd -> hil's card side
   -> back), median over N SELECTs, with TCP_QUICKACK on the card-side socket and
   without it (the ratio is what QUICKACK saves; FACTS.md measured 44 ms without).
2. Insert-to-read on the sim rig: the rig inserts a card into the chip slot, the
   simulated terminal sees it through PC/SC card monitoring, runs the EMV flow and
   reports ``card.read``; median, p90 and max over N insertions (rig clock, from the
   insert call to the event's arrival). pcscd polls vpcd readers every 400 ms, which
   bounds the detection part.

Run: ``.venv/bin/python bench/bench_cards.py [--apdus 200] [--insertions 50]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from hil.cards.emv import PPSE, EmvCard
from hil.cards.pcscd import PcscdClaim, VpcdPool, claim_reader
from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.cards.vpcd import VpcdCardConnection
from hil.instruments.cards import VpcdCardsConfig
from hil.rig import Rig
from hil.suite import DEFAULT_RIG
from hil.terminal import CardRemoved

LIB = ProfileLibrary(DEFAULT_PROFILES)


def _sc() -> Any:
    from smartcard import scard

    return scard


def apdu_round_trips(claim: PcscdClaim, rounds: int, quickack: bool) -> list[float]:
    sc = _sc()
    reader = claim.reader.slot_name(1)
    card = VpcdCardConnection(
        EmvCard(LIB.get("visa-credit")),
        ("127.0.0.1", claim.reader.slot_port(1)),
        quickack=quickack,
    )
    result, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    assert result == sc.SCARD_S_SUCCESS

    def wait_until(present: bool) -> None:
        state = sc.SCARD_STATE_UNAWARE
        while True:
            result, states = sc.SCardGetStatusChange(context, 3000, [(reader, state)])
            assert result == sc.SCARD_S_SUCCESS, sc.SCardGetErrorMessage(result)
            state = states[0][1] & ~sc.SCARD_STATE_CHANGED
            if bool(state & sc.SCARD_STATE_PRESENT) == present:
                return

    try:
        wait_until(False)  # the previous round's card must be gone first
        card.connect()
        wait_until(True)
        result, handle, protocol = sc.SCardConnect(
            context, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        )
        assert result == sc.SCARD_S_SUCCESS, sc.SCardGetErrorMessage(result)
        apdu = list(bytes([0, 0xA4, 4, 0, len(PPSE)]) + PPSE + b"\x00")
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            result, response = sc.SCardTransmit(handle, protocol, apdu)
            times.append(time.perf_counter() - started)
            assert result == sc.SCARD_S_SUCCESS and response[-2:] == [0x90, 0x00]
        sc.SCardDisconnect(handle, sc.SCARD_UNPOWER_CARD)
        return times
    finally:
        card.close()
        sc.SCardReleaseContext(context)


def insert_to_read(rounds: int) -> tuple[list[float], list[float]]:
    """(insert-to-read seconds, terminal-side EMV flow seconds) over ``rounds`` insertions."""
    rig = Rig.from_file(DEFAULT_RIG)
    terminal = rig.start()
    try:
        terminal.ensure_idle()
        slot: Any = rig.instrument("cards")
        profile = LIB.get("visa-credit")
        totals, flows = [], []
        for _ in range(rounds):
            cursor = terminal.mark()
            started = time.monotonic()
            slot.insert(profile)
            finished = terminal.wait_card_read(since=cursor, timeout=10)
            assert finished.read.ok and finished.read.duration_ms is not None, finished.read
            totals.append(finished.received_at - started)
            flows.append(finished.read.duration_ms / 1000)
            cursor = terminal.mark()
            slot.remove()
            terminal.wait_event(CardRemoved, since=cursor, timeout=10)
        return totals, flows
    finally:
        rig.close()


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return (
        f"median {statistics.median(values) * 1000:8.3f} ms  p90 {p90 * 1000:8.3f} ms  "
        f"max {ordered[-1] * 1000:8.3f} ms  (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apdus", type=int, default=200)
    parser.add_argument("--slow-apdus", type=int, default=20, help="rounds without QUICKACK")
    parser.add_argument("--insertions", type=int, default=50)
    args = parser.parse_args()

    defaults = VpcdCardsConfig()
    claim = claim_reader(VpcdPool(defaults.reader, defaults.port, defaults.readers))
    try:
        fast = apdu_round_trips(claim, args.apdus, quickack=True)
        slow = apdu_round_trips(claim, args.slow_apdus, quickack=False)
    finally:
        claim.close()
    print("APDU round trip (SELECT PPSE via pyscard -> pcscd -> vpcd -> card side)")
    print(f"  with TCP_QUICKACK     {_ms(fast)}")
    print(f"  without TCP_QUICKACK  {_ms(slow)}")
    print(f"  ratio without/with: {statistics.median(slow) / statistics.median(fast):.1f}x")

    totals, flows = insert_to_read(args.insertions)
    print("Insert-to-read on the sim rig (insert call -> card.read event)")
    print(f"  insert to read        {_ms(totals)}")
    print(f"  EMV flow in terminal  {_ms(flows)}")
    share = statistics.median(flows) / statistics.median(totals)
    print(f"  EMV flow share of insert-to-read: {share * 100:.1f}% (the rest: pcscd's poll)")


if __name__ == "__main__":
    main()
