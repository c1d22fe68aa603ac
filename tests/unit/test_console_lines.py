"""What ``hil console`` and ``hil send`` make of a typed line, and the command list
they complete, checked against the protocol document."""

from __future__ import annotations

import io
import re
from typing import Any, cast

import pytest

from hil.errors import CommandTimeout, ConfigError, RigError, TerminalCommandError
from hil.masking import contains_full_pan
from hil.portconsole import (
    ConsoleInputError,
    InteractiveConsole,
    Outcome,
    Printer,
    completions,
    parse_request,
    shown_json,
    shown_request,
)
from hil.protocol.session import ConsoleSession, EventLog
from hil.qr.degrade import Degradation
from hil.righands import HandError, degradation_from_words
from hil.terminal.commands import DOCUMENTED_COMMANDS
from tests.conftest import REPO

PAN = "4111111111111111"


def test_a_command_alone_has_no_arguments() -> None:
    assert parse_request("device.info") == ("device.info", {})
    assert parse_request("  sys.ping  \n") == ("sys.ping", {})


def test_a_command_with_a_json_object() -> None:
    line = 'config.set {"key": "comm.retries", "value": 2}'
    assert parse_request(line) == ("config.set", {"key": "comm.retries", "value": 2})
    assert parse_request('log.read   {"limit":5,"nested":{"a":[1,2]}}') == (
        "log.read",
        {"limit": 5, "nested": {"a": [1, 2]}},
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('config.set {"key": ', "config.set: arguments are not a JSON object: invalid JSON"),
        ("config.set [1, 2]", "config.set: arguments are not a JSON object: JSON is not an "),
        ('config.set "x"', "config.set: arguments are not a JSON object: JSON is not an "),
        ('config.set {"a": 1, "a": 2}', "config.set: arguments are not a JSON object: "),
        ('config.set {"a": NaN}', "config.set: arguments are not a JSON object: "),
        ('{"key": 1}', "'{\"key\":' is not a command name"),
        ("", "empty request"),
    ],
)
def test_a_bad_line_is_one_line_naming_what_is_wrong(line: str, expected: str) -> None:
    with pytest.raises(ConsoleInputError) as caught:
        parse_request(line)
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert isinstance(caught.value, ConfigError), "exit 2 in hil send"


def test_what_is_shown_masks_pans_and_redacts_secrets() -> None:
    shown = shown_request("security.login", {"user": "admin", "password": "hunter22", "pan": PAN})
    assert "hunter22" not in shown and not contains_full_pan(shown)
    assert "<secret, 8 chars>" in shown and "411111******1111" in shown
    assert shown_json({"n": int(PAN)}) == '{"n": "411111******1111"}'
    keys = shown_request("keypad.press", {"keys": ["1", "9", "enter"]})
    assert keys == 'keypad.press {"keys": ["*", "*", "enter"]}', "PIN digits are never written"


def test_the_printer_masks_the_screen_and_the_transcript() -> None:
    screen, record = io.StringIO(), io.StringIO()
    Printer(screen, record).say(f"error card.read E_X: card {PAN} refused")
    assert screen.getvalue() == "error card.read E_X: card 411111******1111 refused\n"
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} error card\.read .*411111\*+1111.*\n", record.getvalue()
    )
    Printer(screen, record).say("> secret line", on_screen=False)
    assert "secret line" not in screen.getvalue() and "secret line" in record.getvalue()


def test_tab_completes_documented_commands_and_console_commands() -> None:
    assert completions("dev", None) == ["device.info"]
    assert completions("selfcheck.", None) == ["selfcheck.items", "selfcheck.last", "selfcheck.run"]
    assert completions("", None) == sorted(DOCUMENTED_COMMANDS)
    assert completions(":q", None) == [":quit"]
    assert completions("device.info ", None) == []


def test_the_command_list_is_the_documented_commands() -> None:
    """Every ``#### `area.verb``` heading of docs/test-port-protocol.md, and no other."""
    doc = (REPO / "docs" / "test-port-protocol.md").read_text(encoding="utf-8")
    documented = {
        name
        for heading in re.findall(r"^####\s.*$", doc, re.MULTILINE)
        for name in re.findall(r"`([a-z_]+\.[a-z_]+)`", heading)
    }
    assert len(documented) > 20
    assert sorted(DOCUMENTED_COMMANDS) == sorted(documented)
    assert len(set(DOCUMENTED_COMMANDS)) == len(DOCUMENTED_COMMANDS)


