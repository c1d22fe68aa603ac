"""``hil console`` and ``hil send``: a person, or a script, on a terminal's test port.

The existing ``ConsoleSession`` does the framing, ACKs, CRC and retransmissions; this
module turns typed lines into its requests and prints its answers and events
decoded, one line each, PAN-masked and with secret fields redacted, on the screen and
in the transcript file alike (docs/console.md).

A line is ``CMD`` or ``CMD {JSON object}`` (``config.set {"key": "comm.retries",
"value": 2}``); a line starting with ``:`` is the console's own (``:quit``, ``:help``)
or, with a rig, an instrument command (hil.righands).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from hil.errors import ConfigError, DutError, HilError, RigError, TerminalCommandError
from hil.masking import mask_data, mask_text
from hil.protocol.session import ConsoleSession, Event
from hil.protocol.transcript import Transcript, withhold_args
from hil.secrets import redact
from hil.strictjson import StrictJsonError, loads_object
from hil.terminal.commands import DOCUMENTED_COMMANDS

if TYPE_CHECKING:
    from hil.rig import Rig
    from hil.righands import RigHands
    from hil.terminal_process import TerminalProcess

#: A command name as the protocol writes them: a letter, then letters, digits, ``_``,
#: ``.`` or ``-`` (a vendor's terminal may have commands beyond the documented ones).
_COMMAND_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")

CONSOLE_COMMANDS = (":help", ":quit")

HELP = """\
CMD [JSON object]     send a request: device.info, or
                      config.set {"key": "comm.retries", "value": 2}
:quit                 leave (so does end of input, Ctrl-D)
:help                 this text
Tab completes the documented commands (docs/test-port-protocol.md)."""

HELP_RIG = """\
:card insert|tap PROFILE, :card remove      a card from the rig's profiles
:swipe PROFILE [none|bad_lrc|partial]       a swipe through the mag-head
:fault set|clear LINE, :fault               fault lines (tamper, supply_low, ...)
:qr show PAYLOAD [blur=N contrast=N ...], :qr blank
:net blackhole|refuse|heal, :net latency MS"""


class TerminalNotReady(DutError):
    """The rig's terminal did not boot (``sys.boot_failed``) or not within its time."""


def wait_until_ready(session: ConsoleSession, timeout: float) -> None:
    """Until the terminal says ``sys.ready``; TerminalNotReady if it fails to boot."""
    deadline = time.monotonic() + timeout
    cursor = 0
    while True:
        try:
            event = session.events.wait_for(
                "sys.*", since=cursor, timeout=max(deadline - time.monotonic(), 0.0)
            )
        except DutError as e:
            raise TerminalNotReady(f"the terminal did not become ready: {e}") from None
        if event.name == "sys.ready":
            return
        if event.name == "sys.boot_failed":
            raise TerminalNotReady(
                f"the terminal did not boot: {event.data.get('code')}: {event.data.get('message')}"
            )
        cursor = event.index + 1


class ConsoleInputError(ConfigError):
    """A typed line that cannot be sent: not a command name, or arguments not a JSON object."""


def parse_request(line: str) -> tuple[str, dict[str, Any]]:
    """``'config.set {"key": "x"}'`` -> ``("config.set", {"key": "x"})``.

    ConsoleInputError, one line naming what is wrong, for anything else.
    """
    text = line.strip()
    if not text:
        raise ConsoleInputError("empty request: type a command, e.g. device.info")
    parts = text.split(maxsplit=1)
    command = parts[0]
    if not _COMMAND_NAME.fullmatch(command):
        raise ConsoleInputError(
            f"{command!r} is not a command name (e.g. device.info; :help lists the console's own)"
        )
    return command, parse_arguments(parts[1] if len(parts) == 2 else "", command)


def parse_arguments(text: str, command: str) -> dict[str, Any]:
    """The JSON object ``text`` (empty: no arguments); ConsoleInputError otherwise."""
    if not text.strip():
        return {}
    try:
        return loads_object(text)
    except StrictJsonError as e:
        raise ConsoleInputError(f"{command}: arguments are not a JSON object: {e}") from None


def shown_data(value: Any) -> Any:
    """``value`` PAN-masked and with secret fields redacted, still JSON-like."""
    return mask_data(redact(value))


def shown_json(value: Any) -> str:
    """``value`` as one line of JSON, PAN-masked and with secret fields redacted."""
    return json.dumps(shown_data(value), ensure_ascii=False, separators=(", ", ": "))


def shown_request(command: str, args: dict[str, Any]) -> str:
    """What was sent, as it may be shown: also ``keypad.press`` digit keys starred (PIN
    material, never written: hil.protocol.transcript.withhold_args)."""
    return command if not args else f"{command} {shown_json(withhold_args(command, args))}"


