"""Real pcscd + vpcd, started by the test itself; pyscard in this process sees the
virtual cards come and go exactly as it would see real ones."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.cards.emv import PPSE, EmvCard
from hil.cards.pcscd import PcscdClaim, VpcdPool, claim_reader, running_pcscd_pid
from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.cards.trace import ApduTrace
from hil.cards.vpcd import VpcdCardConnection
from hil.errors import RigError
from hil.instruments.cards import VpcdCardsConfig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("pcscd") is None and not Path("/usr/sbin/pcscd").exists(),
        reason="pcscd not installed (scripts/setup.sh installs it)",
    ),
]

sc: Any = pytest.importorskip("smartcard.scard")
LIB = ProfileLibrary(DEFAULT_PROFILES)
DEFAULTS = VpcdCardsConfig()
# The pool every hil session on this host shares (rigs/sim.toml uses the same).
POOL = VpcdPool(DEFAULTS.reader, DEFAULTS.port, DEFAULTS.readers)


@pytest.fixture
def claim() -> Iterator[PcscdClaim]:
    held = claim_reader(POOL)
    yield held
    held.close()


@pytest.fixture
def context() -> Iterator[Any]:
    result, ctx = sc.SCardEstablishContext(sc.SCARD_SCOPE_USER)
    assert result == sc.SCARD_S_SUCCESS, sc.SCardGetErrorMessage(result)
    yield ctx
    sc.SCardReleaseContext(ctx)


def wait_state(ctx: Any, reader: str, known: int, timeout: float = 3.0) -> tuple[int, list[int]]:
    result, states = sc.SCardGetStatusChange(ctx, int(timeout * 1000), [(reader, known)])
    assert result == sc.SCARD_S_SUCCESS, sc.SCardGetErrorMessage(result)
    return states[0][1] & ~sc.SCARD_STATE_CHANGED, states[0][2]


def wait_presence(ctx: Any, reader: str, present: bool, timeout: float = 3.0) -> int:
    """Wait until the reader reports a card (or none); a stale earlier change is skipped."""
    deadline = time.monotonic() + timeout
    state = sc.SCARD_STATE_UNAWARE
    while True:
        state, _ = wait_state(ctx, reader, state, max(deadline - time.monotonic(), 0.01))
        if bool(state & sc.SCARD_STATE_PRESENT) == present:
            return state
        assert time.monotonic() < deadline, f"{reader}: card present is not {present}"


def insert(
    claim: PcscdClaim, name: str, slot: int, trace: ApduTrace | None = None
) -> VpcdCardConnection:
    connection = VpcdCardConnection(
        EmvCard(LIB.get(name)), ("127.0.0.1", claim.reader.slot_port(slot)), trace=trace
    )
    connection.connect()
    return connection


def test_insertion_and_removal_are_seen_by_pyscard(claim: PcscdClaim, context: Any) -> None:
    for slot in (0, 1):
        reader = claim.reader.slot_name(slot)
        state = wait_presence(context, reader, False)
        started = time.monotonic()
        card = insert(claim, "visa-credit", slot)
        state, atr = wait_state(context, reader, state)
        assert state & sc.SCARD_STATE_PRESENT
        assert bytes(atr) == card.card.atr
        assert time.monotonic() - started < 2.0
        card.close()
        state, _ = wait_state(context, reader, state)
        assert state & sc.SCARD_STATE_EMPTY and not state & sc.SCARD_STATE_PRESENT


def test_emv_exchange_through_pcscd(claim: PcscdClaim, context: Any) -> None:
    trace = ApduTrace()
    reader = claim.reader.slot_name(1)
    wait_presence(context, reader, False)
    card = insert(claim, "unionpay-debit", 1, trace)
    try:
        wait_presence(context, reader, True)
        result, handle, protocol = sc.SCardConnect(
            context, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        )
        assert result == sc.SCARD_S_SUCCESS
        apdu = bytes([0, 0xA4, 4, 0, len(PPSE)]) + PPSE + b"\x00"
        result, response = sc.SCardTransmit(handle, protocol, list(apdu))
        assert result == sc.SCARD_S_SUCCESS and bytes(response[-2:]) == b"\x90\x00"
        assert bytes.fromhex("A000000333010101") in bytes(response)
        sc.SCardDisconnect(handle, sc.SCARD_UNPOWER_CARD)
        assert card.wait_used_and_released(2.0), "the card never saw the power-off"
    finally:
        card.close()
    text = trace.take()
    assert "SELECT" in text and "9000" in text


def test_mute_card_is_unresponsive(claim: PcscdClaim, context: Any) -> None:
    reader = claim.reader.slot_name(0)
    wait_presence(context, reader, False)
    card = insert(claim, "mute", 0)
    try:
        state = wait_presence(context, reader, True)
        assert state & sc.SCARD_STATE_MUTE
        result, _, _ = sc.SCardConnect(
            context, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
        )
        assert result in (sc.SCARD_W_UNRESPONSIVE_CARD, sc.SCARD_W_UNPOWERED_CARD)
    finally:
        card.close()


def test_removal_mid_apdu_fails_the_transmit(claim: PcscdClaim, context: Any) -> None:
    reader = claim.reader.slot_name(0)
    wait_presence(context, reader, False)
    card = insert(claim, "slow-visa", 0)
    wait_presence(context, reader, True)
    result, handle, protocol = sc.SCardConnect(
        context, reader, sc.SCARD_SHARE_SHARED, sc.SCARD_PROTOCOL_T0 | sc.SCARD_PROTOCOL_T1
    )
    assert result == sc.SCARD_S_SUCCESS
    profile = LIB.get("slow-visa")
    app = profile.preferred_application()
    for apdu in (
        bytes([0, 0xA4, 4, 0, 7]) + app.aid_bytes + b"\x00",
        bytes.fromhex("80A8000014831200000000000000000000000000000000000000"),
    ):
        result, response = sc.SCardTransmit(handle, protocol, list(apdu))
        assert bytes(response[-2:]) == b"\x90\x00", bytes(response).hex()
    outcome: list[tuple[int, list[int]]] = []
    generate_ac = bytes([0x80, 0xAE, 0x80, 0, 29]) + bytes(29) + b"\x00"
    worker = threading.Thread(
        target=lambda: outcome.append(sc.SCardTransmit(handle, protocol, list(generate_ac)))
    )
    model: EmvCard = card.card  # type: ignore[assignment]
    worker.start()
    deadline = time.monotonic() + 2.0
    while model.apdus_processed < 3 and time.monotonic() < deadline:
        time.sleep(0.005)  # until the card is inside its 1.5 s GENERATE AC
    assert model.apdus_processed == 3
    card.close()
    worker.join(timeout=5)
    assert outcome, "SCardTransmit never returned after the removal"
    result, response = outcome[0]
    # vpcd reports a vanished card as an empty answer (or an error): never an R-APDU.
    assert result != sc.SCARD_S_SUCCESS or len(response) < 2, (result, response)


def _idle_host() -> None:
    if running_pcscd_pid() is not None:
        pytest.skip("another pcscd runs on this host (a concurrent hil session?)")


def _start_pcscd(config_dir: Path, port: int) -> subprocess.Popen[bytes]:
    config_dir.mkdir(parents=True)
    reader = VpcdPool("Stale Reader", port, 1).reader(0)
    (config_dir / "vpcd").write_text(reader.config_text())
    process = subprocess.Popen(
        ["pcscd", "--foreground", "--config", str(config_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 5
    while running_pcscd_pid() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


def test_stale_hil_pcscd_is_replaced_and_the_last_release_stops_ours(tmp_path: Path) -> None:
    _idle_host()
    stale = _start_pcscd(tmp_path / "hil-pcscd-stale", 36400)  # as an earlier run left it
    try:
        held = claim_reader(POOL)
        try:
            assert stale.wait(timeout=5) is not None, "the stale pcscd was not stopped"
            assert "hil's pcscd" in held.describe()
        finally:
            held.close()
        deadline = time.monotonic() + 5
        while running_pcscd_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running_pcscd_pid() is None, "the last release left hil's pcscd running"
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()


def test_foreign_pcscd_is_a_clear_rig_fault(tmp_path: Path) -> None:
    _idle_host()
    foreign = _start_pcscd(tmp_path / "system-readers", 36410)
    try:
        with pytest.raises(RigError, match=r"running without hil's vpcd readers .*Stale Reader"):
            claim_reader(POOL)
        assert foreign.poll() is None, "hil stopped a pcscd it did not start"
    finally:
        foreign.terminate()
        foreign.wait(timeout=5)