def test_qr_degradation_words_take_short_and_long_axis_names() -> None:
    assert degradation_from_words(["blur=3", "contrast=0.5"]) == Degradation(
        blur_sigma=3.0, contrast=0.5
    )
    assert degradation_from_words(["noise_sigma=4", "seed=7"]) == Degradation(
        noise_sigma=4.0, seed=7
    )
    assert degradation_from_words([]) == Degradation()
    for words, expected in (
        (["blur"], "'blur' is not AXIS=NUMBER"),
        (["fog=1"], "expected NAME=NUMBER"),
        (["blur=x"], "blur_sigma: 'x' is not a number"),
        (["contrast=2"], "contrast=2.0 out of range"),
    ):
        with pytest.raises(HandError, match=re.escape(expected)):
            degradation_from_words(words)


class _FakeSession:
    """The two things InteractiveConsole uses of a ConsoleSession: requests and events."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.events = EventLog()
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def request(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 5.0
    ) -> dict[str, Any]:
        self.sent.append((cmd, dict(args or {})))
        answer = self.answers[cmd]
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, dict)
        return answer


def test_the_console_prints_answers_errors_and_events_and_ends_on_quit() -> None:
    session = _FakeSession(
        {
            "device.info": {"pan": PAN, "ok": True},
            "config.get": TerminalCommandError("config.get", "E_CONFIG_KEY", f"unknown {PAN}"),
            "sys.ping": CommandTimeout("terminal did not answer 'sys.ping'", command="sys.ping"),
            "sys.reboot": RigError("test port 'console' failed: EIO"),
        }
    )
    screen, record = io.StringIO(), io.StringIO()
    console = InteractiveConsole(cast(ConsoleSession, session), Printer(screen, record), echo=True)
    assert console.handle("device.info") is None
    assert console.handle('config.get {"key": ') is None  # not sent
    assert console.handle('config.get {"key": "x"}') is None
    assert console.handle("sys.ping") is None
    assert console.handle(":bogus") is None
    assert console.handle(":fault set tamper") is None
    session.events.append(3, "card.read", 120, {"pan": PAN})
    assert console.handle("sys.reboot") == Outcome(
        3, "test port failed: test port 'console' failed: EIO"
    )
    assert console.handle(":quit") == Outcome(0, "quit")
    console.close()
    session.events.append(4, "sys.ready", 130, {})  # after close: not printed
    assert [cmd for cmd, _ in session.sent] == [
        "device.info",
        "config.get",
        "sys.ping",
        "sys.reboot",
    ]
    assert screen.getvalue().splitlines() == [
        "> device.info",
        'ok device.info {"pan": "411111******1111", "ok": true}',
        "! config.get: arguments are not a JSON object: invalid JSON: Expecting value: "
        "line 1 column 8 (char 7)",
        '> config.get {"key": "x"}',
        "error config.get E_CONFIG_KEY: unknown 411111******1111",
        "> sys.ping",
        "! no answer: terminal did not answer 'sys.ping'",
        "> :bogus",
        "! unknown command ':bogus' (:help lists them)",
        "> :fault set tamper",
        "! :fault: instrument commands need a rig (hil console --rig)",
        'evt #3 card.read {"pan": "411111******1111"}',
        "> sys.reboot",
        "! test port failed: test port 'console' failed: EIO",
        "> :quit",
    ]
    assert PAN not in record.getvalue()


def test_a_terminal_that_dies_ends_the_console_with_exit_1() -> None:
    alive = [True]
    screen = io.StringIO()
    session = _FakeSession({"sys.ping": {}})
    console = InteractiveConsole(
        cast(ConsoleSession, session), Printer(screen, None), terminal_alive=lambda: alive[0]
    )
    try:
        assert console.handle("sys.ping") is None
        alive[0] = False
        assert console.handle("sys.ping") == Outcome(1, "the terminal's process exited")
        assert len(session.sent) == 1, "nothing is sent to a terminal that is gone"
        assert screen.getvalue().count("the terminal's process exited") == 1
    finally:
        console.close()
