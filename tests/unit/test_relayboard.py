"""Power through a Devantech USB-RLY relay board: byte-exact against a scripted board on
a real pty (the command set of the data sheet), every switch read back, and a board
that does not answer or does not switch is a rig fault naming it."""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.config import parse_rig
from hil.errors import ConfigError, RigError
from hil.instruments.relayboard import RelayBoard, RelayPower
from hil.rig import Rig
from hil.suite import FIXTURES


class ScriptedBoard:
    """A USB-RLY16 as its data sheet describes it, on the master end of a pty; it
    records every byte it receives. ``stuck`` relays ignore commands; ``mute`` answers
    nothing."""

    def __init__(self, *, stuck: frozenset[int] = frozenset(), mute: bool = False) -> None:
        self.received = bytearray()
        self.states = 0
        self.stuck = stuck
        self.mute = mute
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = os.read(self._master, 64)
            except OSError:
                return
            for byte in data:
                self.received.append(byte)
                self._handle(byte)

    def _handle(self, byte: int) -> None:
        answer = b""
        if byte == 0x5A:
            answer = bytes([9, 3])
        elif byte == 0x5B:
            answer = bytes([self.states])
        elif 0x65 <= byte <= 0x6C and (byte - 0x64) not in self.stuck:
            self.states |= 1 << (byte - 0x65)
        elif 0x6F <= byte <= 0x76 and (byte - 0x6E) not in self.stuck:
            self.states &= ~(1 << (byte - 0x6F))
        if answer and not self.mute:
            os.write(self._master, answer)

    def close(self) -> None:
        self._stop.set()
        for fd in (self._master, self._slave):
            os.close(fd)


@pytest.fixture
def board() -> Iterator[ScriptedBoard]:
    scripted = ScriptedBoard()
    yield scripted
    scripted.close()


def _power(board: ScriptedBoard, relay: int = 3, *, energised_is_on: bool = True) -> RelayPower:
    return RelayPower(
        RelayBoard(board.path, timeout=0.5), relay, energised_is_on=energised_is_on, settle_s=0
    )


def test_on_off_and_cut_send_the_data_sheet_bytes_and_read_back(board: ScriptedBoard) -> None:
    power = _power(board, 3)
    power.on()
    assert bytes(board.received) == bytes([0x67, 0x5B])  # relay 3 on, then states
    assert board.states == 0b100 and power.is_on
    board.received.clear()
    power.off()
    assert bytes(board.received) == bytes([0x71, 0x5B])  # relay 3 off, then states
    assert board.states == 0 and not power.is_on
    power.on()
    board.received.clear()
    power.cut()
    assert bytes(board.received) == bytes([0x71, 0x5B])
    power.board.close()


def test_a_supply_through_the_normally_closed_contact_is_on_when_released(
    board: ScriptedBoard,
) -> None:
    power = _power(board, 1, energised_is_on=False)
    assert power.is_on  # released at start: the NC contact carries the supply
    power.cut()
    assert bytes(board.received) == bytes([0x5B, 0x65, 0x5B])
    assert not power.is_on
    power.put_back()
    assert power.is_on and board.states == 0
    power.board.close()


def test_preflight_names_the_board_and_the_state(board: ScriptedBoard) -> None:
    power = _power(board, 2)
    assert power.preflight() == f"USB-RLY16 v3 on {board.path}, relay 2: supply off"
    power.board.close()


def test_a_relay_that_does_not_switch_is_a_rig_fault() -> None:
    stuck = ScriptedBoard(stuck=frozenset({4}))
    try:
        power = _power(stuck, 4)
        with pytest.raises(RigError, match=r"relay 4 did not energise \(states byte 0b00000000\)"):
            power.on()
        power.board.close()
    finally:
        stuck.close()


def test_a_board_that_does_not_answer_is_a_rig_fault_naming_it() -> None:
    mute = ScriptedBoard(mute=True)
    try:
        power = _power(mute, 1)
        with pytest.raises(RigError, match=r"no answer to 0x5B from .* \(0 of 1 bytes\)"):
            power.on()
        power.board.close()
    finally:
        mute.close()


def test_a_missing_board_is_one_line_saying_what_to_check() -> None:
    with pytest.raises(RigError, match=r"cannot open /dev/ttyACM97: .*is the board plugged in"):
        RelayBoard("/dev/ttyACM97")


def _bench_rig(url: str, relay: str = "2") -> str:
    return f"""
[rig]
name = "bench"

[dut]
driver = "physical"
model = "POS-SIM-A8"
serial_number = "SIM8A0000001"
terminal_id = "T0000001"
merchant_id = "898310058120001"
firmware = "{FIXTURES / "firmware" / "pos-sim-healthy-1.4.2.fw.json"}"

[console]
driver = "pyserial"
url = "socket://127.0.0.1:9"

[power]
driver = "devantech-relay"
url = "{url}"
relay = {relay}
settle_s = 0.0
"""


def test_the_rig_file_builds_it_for_a_physical_terminal(
    board: ScriptedBoard, tmp_path: Path
) -> None:
    rig = Rig(parse_rig(_bench_rig(board.path), tmp_path / "bench.toml"))
    try:
        rig.build(["power"])
        assert rig.power is not None
        rig.power.on()
        assert board.states == 0b10
    finally:
        rig.close()
    assert board.states == 0, "closing the rig switches the terminal off"


def test_a_channel_the_board_does_not_have_is_a_rig_file_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"bench\.toml: power\.relay: Input should be less than or equal to 8$"
    ):
        parse_rig(_bench_rig("/dev/ttyACM0", relay="9"), tmp_path / "bench.toml")
