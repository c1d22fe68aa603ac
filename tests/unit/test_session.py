from __future__ import annotations

import errno
import os
import queue
import re
import socket
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from hil.errors import CommandTimeout, DutError, ProtocolError, RigError, TerminalCommandError
from hil.protocol import (
    CommandFailed,
    ConsoleSession,
    EventLog,
    EventTimeout,
    FdPort,
    Link,
    SerialLike,
    TerminalEndpoint,
    Transcript,
    open_serial,
)
from hil.protocol.framing import ACK, NAK, STX, encode_body, encode_frame

WAIT = 3.0


class FakeTerminal:
    """Command handler standing in for the simulated terminal."""

    def __init__(self) -> None:
        self.endpoint: TerminalEndpoint | None = None
        self.release = threading.Event()
        self.slow_started = threading.Event()

    def __call__(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        assert self.endpoint is not None
        if cmd == "device.info":
            return {"model": "T100", "sn": "SN0001", "firmware": "1.0.0"}
        if cmd == "echo":
            return dict(args)
        if cmd == "selfcheck.run":
            self.endpoint.emit("selfcheck.started", {"items": args["items"]})
            for item in args["items"]:
                self.endpoint.emit("selfcheck.item", {"item": item, "result": "pass"})
            self.endpoint.emit("selfcheck.done", {"verdict": "pass"})
            return {"verdict": "pass"}
        if cmd == "config.set":
            raise CommandFailed("E_PERMISSION", "config is locked")
        if cmd == "boom":
            raise RuntimeError("kaboom\nsecond line")
        if cmd == "slow":
            self.slow_started.set()
            self.release.wait(WAIT)
            return {"done": True}
        raise CommandFailed("E_UNKNOWN_COMMAND", f"no command {cmd!r}")


@dataclass
class Rig:
    session: ConsoleSession
    endpoint: TerminalEndpoint
    terminal: FakeTerminal
    master_fd: int
    rig_port: SerialLike
    transcript: Transcript


class BreakablePort:
    """Passes through to a real port until the test pulls the cable."""

    def __init__(self, inner: SerialLike) -> None:
        self.inner = inner
        self.broken = threading.Event()

    @property
    def timeout(self) -> float | None:
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.inner.timeout = value

    def read(self, size: int) -> bytes:
        if self.broken.is_set():
            raise OSError(errno.EIO, "cable pulled")
        return self.inner.read(size)

    def write(self, data: bytes) -> int | None:
        return self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing before pyserial configures it
    # pyserial's open() flushes input: open the rig end before the terminal writes.
    rig_port = open_serial(os.ttyname(slave))
    terminal = FakeTerminal()
    # Quick commands are answered on the endpoint's reader thread (ACK and answer in one
    # write); selfcheck.run emits events, so its answer goes the worker's way behind
    # them; config.set and slow take the worker pool.
    endpoint = TerminalEndpoint(
        FdPort(master), terminal, quick={"device.info", "echo", "boom", "selfcheck.run"}
    )
    terminal.endpoint = endpoint
    transcript = Transcript()
    wrapped = BreakablePort(rig_port)
    session = ConsoleSession(wrapped, transcript=transcript, owns_port=False)
    endpoint.start()
    session.start()
    yield Rig(session, endpoint, terminal, master, wrapped, transcript)
    terminal.release.set()
    session.close()
    endpoint.close()
    rig_port.close()
    os.close(master)
    os.close(slave)


# -- requests ------------------------------------------------------------------


def test_request_response(rig: Rig) -> None:
    assert rig.session.request("device.info") == {
        "model": "T100",
        "sn": "SN0001",
        "firmware": "1.0.0",
    }
    assert rig.session.request("echo", {"text": "自检中"}) == {"text": "自检中"}


def test_ok_false_raises_terminal_command_error(rig: Rig) -> None:
    with pytest.raises(TerminalCommandError) as caught:
        rig.session.request("config.set", {"tid": "12345678"})
    assert caught.value.command == "config.set"
    assert caught.value.code == "E_PERMISSION"
    assert caught.value.terminal_message == "config is locked"


def test_unknown_command(rig: Rig) -> None:
    with pytest.raises(TerminalCommandError) as caught:
        rig.session.request("no.such")
    assert caught.value.code == "E_UNKNOWN_COMMAND"


def test_handler_crash_is_a_one_line_internal_error(rig: Rig) -> None:
    with pytest.raises(TerminalCommandError) as caught:
        rig.session.request("boom")
    assert caught.value.code == "E_INTERNAL"
    assert caught.value.terminal_message == "RuntimeError: kaboom second line"
    assert rig.endpoint.stats.internal_errors == 1
    # The endpoint keeps serving.
    assert rig.session.request("echo", {"n": 1}) == {"n": 1}


def test_timeout_names_the_command(rig: Rig) -> None:
    with pytest.raises(CommandTimeout) as caught:
        rig.session.request("slow", timeout=0.2)
    assert re.fullmatch(
        r"terminal did not answer 'slow' \(id \d+\) within 0\.2 s", str(caught.value)
    )
    assert caught.value.command == "slow"
    rig.terminal.release.set()
    # The late answer is dropped; the next request is unaffected.
    assert rig.session.request("echo", {"after": True}) == {"after": True}


def test_answer_refused_for_its_content_is_a_protocol_error_naming_it(rig: Rig) -> None:
    # The terminal ACKs 'slow', then sends an answer naming "ok" twice: the rig must act
    # on neither reading. It NAKs the frame, and the request fails naming it.
    caught: queue.Queue[BaseException] = queue.Queue()

    def call() -> None:
        try:
            rig.session.request("slow", timeout=0.5)
        except BaseException as e:
            caught.put(e)

    caller = threading.Thread(target=call)
    caller.start()
    assert rig.terminal.slow_started.wait(WAIT)
    body = b'{"type":"res","id":1,"ok":true,"ok":false,"result":{"pan":"4111111111111111"}}'
    os.write(rig.master_fd, encode_body(body))
    error = caught.get(timeout=WAIT)
    caller.join(WAIT)
    assert type(error) is ProtocolError
    assert re.fullmatch(
        r"terminal did not answer 'slow' \(id \d+\) within 0\.5 s; meanwhile the rig refused "
        r"1 frame\(s\) from it with NAK, the last: not strict JSON: duplicate key 'ok' in "
        r"'\{\"type\":\"res\",\"id\":1,\"ok\":true,\"ok\":false,\"result\":\{\"pan\":\"411111\*{6}1111\"\}\}'",
        str(error),
    ), str(error)
    assert rig.session.stats.naks_tx == 1 and rig.session.dropped_messages == 0
    # An unanswered request with nothing refused meanwhile stays a plain timeout.
    with pytest.raises(CommandTimeout):
        rig.session.request("slow", timeout=0.2)


def test_late_response_is_dropped(rig: Rig) -> None:
    rig.endpoint.link.send({"type": "res", "id": 999, "ok": True, "result": {}})
    rig.session.request("device.info")  # messages are handled in order
    assert rig.session.dropped_messages == 1


def test_long_command_does_not_block_others(rig: Rig) -> None:
    results: queue.Queue[dict[str, Any]] = queue.Queue()
    slow = threading.Thread(target=lambda: results.put(rig.session.request("slow")))
    slow.start()
    assert rig.terminal.slow_started.wait(WAIT)
    assert rig.session.request("device.info")["model"] == "T100"
    assert results.empty()
    rig.terminal.release.set()
    assert results.get(timeout=WAIT) == {"done": True}
    slow.join(WAIT)


def test_concurrent_requests_each_get_their_own_answer(rig: Rig) -> None:
    answers: dict[int, list[dict[str, Any]]] = {}
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            answers[t] = [rig.session.request("echo", {"t": t, "i": i}) for i in range(15)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 3)
    assert not errors
    for t in range(4):
        assert answers[t] == [{"t": t, "i": i} for i in range(15)]


def test_bad_requests_are_answered() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    rig_port = open_serial(os.ttyname(slave))
    answers: queue.Queue[dict[str, Any]] = queue.Queue()
    raw_rig = Link(rig_port, name="raw", on_message=answers.put)
    endpoint = TerminalEndpoint(FdPort(master), FakeTerminal())
    try:
        endpoint.start()
        raw_rig.start()
        raw_rig.send({"type": "req", "id": 1, "args": {}})
        raw_rig.send({"type": "req", "id": 2, "cmd": "echo", "args": [1]})
        raw_rig.send({"type": "req", "id": "three", "cmd": "echo"})
        got = sorted((answers.get(timeout=WAIT) for _ in range(3)), key=str)
        assert {a["error"]["code"] for a in got} == {"E_BAD_REQUEST"}
        assert {a["error"]["message"] for a in got} == {
            "cmd must be a non-empty string",
            "args must be an object",
            "id must be an integer",
        }
        assert endpoint.stats.bad_requests == 3
    finally:
        raw_rig.close()
        endpoint.close()
        rig_port.close()
        os.close(master)
        os.close(slave)


# -- events --------------------------------------------------------------------


def test_events_arrive_in_order_before_the_response(rig: Rig) -> None:
    cursor = rig.session.events.mark()
    result = rig.session.request("selfcheck.run", {"items": ["power", "comm", "card_reader"]})
    assert result == {"verdict": "pass"}
    # No waiting: a command's events are on the rig before its response.
    events = rig.session.events.since(cursor)
    assert [e.name for e in events] == [
        "selfcheck.started",
        "selfcheck.item",
        "selfcheck.item",
        "selfcheck.item",
        "selfcheck.done",
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.index for e in events] == [cursor + i for i in range(5)]
    comm = rig.session.events.wait_for(
        "selfcheck.item", since=cursor, timeout=0, where=lambda d: d["item"] == "comm"
    )
    assert comm.data == {"item": "comm", "result": "pass"}


def test_wait_for_blocks_until_the_event_arrives(rig: Rig) -> None:
    cursor = rig.session.events.mark()
    emitter = threading.Thread(target=rig.endpoint.emit, args=("card.inserted", {"slot": 1}))
    emitter.start()
    event = rig.session.events.wait_for("card.inserted", since=cursor, timeout=WAIT)
    assert event.data == {"slot": 1}
    assert event.ts_ms >= 0
    emitter.join(WAIT)


def test_wait_for_timeout_names_what_arrived(rig: Rig) -> None:
    cursor = rig.session.events.mark()
    rig.endpoint.emit("net.down", {})
    rig.endpoint.emit("net.up", {})
    rig.session.events.wait_for("net.up", since=cursor, timeout=WAIT)
    with pytest.raises(EventTimeout) as caught:
        rig.session.events.wait_for("selfcheck.done", since=cursor, timeout=0.1)
    assert str(caught.value) == (
        "event 'selfcheck.done' did not arrive within 0.1 s; arrived meanwhile: net.down, net.up"
    )
    assert isinstance(caught.value, DutError)
    assert caught.value.arrived == ["net.down", "net.up"]


def test_events_from_nobody_are_dropped_and_the_endpoint_goes_on() -> None:
    a, b = socket.socketpair()  # b is never read: nobody ACKs
    endpoint = TerminalEndpoint(FdPort(a.fileno()), FakeTerminal(), ack_timeout=0.01)
    try:
        endpoint.start()
        endpoint.emit("boot.done", {})
        endpoint.emit("boot.again", {})
        assert endpoint.flush(WAIT)
        assert endpoint.stats.events_dropped == 2
        assert endpoint.stats.events_sent == 0
        assert endpoint.link.stats.retransmits == 6
    finally:
        endpoint.close()
        a.close()
        b.close()


def test_emit_refuses_unencodable_data(rig: Rig) -> None:
    with pytest.raises(TypeError):
        rig.endpoint.emit("x.y", {"bad": object()})
    assert rig.endpoint.stats.events_emitted == 0


def test_endpoint_clock() -> None:
    a, b = socket.socketpair()
    got: queue.Queue[dict[str, Any]] = queue.Queue()
    endpoint = TerminalEndpoint(FdPort(a.fileno()), FakeTerminal(), clock_ms=lambda: 42)
    rig_side = Link(FdPort(b.fileno()), name="rig", on_message=got.put)
    try:
        endpoint.start()
        rig_side.start()
        endpoint.emit("tick", {})
        assert got.get(timeout=WAIT) == {
            "type": "evt",
            "seq": 1,
            "name": "tick",
            "ts_ms": 42,
            "data": {},
        }
    finally:
        rig_side.close()
        endpoint.close()
        a.close()
        b.close()


def test_event_log_does_not_assume_unique_seq() -> None:
    log = EventLog()
    log.append(1, "boot.done", 10, {})
    cursor = log.mark()
    log.append(1, "boot.done", 12, {"after": "reboot"})  # seq restarted
    assert log.wait_for("boot.done", since=cursor, timeout=0).data == {"after": "reboot"}
    assert [e.index for e in log.all()] == [0, 1]
    assert len(log) == 2
    assert len(log.find("boot.done")) == 2


def test_event_log_wildcards() -> None:
    log = EventLog()
    log.append(1, "sys.boot", 0, {})
    log.append(2, "selfcheck.started", 5, {})
    assert log.wait_for("*", since=1, timeout=0).name == "selfcheck.started"
    assert log.wait_for("selfcheck.*", since=0, timeout=0).index == 1
    assert [e.name for e in log.find("sys.*")] == ["sys.boot"]


def test_session_closes_its_port_unless_told_not_to() -> None:
    closed: list[str] = []

    class Port:
        timeout: float | None = 0.01

        def read(self, size: int) -> bytes:
            return b""

        def write(self, data: bytes) -> int:
            return len(data)

        def close(self) -> None:
            closed.append("closed")

    ConsoleSession(Port(), owns_port=False).close()
    assert closed == []
    with ConsoleSession(Port()):
        pass
    assert closed == ["closed"]


def test_event_log_subscribe() -> None:
    log = EventLog()
    seen: list[str] = []
    unsubscribe = log.subscribe(lambda e: seen.append(e.name))
    log.append(1, "a", 0, {})
    unsubscribe()
    log.append(2, "b", 0, {})
    assert seen == ["a"]


def test_event_log_timeout_lists_at_most_ten_names() -> None:
    log = EventLog()
    for i in range(12):
        log.append(i, f"e{i}", 0, {})
    with pytest.raises(EventTimeout) as caught:
        log.wait_for("x", since=0, timeout=0, where=lambda d: True)
    assert "matching the condition" in str(caught.value)
    assert "e9 (+2 more)" in str(caught.value)


# -- the wire ------------------------------------------------------------------


def test_garbage_on_the_wire_is_skipped(rig: Rig) -> None:
    # Terminal -> rig: boot chatter, stray controls and a bogus frame start.
    os.write(rig.master_fd, b"U-Boot 2024.01\r\n" + bytes([ACK, NAK]) + b"\xff\xfe")
    assert rig.session.request("echo", {"n": 1}) == {"n": 1}
    os.write(rig.master_fd, bytes([STX, 0x00, 0x40]) + b"half a frame")
    # Rig -> terminal.
    rig.rig_port.write(b"\x00\x00junk" + bytes([STX, 0x00, 0x00]))
    for n in range(2, 5):
        assert rig.session.request("echo", {"n": n}) == {"n": n}
    assert rig.session.stats.skipped_bytes >= len(b"U-Boot 2024.01\r\n")
    # Both false starts were noise, not frames: dropped, and nobody was NAKed for them.
    assert rig.session.stats.false_starts == 1 and rig.endpoint.link.stats.false_starts == 1
    assert rig.session.stats.naks_tx == 0 and rig.endpoint.link.stats.naks_tx == 0


def test_transcript_records_both_directions(rig: Rig) -> None:
    rig.session.request("echo", {"pan": "4111111111111111"})
    text = rig.transcript.render()
    assert re.search(
        r'\{"type":"req","id":\d+,"cmd":"echo","args":\{"pan":"411111\*{6}1111"\}\}', text
    )
    assert '"ok":true' in text
    assert {e.direction for e in rig.transcript.entries()} == {"tx", "rx"}
    assert "4111111111111111" not in text


def test_port_failure_fails_waiting_requests_with_rig_error(rig: Rig) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def call() -> None:
        try:
            rig.session.request("slow", timeout=WAIT)
        except BaseException as e:
            errors.put(e)

    caller = threading.Thread(target=call)
    caller.start()
    assert rig.terminal.slow_started.wait(WAIT)
    assert isinstance(rig.rig_port, BreakablePort)
    rig.rig_port.broken.set()
    error = errors.get(timeout=WAIT)
    assert isinstance(error, RigError)
    assert "test port 'console' failed" in str(error)
    with pytest.raises(RigError):
        rig.session.request("device.info")
    caller.join(WAIT)


def test_close_fails_waiting_requests_and_is_idempotent(rig: Rig) -> None:
    errors: queue.Queue[BaseException] = queue.Queue()

    def call() -> None:
        try:
            rig.session.request("slow", timeout=WAIT)
        except BaseException as e:
            errors.put(e)

    threading.Thread(target=call).start()
    assert rig.terminal.slow_started.wait(WAIT)
    rig.session.close()
    rig.session.close()
    assert isinstance(errors.get(timeout=WAIT), RigError)
    with pytest.raises(RigError, match="closed"):
        rig.session.request("device.info")


def test_open_url_over_socket() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port_number = server.getsockname()[1]
    session = ConsoleSession.open_url(f"socket://127.0.0.1:{port_number}")
    conn, _ = server.accept()
    terminal = FakeTerminal()
    endpoint = TerminalEndpoint(FdPort(conn.fileno()), terminal)
    terminal.endpoint = endpoint
    try:
        endpoint.start()
        with session:
            assert session.request("echo", {"over": "tcp"}) == {"over": "tcp"}
    finally:
        endpoint.close()
        conn.close()
        server.close()


def test_open_url_failure_is_a_rig_error() -> None:
    with pytest.raises(RigError, match="/dev/no-such-tty"):
        ConsoleSession.open_url("/dev/no-such-tty")


def test_encode_frame_matches_what_the_session_sends() -> None:
    # Guards the documented wire shape of a request.
    assert encode_frame({"type": "req", "id": 1, "cmd": "device.info", "args": {}})[3:-3] == (
        b'{"type":"req","id":1,"cmd":"device.info","args":{}}'
    )


def test_a_new_session_never_repeats_the_last_request_bytes(rig: Rig) -> None:
    rig.session.request("device.info")
    second = ConsoleSession(rig.rig_port, owns_port=False)
    rig.session.close()
    with second:
        # Byte-identical to the last frame the terminal got, it would be dropped as a
        # retransmission; fresh ids keep it distinct.
        assert second.request("device.info")["model"] == "T100"
    assert rig.endpoint.link.stats.duplicates == 0
