"""Card reading figures, all measured in one run on this machine.

1. APDU round trip through the real stack (pyscard -> pcscd -> vpcd -> hil's card side
   -> back), median over N SELECTs, with TCP_QUICKACK on the card-side socket and
   without it (the ratio is what QUICKACK saves; FACTS.md measured 44 ms without).
2. Card detection at pcscd: from the card side connecting to vpcd (insert) or closing
   (remove) to ``SCardGetStatusChange`` reporting it, N each. "aligned" inserts right
   after the previous removal was reported (as the suite does); "random phase" first
   waits a random 0-400 ms, as a hand at a counter does.
3. Insert-to-read on the sim rig: the rig inserts a card into the chip slot, the
   simulated terminal sees it through PC/SC card monitoring, runs the EMV flow and
   reports ``card.read``; median, p90 and max over N insertions (rig clock, from the
   insert call to the event's arrival). pcscd polls vpcd readers every 400 ms, which
   bounds the detection part.

``--driver NAME=PATH`` (repeatable) compares vpcd IFD handlers, e.g. Debian's against
one built with docs/vpcd-card-events.patch: each block starts a pcscd loading that
driver, measures 1-3 and stops it; ``--blocks`` interleaves the drivers (A B, B A, ...).
pcscd is one per host: run it where no other pcscd serves the pool (docs/cards.md,
"Insertion latency: the floor", shows an isolated run with ``unshare``).

Run: ``.venv/bin/python bench/bench_cards.py [--apdus 200] [--insertions 50]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

from hil.cards.emv import PPSE, EmvCard
from hil.cards.pcscd import VPCD_DRIVER, PcscdClaim, VpcdPool, claim_reader
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


def _wait_until(context: Any, reader: str, present: bool) -> None:
    """Block in pcscd until ``reader`` shows a card (or none)."""
    sc = _sc()
    state = sc.SCARD_STATE_UNAWARE
    while True:
        result, states = sc.SCardGetStatusChange(context, 3000, [(reader, state)])
        assert result == sc.SCARD_S_SUCCESS, sc.SCardGetErrorMessage(result)
        state = states[0][1] & ~sc.SCARD_STATE_CHANGED
        if bool(state & sc.SCARD_STATE_PRESENT) == present:
            return


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
        _wait_until(context, reader, present)

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


def detections(
    claim: PcscdClaim, rounds: int, phase: random.Random | None
) -> tuple[list[float], list[float]]:
    """(insert-to-present seconds, remove-to-absent seconds) at pcscd over ``rounds``.

    With ``phase``, each insertion first waits a random 0-400 ms (pcscd's poll period)
    after the previous removal was reported; without it, it follows at once."""
    sc = _sc()
    reader = claim.reader.slot_name(1)
    result, context = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    assert result == sc.SCARD_S_SUCCESS
    inserted, removed = [], []
    try:
        _wait_until(context, reader, False)
        for _ in range(rounds):
            if phase is not None:
                time.sleep(phase.uniform(0, 0.4))
            card = VpcdCardConnection(
                EmvCard(LIB.get("visa-credit")), ("127.0.0.1", claim.reader.slot_port(1))
            )
            started = time.perf_counter()
            card.connect()
            _wait_until(context, reader, True)
            inserted.append(time.perf_counter() - started)
            started = time.perf_counter()
            card.close()
            _wait_until(context, reader, False)
            removed.append(time.perf_counter() - started)
    finally:
        sc.SCardReleaseContext(context)
    return inserted, removed


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


def _driver(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--driver {text!r}: expected NAME=PATH")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--driver {text!r}: no file {path}")
    return name, Path(path)


class Figures:
    """Every measurement of one driver, over all its blocks."""

    def __init__(self) -> None:
        self.fast: list[float] = []
        self.slow: list[float] = []
        self.inserted: list[float] = []
        self.removed: list[float] = []
        self.inserted_random: list[float] = []
        self.removed_random: list[float] = []
        self.totals: list[float] = []
        self.flows: list[float] = []

    def merge(self, other: Figures) -> None:
        for name, values in vars(other).items():
            getattr(self, name).extend(values)


def measure_block(driver: Path, args: argparse.Namespace, seed: int, into: Figures) -> None:
    defaults = VpcdCardsConfig()
    # This claim starts the pcscd with ``driver`` and holds it: the rig below claims
    # another reader of the same pool and uses that pcscd; closing stops it.
    claim = claim_reader(VpcdPool(defaults.reader, defaults.port, defaults.readers, driver=driver))
    try:
        into.fast += apdu_round_trips(claim, args.apdus, quickack=True)
        into.slow += apdu_round_trips(claim, args.slow_apdus, quickack=False)
        inserted, removed = detections(claim, args.detections, None)
        into.inserted += inserted
        into.removed += removed
        inserted, removed = detections(claim, args.detections, random.Random(seed))
        into.inserted_random += inserted
        into.removed_random += removed
        totals, flows = insert_to_read(args.insertions)
        into.totals += totals
        into.flows += flows
    finally:
        claim.close()


def report(name: str, driver: Path, f: Figures) -> None:
    print(f"== driver {name}: {driver}")
    print("APDU round trip (SELECT PPSE via pyscard -> pcscd -> vpcd -> card side)")
    print(f"  with TCP_QUICKACK     {_ms(f.fast)}")
    print(f"  without TCP_QUICKACK  {_ms(f.slow)}")
    print(f"  ratio without/with: {statistics.median(f.slow) / statistics.median(f.fast):.1f}x")
    print("Card detection at pcscd (card side connects/closes -> SCardGetStatusChange)")
    print(f"  insert, aligned       {_ms(f.inserted)}")
    print(f"  insert, random phase  {_ms(f.inserted_random)}")
    print(f"  remove, aligned       {_ms(f.removed)}")
    print(f"  remove, random phase  {_ms(f.removed_random)}")
    print("Insert-to-read on the sim rig (insert call -> card.read event)")
    print(f"  insert to read        {_ms(f.totals)}")
    print(f"  EMV flow in terminal  {_ms(f.flows)}")
    share = statistics.median(f.flows) / statistics.median(f.totals)
    print(f"  EMV flow share of insert-to-read: {share * 100:.1f}% (the rest: detection)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apdus", type=int, default=200)
    parser.add_argument("--slow-apdus", type=int, default=20, help="rounds without QUICKACK")
    parser.add_argument("--detections", type=int, default=20, help="per kind, per block")
    parser.add_argument("--insertions", type=int, default=50, help="per block")
    parser.add_argument(
        "--driver",
        type=_driver,
        action="append",
        help=f"NAME=PATH of a vpcd IFD handler (repeatable; default: debian={VPCD_DRIVER})",
    )
    parser.add_argument("--blocks", type=int, default=1, help="interleaved blocks per driver")
    args = parser.parse_args()
    drivers: list[tuple[str, Path]] = args.driver or [("debian", VPCD_DRIVER)]

    figures = {name: Figures() for name, _ in drivers}
    for block in range(args.blocks):
        order = drivers if block % 2 == 0 else drivers[::-1]
        for name, path in order:
            block_figures = Figures()
            measure_block(path, args, seed=block, into=block_figures)
            figures[name].merge(block_figures)
            print(
                f"block {block + 1}/{args.blocks} {name}: medians, insert to read "
                f"{statistics.median(block_figures.totals) * 1000:.1f} ms, detection "
                f"{statistics.median(block_figures.inserted_random) * 1000:.1f} ms "
                "(random phase)",
                flush=True,
            )
    for name, path in drivers:
        report(name, path, figures[name])
    if len(drivers) > 1:
        base_name = drivers[0][0]
        base = figures[base_name]
        for name, _ in drivers[1:]:
            f = figures[name]
            print(
                f"{name} vs {base_name}, medians: insert to read "
                f"{statistics.median(f.totals) * 1000:.1f} vs "
                f"{statistics.median(base.totals) * 1000:.1f} ms; detection (random phase) "
                f"{statistics.median(f.inserted_random) * 1000:.1f} vs "
                f"{statistics.median(base.inserted_random) * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
