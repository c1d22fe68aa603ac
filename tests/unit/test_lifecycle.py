"""SIGTERM stops a run like Ctrl-C; held stretches get their signal afterwards."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from hil.lifecycle import interruptions_held, notice, stop_on_sigterm_like_ctrl_c


@pytest.fixture
def sigterm_as_ctrl_c() -> Iterator[None]:
    restore = stop_on_sigterm_like_ctrl_c()
    yield
    restore()


def test_sigterm_interrupts_once_then_lets_the_teardown_finish(sigterm_as_ctrl_c: None) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM: ignored, teardown goes on


def test_signals_inside_a_held_stretch_arrive_when_it_ends(sigterm_as_ctrl_c: None) -> None:
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt), interruptions_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_held_stretch_without_signals_changes_nothing() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with interruptions_held():
        pass
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_ignored_ctrl_c_stays_ignored_after_a_held_stretch() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interruptions_held():
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_notice_without_a_session_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    notice("cards: waiting for a reader")
    assert capsys.readouterr().err == "hil: cards: waiting for a reader\n"
