"""Mag-head and fault-line channels over real loopback TCP: rig end <-> terminal end."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.cards.track import decode_track1, decode_track2
from hil.errors import ConfigError, DutError
from hil.instruments.faultlines import SimFaultLines
from hil.instruments.magstripe import SimMagHead, swipe_tracks
from hil.sim.faultlines import FaultLineInputs
from hil.sim.maghead import MagHead

pytestmark = pytest.mark.integration
LIB = ProfileLibrary(DEFAULT_PROFILES)


@pytest.fixture
def rig_lines() -> Iterator[SimFaultLines]:
    lines = SimFaultLines(ack_timeout=2.0)
    yield lines
    lines.close()


def test_level_set_before_the_terminal_comes_up_is_read_at_boot(rig_lines: SimFaultLines) -> None:
    rig_lines.set("reader_power")  # no terminal yet: the level waits on the wire
    terminal = FaultLineInputs(rig_lines.address)
    try:
        terminal.start()
        assert terminal.readable
        assert terminal.is_set("reader_power") and not terminal.is_set("tamper")
    finally:
        terminal.close()


def test_set_and_clear_return_once_the_terminal_applied_them(rig_lines: SimFaultLines) -> None:
    terminal = FaultLineInputs(rig_lines.address)
    seen: list[dict[str, bool]] = []
    terminal.on_change(seen.append)
    try:
        terminal.start()
        rig_lines.set("tamper")
        assert terminal.is_set("tamper")  # acknowledged, so already applied
        rig_lines.set("supply_low")
        rig_lines.put_back()
        levels = terminal.snapshot()
        assert {"reader_power", "supply_low", "tamper"} <= set(levels)
        assert not any(levels.values()), levels  # put back: every line released
        assert seen[-1] == terminal.snapshot() and len(seen) >= 4
        with pytest.raises(ConfigError, match="unknown fault line 'fan'"):
            rig_lines.set("fan")
    finally:
        terminal.close()


def test_unreachable_channel_is_reported_not_a_pass() -> None:
    terminal = FaultLineInputs("127.0.0.1:9")  # discard port: nothing listens
    try:
        terminal.start(wait_s=0.3)
        assert not terminal.readable and "cannot connect" in terminal.reason
    finally:
        terminal.close()
    assert "want 127.0.0.1:PORT" in FaultLineInputs("10.0.0.1:5000").reason  # never dialled


def test_swipes_reach_the_head_with_their_faults() -> None:
    rig_head = SimMagHead(LIB, ack_timeout=2.0)
    received: list[tuple[str | None, str | None]] = []
    got = threading.Event()

    def on_swipe(track1: str | None, track2: str | None) -> None:
        received.append((track1, track2))
        got.set()

    head = MagHead(rig_head.address, on_swipe)
    try:
        head.start()
        profile = LIB.get("stripe-only")
        for fault in ("none", "bad_lrc", "partial"):
            rig_head.swipe(profile, fault=fault)  # type: ignore[arg-type]
        assert [
            t2 == swipe_tracks(profile, f)[1]
            for (_, t2), f in zip(received, ("none", "bad_lrc", "partial"), strict=True)
        ] == [True, True, True]
        track1, track2 = received[0]
        assert track1 is not None and track2 is not None
        assert decode_track2(track2).pan == profile.pan
        assert decode_track1(track1).name == profile.cardholder_name
        assert "connected" in rig_head.preflight()
    finally:
        head.close()
        rig_head.close()


def test_swipe_without_a_terminal_is_a_terminal_fault() -> None:
    rig_head = SimMagHead(LIB, ack_timeout=0.2)
    try:
        with pytest.raises(DutError, match="not connected to its mag-head channel"):
            rig_head.swipe(LIB.get("stripe-only"))
        with pytest.raises(ConfigError, match="no magnetic stripe"):
            rig_head.swipe(LIB.get("mute"))
    finally:
        rig_head.close()
