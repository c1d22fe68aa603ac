"""Real pcscd + vpcd, started by the test itself; pyscard in this process sees the
virtual cards come and go exactly as it would see real ones."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.cards.emv import PPSE, EmvCard
from hil.cards.pcscd import (
    PcscdClaim,
    ReadersBusy,
    VpcdPool,
    claim_reader,
    list_readers,
    running_pcscd_pid,
)
from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.cards.trace import ApduTrace
from hil.cards.vpcd import VpcdCardConnection
from hil.errors import RigError
from hil.instruments.cards import VpcdCardsConfig
from hil.runinfo import run_id
from hil.runtime import process_start_time
from hil.suite import FEATURES
from tests.conftest import write_sim_rig
from tests.dead_run import killed_after_first_line

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
    # Running is not enough: pcscd lists its readers only once it has loaded the driver,
    # and a test about what it lists must not race that.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if running_pcscd_pid() is not None and any(
            name.startswith("Stale Reader") for name in list_readers() or []
        ):
            break
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
    foreign = _start_pcscd(tmp_path / "system-readers", 29410)
    try:
        with pytest.raises(RigError, match=r"running without hil's vpcd readers .*Stale Reader"):
            claim_reader(POOL)
        assert foreign.poll() is None, "hil stopped a pcscd it did not start"
    finally:
        foreign.terminate()
        foreign.wait(timeout=5)


# --- the pool: waiting, dead runs, no reader at all --------------------------------------


@pytest.fixture
def every_free_reader() -> Iterator[list[PcscdClaim]]:
    """Every reader of the shared pool nobody else holds, held by this test."""
    held: list[PcscdClaim] = []
    try:
        while True:
            try:
                held.append(claim_reader(POOL))
            except ReadersBusy:
                break
        yield held
    finally:
        for claim in held:
            claim.close()


def test_a_claim_waits_for_a_free_reader_and_names_who_holds_them(
    every_free_reader: list[PcscdClaim], capsys: pytest.CaptureFixture[str]
) -> None:
    assert every_free_reader, "no reader of the pool was free"
    started = time.monotonic()
    with pytest.raises(ReadersBusy) as busy:
        claim_reader(POOL, wait_s=1.0)
    assert time.monotonic() - started >= 1.0
    assert f"pid {os.getpid()} (run {run_id()})" in str(busy.value)
    assert "waiting up to 1 s for one to come free" in capsys.readouterr().err

    released = every_free_reader.pop()
    threading.Timer(0.5, released.close).start()
    every_free_reader.append(claim_reader(POOL, wait_s=30.0))
    assert every_free_reader[-1].index == released.index


_DEAD_RUN = """
import os, sys, time
from pathlib import Path
from hil.cards.pcscd import VpcdPool, claim_reader
from hil.runtime import ProcessLedger, WorkFolder
from hil.terminal_process import TerminalProcess

folder = WorkFolder.create()
# A terminal that honours neither SIGTERM nor the watchdog, as a vendor's might not.
terminal = TerminalProcess(
    [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
     "signal.SIG_IGN); time.sleep(120)"],
    state_dir=folder.path / "flash", env=dict(), stderr_path=folder.path / "err",
    ledger=ProcessLedger(folder.path),
)
terminal.start()
claim = claim_reader(VpcdPool({name!r}, {port}, {size}), work_dir=folder.path)
print(claim.index, terminal.pid, folder.path, flush=True)
time.sleep(120)
"""


def _dead_run_holding_a_reader(run: str) -> tuple[int, int, Path]:
    """A run that claimed a reader and started a terminal, then was SIGKILLed:
    (reader index, terminal pid, work folder)."""
    script = _DEAD_RUN.format(name=POOL.name, port=POOL.port, size=POOL.size)
    index, pid, folder = killed_after_first_line(script, run).split()
    return int(index), int(pid), Path(folder)


def test_a_dead_runs_reader_is_handed_out_only_after_its_terminal_is_stopped(
    every_free_reader: list[PcscdClaim],
) -> None:
    for claim in every_free_reader[-1:]:  # leave one reader for the dead run
        claim.close()
        every_free_reader.remove(claim)
    index, terminal, folder = _dead_run_holding_a_reader(f"dead-{os.getpid()}")
    assert process_start_time(terminal) is not None
    claim = claim_reader(POOL)
    every_free_reader.append(claim)
    assert claim.index == index
    assert process_start_time(terminal) is None, "the reader went out with its terminal alive"
    assert not folder.exists()


def test_a_dead_runs_terminal_that_cannot_be_verified_keeps_its_reader(
    every_free_reader: list[PcscdClaim],
) -> None:
    for claim in every_free_reader[-1:]:
        claim.close()
        every_free_reader.remove(claim)
    run = f"dead-{os.getpid()}"
    index, terminal, folder = _dead_run_holding_a_reader(run)
    # As if the terminal had been started with another environment: not provably ours.
    record = folder / "started" / f"{terminal}.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "run_id": "someone-else"}))
    try:
        with pytest.raises(ReadersBusy) as busy:
            claim_reader(POOL)
        assert f"reader {index + 1}: pid {terminal} (a terminal of dead run {run})" in str(
            busy.value
        )
        assert process_start_time(terminal) is not None, "an unverified process was killed"
    finally:
        os.kill(terminal, signal.SIGKILL)  # our own descendant: the test started its run
    deadline = time.monotonic() + 5
    while process_start_time(terminal) is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # another process's exit: no event to wait on
    every_free_reader.append(claim_reader(POOL))
    assert every_free_reader[-1].index == index


def test_without_a_free_reader_card_scenarios_are_rig_faults_and_the_rest_runs(
    tmp_path: Path, every_free_reader: list[PcscdClaim]
) -> None:
    features = tmp_path / "features"
    features.mkdir()
    for name in ("card_reader.feature", "boot_self_check.feature"):
        shutil.copy(FEATURES / name, features)
    cards = (
        f'[cards]\ndriver = "vpcd"\nreader_wait_s = 1\n\n'
        f'[magstripe]\ndriver = "sim"\nprofiles = "{DEFAULT_PROFILES}"\n'
    )
    rig = write_sim_rig(tmp_path / "rig.toml", extra=cards)
    wanted = "chip_card_is_read_and_equals or magnetic_stripe or identity or tells_the_truth"
    result = subprocess.run(
        [sys.executable, "-m", "hil", "run", "--rig", str(rig), "--no-html", "--", "-k", wanted],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    assert "waiting up to 1 s for one to come free" in result.stderr
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    outcomes = {s["scenario"]: (s["outcome"], s["message"]) for s in summary["scenarios"]}
    chip = outcomes.pop("A chip card is read and equals the inserted profile")
    assert chip[0] == "broken"
    assert "no card reader for this run" in chip[1] and f"pid {os.getpid()}" in chip[1]
    # The boot self-check is judged against the rig: no reader wired, E_READER_ABSENT due.
    assert outcomes == {
        "A healthy build boots and every self-check item tells the truth": ("passed", ""),
        "A magnetic stripe card is read on a swipe": ("passed", ""),
        "The terminal reports the identity of the rig file and the firmware image": (
            "passed",
            "",
        ),
    }
