"""The sim terminal's card commands on a real rig (pty, process, pcscd + vpcd)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.errors import TerminalCommandError
from hil.instruments.console import Console
from hil.masking import contains_full_pan
from hil.rig import Rig
from hil.terminal import CardRead, ScreenChanged, Terminal
from tests.conftest import write_sim_rig
from tests.integration.test_cards_feature import CARD_SECTIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Rig, Terminal]]:
    rig = Rig.from_file(write_sim_rig(tmp_path / "rig.toml", extra=CARD_SECTIONS))
    terminal = rig.start()
    try:
        terminal.ensure_idle()
        yield rig, terminal
    finally:
        rig.close()


def _console(hil_rig: Rig) -> Console:
    """The rig's test port, for the sim's card commands the domain API does not cover."""
    assert hil_rig.console is not None
    return hil_rig.console


def test_card_read_command_prompts_and_returns_the_read(rig: tuple[Rig, Terminal]) -> None:
    hil_rig, terminal = rig
    slot: Any = hil_rig.instrument("cards")
    cursor = terminal.mark()
    answer: list[CardRead] = []
    waiter = threading.Thread(target=lambda: answer.append(terminal.read_card(8000)))
    waiter.start()
    terminal.wait_event(
        ScreenChanged,
        since=cursor,
        timeout=5,
        where=lambda event: event.screen.screen == "card_prompt",
    )
    slot.tap(slot.profiles.get("mastercard-debit"))
    waiter.join(timeout=10)
    (result,) = answer
    assert result.ok and result.entry_mode == "contactless"
    assert result.pan == "541333******0483" and result.cryptogram == "ARQC"
    last = _console(hil_rig).request("card.last")
    assert last["read"]["pan"] == result.pan and last["count"] == 1
    status = _console(hil_rig).request("card.status")
    assert status["reader_power"] == "ok" and status["maghead"]["connected"]
    assert [r["entry_mode"] for r in status["readers"]] == ["chip", "contactless"]
    logs = terminal.log(limit=1000)
    assert any(e.code == "I_CARD_READ" for e in logs)
    assert not any(contains_full_pan(e.message + e.code) for e in logs)
    assert not contains_full_pan(_console(hil_rig).transcript.render())


def test_card_read_times_out_and_is_refused_without_reader_power(
    rig: tuple[Rig, Terminal],
) -> None:
    hil_rig, terminal = rig
    with pytest.raises(TerminalCommandError) as timeout:
        terminal.read_card(200)
    assert timeout.value.code == "E_TIMEOUT"
    assert terminal.display().screen == "idle"
    with pytest.raises(TerminalCommandError) as bad:
        terminal.read_card(0)
    assert bad.value.code == "E_BAD_ARGS"
    lines: Any = hil_rig.instrument("faultlines")
    lines.set("reader_power")
    with pytest.raises(TerminalCommandError) as refused:
        terminal.read_card(200)
    assert refused.value.code == "E_READER_FAULT"
    assert _console(hil_rig).request("card.status")["reader_power"] == "fault"
    hil_rig.put_back()
    assert _console(hil_rig).request("card.status")["reader_power"] == "ok"