def shown_event(event: Event) -> str:
    return f"evt #{event.seq} {event.name} {shown_json(event.data)}"


def completions(line: str, hands: RigHands | None) -> list[str]:
    """The candidates for the last word of ``line`` (the text before the cursor)."""
    words = line.split()
    typing_a_word = bool(line) and not line[-1].isspace()
    current = words.pop() if typing_a_word and words else ""
    if not words:
        names: Iterable[str]
        if current.startswith(":"):
            names = [*CONSOLE_COMMANDS, *(hands.completions([]) if hands else [])]
        else:
            names = DOCUMENTED_COMMANDS
    elif words[0].startswith(":") and hands is not None:
        names = hands.completions(words)
    else:
        names = []
    return sorted(name for name in names if name.startswith(current))


class Printer:
    """Lines to the screen and the transcript, masked, whole (events arrive on the
    link's thread while answers are printed on the main one)."""

    def __init__(self, out: IO[str], transcript: IO[str] | None) -> None:
        self.out = out
        self.transcript = transcript
        self._lock = threading.Lock()

    def say(self, text: str, *, on_screen: bool = True) -> None:
        masked = mask_text(text)
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
        with self._lock:
            if on_screen:
                self.out.write(masked + "\n")
                self.out.flush()
            if self.transcript is not None:
                self.transcript.write(f"{stamp} {masked}\n")
                self.transcript.flush()


@dataclass
class Outcome:
    """How a console session ended: ``code`` is hil's exit code, ``reason`` one line."""

    code: int
    reason: str


class InteractiveConsole:
    """Reads lines, sends requests, prints answers; events print as they arrive."""

    def __init__(
        self,
        session: ConsoleSession,
        printer: Printer,
        *,
        hands: RigHands | None = None,
        timeout: float = 10.0,
        echo: bool = False,
        terminal_alive: Callable[[], bool] | None = None,
    ) -> None:
        self.session = session
        self.printer = printer
        self.hands = hands
        self.timeout = timeout
        self.echo = echo
        self.terminal_alive = terminal_alive
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._death_said = False
        self._unsubscribe = session.events.subscribe(self._on_event)
        if terminal_alive is not None:
            # Said at once, not at the next line typed: the person may be waiting for
            # an event that will never come.
            threading.Thread(
                target=self._watch_terminal, name="console-terminal-watch", daemon=True
            ).start()

    def _watch_terminal(self) -> None:
        while not self._closed.wait(0.5):
            if self._terminal_gone(quiet=True) is not None:
                return

    def _on_event(self, event: Event) -> None:
        self.printer.say(shown_event(event))

    def close(self) -> None:
        self._closed.set()
        self._unsubscribe()

    def run(self, lines: Iterable[str]) -> Outcome:
        """Handle ``lines`` until ``:quit``, their end, or a port that fails."""
        try:
            for line in lines:
                outcome = self.handle(line)
                if outcome is not None:
                    return outcome
        finally:
            self.close()
        return Outcome(0, "end of input")

    def handle(self, line: str) -> Outcome | None:
        """One typed line; an Outcome when the session is over."""
        gone = self._terminal_gone()
        if gone is not None:
            return gone
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        if text.startswith(":"):
            return self._console_command(text)
        try:
            command, args = parse_request(text)
        except ConsoleInputError as e:
            self.printer.say(f"! {e}")
            return None
        self.printer.say(f"> {shown_request(command, args)}", on_screen=self.echo)
        try:
            result = self.session.request(command, args, timeout=self.timeout)
        except TerminalCommandError as e:
            self.printer.say(f"error {command} {e.code}: {e.terminal_message}")
        except RigError as e:
            self.printer.say(f"! test port failed: {e}")
            return Outcome(3, f"test port failed: {e}")
        except DutError as e:  # no answer, or only frames the rig refused
            self.printer.say(f"! no answer: {e}")
        else:
            self.printer.say(f"ok {command} {shown_json(result)}")
        return self._terminal_gone()

    def _terminal_gone(self, *, quiet: bool = False) -> Outcome | None:
        """Outcome 1 once the rig's terminal process has exited (said once)."""
        if self.terminal_alive is None or self.terminal_alive():
            return None
        with self._lock:
            first = not self._death_said
            self._death_said = True
        if first:
            ending = "; the next line ends the console" if quiet else "; the console ends"
            self.printer.say(f"! the terminal's process exited{ending}")
        return Outcome(1, "the terminal's process exited")

    def _console_command(self, text: str) -> Outcome | None:
        head = text.split(maxsplit=1)[0]
        self.printer.say(f"> {text}", on_screen=self.echo)
        if head in (":quit", ":q", ":exit"):
            return Outcome(0, "quit")
        if head == ":help":
            self.printer.say(HELP)
            if self.hands is not None:
                self.printer.say(HELP_RIG)
            return None
        from hil.righands import RIG_COMMANDS

        if head not in RIG_COMMANDS:
            self.printer.say(f"! unknown command {head!r} (:help lists them)")
            return None
        if self.hands is None:
            self.printer.say(f"! {head}: instrument commands need a rig (hil console --rig)")
            return None
        try:
            done = self.hands.run(text)
        except ConfigError as e:
            self.printer.say(f"! {e}")
        except HilError as e:
            self.printer.say(f"! {head} failed: {e}")
        else:
            self.printer.say(f"= {done}")
        return self._terminal_gone()


