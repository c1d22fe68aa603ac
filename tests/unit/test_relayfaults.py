"""Fault lines on relays of a Devantech USB-RLY board: byte-exact against the scripted
board of test_relayboard on a real pty, the board shared with the power relay, every
switch read back, an unmapped line a rig fault naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.config import parse_rig
from hil.errors import ConfigError, RigError
from hil.instruments.faultlines import FaultLines
from hil.instruments.relayboard import RelayBoard
from hil.instruments.relayfaults import RelayFaultLines
from hil.rig import Rig
from tests.unit.test_relayboard import ScriptedBoard


@pytest.fixture
def board() -> Iterator[ScriptedBoard]:
    scripted = ScriptedBoard()
    yield scripted
    scripted.close()


def _lines(board: ScriptedBoard, *, energised_asserts: bool = True) -> RelayFaultLines:
    return RelayFaultLines(
        RelayBoard(board.path, timeout=0.5),
        {"reader_power": 2, "supply_low": 3, "tamper": 4},
        energised_asserts=energised_asserts,
    )


def test_assert_and_release_send_the_data_sheet_bytes_and_read_back(board: ScriptedBoard) -> None:
    lines = _lines(board)
    assert isinstance(lines, FaultLines)
    lines.set("tamper")
    assert bytes(board.received) == bytes([0x68, 0x5B])  # relay 4 on, then states
    assert board.states == 0b1000
    assert lines.state()["tamper"] and not lines.state()["reader_power"]
    board.received.clear()
    lines.set("reader_power")
    lines.clear("tamper")
    assert bytes(board.received) == bytes([0x66, 0x5B, 0x72, 0x5B])
    lines.put_back()
    assert board.states == 0
    lines.board.close()


def test_jigs_on_the_normally_closed_contacts_assert_by_releasing(board: ScriptedBoard) -> None:
    lines = _lines(board, energised_asserts=False)
    board.states = 0b1110  # all three energised: no fault
    assert not any(lines.state().values())
    lines.set("supply_low")
    assert board.states == 0b1010
    lines.board.close()


def test_a_line_not_wired_on_this_bench_is_a_rig_fault_naming_it(board: ScriptedBoard) -> None:
    lines = _lines(board)
    with pytest.raises(RigError, match=r"fault line 'flash_full' is not wired on this bench"):
        lines.set("flash_full")
    assert bytes(board.received) == b"", "nothing was switched"
    lines.board.close()


def _rig(url: str, lines: str = "{ reader_power = 2, supply_low = 3, tamper = 4 }") -> str:
    return f"""
[rig]
name = "relay-bench"

[dut]
driver = "physical"
model = "POS-X"
serial_number = "SN1"
terminal_id = "T0000001"
merchant_id = "898310058120001"

[console]
driver = "pyserial"
url = "socket://127.0.0.1:9"

[power]
driver = "devantech-relay"
url = "{url}"
relay = 1
settle_s = 0.0

[faultlines]
driver = "devantech-relay"
url = "{url}"
lines = {lines}
"""


def test_power_and_fault_lines_share_one_board(board: ScriptedBoard, tmp_path: Path) -> None:
    rig = Rig(parse_rig(_rig(board.path), tmp_path / "bench.toml"))
    try:
        rig.build(["power", "faultlines"])
        assert rig.power is not None
        rig.power.on()
        faults = rig.instrument("faultlines")
        assert isinstance(faults, FaultLines)
        faults.set("supply_low")
        assert board.states == 0b101
        rig.put_back()
        assert board.states == 0b001, "put back releases the fault, the supply stays on"
    finally:
        rig.close()
    assert board.states == 0


def test_rig_file_mistakes_are_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"faultlines\.lines: .*unknown fault line 'smoke'"):
        parse_rig(_rig("/dev/null", "{ smoke = 2 }"), tmp_path / "bench.toml")
    with pytest.raises(ConfigError, match=r"faultlines\.lines: relay 1 carries \[power\]'s supply"):
        parse_rig(_rig("/dev/null", "{ tamper = 1 }"), tmp_path / "bench.toml")
    with pytest.raises(ConfigError, match=r"two fault lines on one relay"):
        parse_rig(_rig("/dev/null", "{ tamper = 2, supply_low = 2 }"), tmp_path / "bench.toml")