def typed_lines(prompt: str, hands: RigHands | None) -> Iterator[str]:
    """Lines from a person at a terminal: readline with tab completion, history."""
    import readline

    def complete(text: str, state: int) -> str | None:
        before = readline.get_line_buffer()[: readline.get_endidx()]
        options = completions(before, hands)
        return options[state] if state < len(options) else None

    readline.set_completer_delims(" \t")
    readline.set_completer(complete)
    readline.parse_and_bind("tab: complete")
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def piped_lines(stream: IO[str]) -> Iterator[str]:
    """Lines from a pipe or file, as they come (``for line in stream`` would wait
    for a buffer's worth on some streams)."""
    while True:
        line = stream.readline()
        if not line:
            return
        yield line


# --- the port: a rig's terminal, or a URL -------------------------------------------


@dataclass
class OpenPort:
    session: ConsoleSession
    wire: Transcript
    rig: Rig | None = None
    process: TerminalProcess | None = None
    hands: RigHands | None = None
    boot_timeout: float = 20.0
    command_timeout: float = 10.0


@contextlib.contextmanager
def open_port(
    *, rig_path: Path | None, url: str | None, firmware: Path | None, baudrate: int
) -> Iterator[OpenPort]:
    """The test port of ``url``, or of the terminal of the rig file ``rig_path``
    (started like ``hil sim`` does, with the rig's instruments built, and torn down
    on the way out). ConfigError for a bad rig file, RigError for a port or rig that
    does not come up."""
    wire = Transcript()
    if url is not None:
        session = ConsoleSession.open_url(url, baudrate=baudrate, transcript=wire)
        session.start()
        try:
            yield OpenPort(session, wire)
        finally:
            session.close()
        return
    assert rig_path is not None
    with _rig_port(rig_path, firmware, wire) as port:
        yield port


@contextlib.contextmanager
def _rig_port(rig_path: Path, firmware: Path | None, wire: Transcript) -> Iterator[OpenPort]:
    from hil.rig import Rig
    from hil.righands import RigHands

    the_rig = Rig.from_file(rig_path, firmware=firmware)
    session: ConsoleSession | None = None
    process = None
    try:
        # Everything but the console (this module is it) and the power switch (the
        # terminal is switched on here), as ``hil sim`` does.
        the_rig.build([s for s in the_rig.config.build_order if s not in ("console", "power")])
        process = the_rig.process
        console_section = the_rig.config.sections.get("console")
        baudrate = getattr(console_section, "baud", 115200)
        if process is not None:
            url = process.port_path
        else:
            console_url = getattr(console_section, "url", None)
            if not isinstance(console_url, str) or console_url == "dut:":
                raise ConfigError(
                    f"{rig_path}: console.url: hil console needs the terminal's port URL "
                    "(or a dut driver 'sim' or 'command')"
                )
            url = console_url
        dut = the_rig.config.dut
        session = ConsoleSession.open_url(url, baudrate=baudrate, transcript=wire)
        session.start()
        # Opened before the power-on: the boot's events are printed too.
        if process is not None:
            process.start()
        yield OpenPort(
            session,
            wire,
            the_rig,
            process,
            RigHands(the_rig),
            boot_timeout=dut.boot_timeout_s,
            command_timeout=dut.command_timeout_s,
        )
    finally:
        if session is not None:
            session.close()
        if process is not None:
            process.terminate(5.0)
        the_rig.close()


def write_wire_transcript(path: Path, wire: Transcript) -> None:
    """The bytes that crossed the port, decoded and masked (hil.protocol.transcript)."""
    path.write_text(wire.render() + "\n", encoding="utf-8")


def default_transcript_path(now: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return Path("reports") / "console" / f"console-{stamp}.txt"


def stdin_lines(prompt: str, hands: RigHands | None) -> Iterator[str]:
    """A person's lines (readline) when stdin is a terminal, else the piped lines."""
    if sys.stdin.isatty():
        return typed_lines(prompt, hands)
    return piped_lines(sys.stdin)
