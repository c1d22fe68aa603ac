from __future__ import annotations

import contextlib
import errno
import os
import queue
import socket
import threading
import time
import tty
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import serial

from hil.errors import ProtocolError, RigError
from hil.masking import contains_full_pan
from hil.protocol.framing import ACK, NAK, STX, Frame, FrameDecoder, encode_frame
from hil.protocol.link import Answer, Link, OneShot
from hil.protocol.transcript import Transcript
from hil.protocol.transport import FdPort, SerialLike, open_serial, read_some_of, write_of

WAIT = 3.0  # generous upper bound for anything that should take milliseconds
REQ7 = {"type": "req", "id": 7, "cmd": "selfcheck.run", "args": {}}


class Inbox:
    """Collects delivered messages; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue()

    def __call__(self, message: dict[str, Any]) -> None:
        self.queue.put(message)

    def get(self) -> dict[str, Any]:
        return self.queue.get(timeout=WAIT)

    def empty(self) -> bool:
        return self.queue.empty()


class WrappedPort:
    """A SerialLike that lets a test tamper with writes or break reads."""

    def __init__(
        self, inner: SerialLike, on_write: Callable[[bytes], bytes | None] | None = None
    ) -> None:
        self.inner = inner
        self.on_write = on_write
        self.fail_reads = threading.Event()

    @property
    def timeout(self) -> float | None:
        return self.inner.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.inner.timeout = value

    def read(self, size: int) -> bytes:
        if self.fail_reads.is_set():
            raise OSError(errno.EIO, "cable pulled")
        return self.inner.read(size)

    def write(self, data: bytes) -> int | None:
        out = self.on_write(data) if self.on_write else data
        if out is None:
            return len(data)  # swallowed
        self.inner.write(out)
        return len(data)

    def close(self) -> None:
        self.inner.close()


def corrupt_first_frame() -> Callable[[bytes], bytes | None]:
    done = threading.Event()

    def on_write(data: bytes) -> bytes | None:
        if len(data) > 1 and not done.is_set():
            done.set()
            mangled = bytearray(data)
            mangled[5] ^= 0x20  # a body byte: CRC no longer matches
            return bytes(mangled)
        return data

    return on_write


def drop_first_ack() -> Callable[[bytes], bytes | None]:
    done = threading.Event()

    def on_write(data: bytes) -> bytes | None:
        if data == bytes([ACK]) and not done.is_set():
            done.set()
            return None
        return data

    return on_write


@pytest.fixture
def sockets() -> Iterator[tuple[FdPort, FdPort]]:
    a, b = socket.socketpair()
    ports = (FdPort(a.fileno()), FdPort(b.fileno()))
    yield ports
    for port in ports:
        port.close()
    a.close()
    b.close()


@pytest.fixture
def links() -> Iterator[Callable[..., Link]]:
    made: list[Link] = []

    def make(port: SerialLike, **kwargs: Any) -> Link:
        kwargs.setdefault("on_message", Inbox())
        kwargs.setdefault("name", "console")
        link = Link(port, **kwargs)
        link.start()
        made.append(link)
        return link

    yield make
    for link in made:
        link.close()


def read_frames(port: FdPort, count: int) -> list[Frame]:
    decoder = FrameDecoder()
    got: list[Frame] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} frames arrived"
        data = port.read(4096)
        got += [i for i in decoder.feed(data) if isinstance(i, Frame)]
    return got


# -- happy path ----------------------------------------------------------------


def test_send_both_ways(sockets: tuple[FdPort, FdPort], links: Callable[..., Link]) -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    a = links(sockets[0], on_message=inbox_a)
    b = links(sockets[1], on_message=inbox_b)
    a.send(REQ7)
    b.send({"type": "res", "id": 7, "ok": True, "result": {"text": "自检中"}})
    assert inbox_b.get() == REQ7
    assert inbox_a.get()["result"] == {"text": "自检中"}
    assert a.stats.frames_tx == 1 and a.stats.acks_rx == 1 and a.stats.acks_tx == 1
    assert b.stats.frames_rx == 1 and b.stats.retransmits == 0


def test_on_message_may_send(sockets: tuple[FdPort, FdPort], links: Callable[..., Link]) -> None:
    inbox_a = Inbox()
    a = links(sockets[0], on_message=inbox_a)
    holder: dict[str, Link] = {}

    def echo(message: dict[str, Any]) -> None:
        holder["b"].send({"type": "res", "id": message["id"], "ok": True, "result": {}})

    holder["b"] = links(sockets[1], on_message=echo)
    for i in range(20):
        a.send({"type": "req", "id": i, "cmd": "x.y", "args": {}})
        assert inbox_a.get()["id"] == i


def test_over_a_pty() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    rig_port = open_serial(os.ttyname(slave))
    inbox_rig, inbox_term = Inbox(), Inbox()
    rig = Link(rig_port, name="console", on_message=inbox_rig)
    term = Link(FdPort(master), name="terminal", on_message=inbox_term)
    try:
        rig.start()
        term.start()
        rig.send(REQ7)
        assert inbox_term.get() == REQ7
        term.send({"type": "evt", "seq": 1, "name": "boot.done", "ts_ms": 3, "data": {}})
        assert inbox_rig.get()["name"] == "boot.done"
    finally:
        rig.close()
        term.close()
        rig_port.close()
        os.close(master)
        os.close(slave)


# -- error recovery ------------------------------------------------------------


def test_nak_triggers_retransmit(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    inbox_b = Inbox()
    a = links(WrappedPort(sockets[0], corrupt_first_frame()))
    b = links(sockets[1], on_message=inbox_b)
    a.send(REQ7)
    assert inbox_b.get() == REQ7
    assert a.stats.naks_rx == 1 and a.stats.retransmits == 1 and a.stats.acks_rx == 1
    assert b.stats.naks_tx == 1 and b.stats.broken_frames == 1


def test_lost_ack_gives_a_suppressed_duplicate(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    inbox_b = Inbox()
    a = links(sockets[0], ack_timeout=0.1)
    b = links(WrappedPort(sockets[1], drop_first_ack()), on_message=inbox_b)
    a.send(REQ7)
    assert a.stats.retransmits == 1
    assert b.stats.frames_rx == 2 and b.stats.duplicates == 1 and b.stats.acks_tx == 2
    second = {**REQ7, "id": 8}
    a.send(second)
    assert [inbox_b.get(), inbox_b.get()] == [REQ7, second]
    assert inbox_b.empty()


def test_identical_frame_after_the_window_is_delivered(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    inbox_b = Inbox()
    a = links(sockets[0])
    b = links(sockets[1], on_message=inbox_b)
    b.duplicate_window = 0.0  # pretend the window has passed
    a.send(REQ7)
    a.send(REQ7)
    assert [inbox_b.get(), inbox_b.get()] == [REQ7, REQ7]


def test_no_ack_raises_after_four_attempts(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    a = links(sockets[0], ack_timeout=0.05)
    with pytest.raises(ProtocolError) as caught:
        a.send(REQ7)
    assert str(caught.value).startswith(
        "test port 'console': no ACK for req 'selfcheck.run' id 7 after 4 attempts"
    )
    assert "no answer x4" in str(caught.value)
    sent = read_frames(sockets[1], 4)
    assert all(f.raw == encode_frame(REQ7) for f in sent)
    assert a.stats.frames_tx == 1 and a.stats.retransmits == 3 and a.stats.send_failures == 1


def test_nak_every_time_raises(sockets: tuple[FdPort, FdPort], links: Callable[..., Link]) -> None:
    a = links(sockets[0], ack_timeout=1.0)
    peer = sockets[1]
    failure: list[BaseException] = []

    def send() -> None:
        try:
            a.send(REQ7)
        except ProtocolError as e:
            failure.append(e)

    sender = threading.Thread(target=send)
    sender.start()
    for _ in range(4):
        read_frames(peer, 1)
        peer.write(bytes([NAK]))
    sender.join(WAIT)
    assert failure and "NAK x4" in str(failure[0])


def test_garbage_between_frames_is_skipped(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    inbox = Inbox()
    link = links(sockets[1], on_message=inbox)
    peer = sockets[0]
    peer.write(b"boot banner\r\n\x00\xff" + encode_frame(REQ7) + b"more noise")
    assert inbox.get() == REQ7
    peer.write(encode_frame({**REQ7, "id": 8}))
    assert inbox.get()["id"] == 8
    assert link.stats.skipped_bytes == len(b"boot banner\r\n\x00\xff" + b"more noise")
    assert link.stats.acks_tx == 2 and link.stats.naks_tx == 0


def test_broken_frame_is_naked(sockets: tuple[FdPort, FdPort], links: Callable[..., Link]) -> None:
    link = links(sockets[1])
    peer = sockets[0]
    raw = bytearray(encode_frame(REQ7))
    raw[-1] ^= 0xFF
    peer.write(bytes(raw))
    assert peer.read(1) == bytes([NAK])
    assert link.stats.broken_frames == 1


def test_false_start_before_a_frame_costs_it_nothing(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    inbox_b = Inbox()
    a = links(sockets[0], ack_timeout=5.0)
    b = links(sockets[1], on_message=inbox_b)
    # A stray STX with a huge LEN: the frame's own STX, inside that BODY, ends it.
    sockets[0].write(bytes([STX, 0xFF, 0x00]))
    a.send(REQ7)
    assert inbox_b.get() == REQ7
    assert b.stats.false_starts == 1 and b.stats.naks_tx == 0 and b.stats.broken_frames == 0
    assert a.stats.naks_rx == 0


def test_silence_drops_a_false_start_without_nak_and_frees_the_ack_it_swallowed(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    injected = threading.Event()

    def stray_stx_before_first_ack(data: bytes) -> bytes:
        if data == bytes([ACK]) and not injected.is_set():
            injected.set()
            return bytes([STX]) + data  # the ACK becomes the first byte of a LEN
        return data

    # Generous ACK wait: the point is that the ACK comes out on the stall timer
    # (50 ms here), so no retransmission is needed, whatever the machine's load.
    a = links(sockets[0], ack_timeout=5.0, partial_timeout=0.05)
    links(WrappedPort(sockets[1], stray_stx_before_first_ack))
    a.send(REQ7)
    assert injected.is_set()
    assert a.stats.acks_rx == 1 and a.stats.retransmits == 0
    assert a.stats.false_starts == 1 and a.stats.naks_tx == 0


def test_port_failure_raises_rig_error(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    port = WrappedPort(sockets[0])
    failures: queue.Queue[BaseException] = queue.Queue()
    a = links(port, on_failure=failures.put)
    port.fail_reads.set()
    assert isinstance(failures.get(timeout=WAIT), OSError)
    with pytest.raises(RigError, match="test port 'console' failed: OSError") as caught:
        a.send(REQ7)
    assert caught.value.instrument == "console"
    assert a.failure is not None


def test_write_timeout_is_not_fatal(links: Callable[..., Link]) -> None:
    a_sock, b_sock = socket.socketpair()
    a_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    port = FdPort(a_sock.fileno(), write_timeout=0.02)
    try:
        link = links(port, ack_timeout=0.02)
        big = {"type": "evt", "seq": 1, "name": "x", "ts_ms": 0, "data": {"blob": "x" * 60000}}
        with pytest.raises(ProtocolError, match="write timed out"):
            link.send(big)
        assert link.stats.write_timeouts >= 1
        assert link.failure is None
    finally:
        port.close()
        a_sock.close()
        b_sock.close()


def test_on_message_errors_are_counted(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    seen = Inbox()

    def flaky(message: dict[str, Any]) -> None:
        seen(message)
        if message["id"] == 1:
            raise RuntimeError("handler bug")

    a = links(sockets[0])
    b = links(sockets[1], on_message=flaky)
    a.send({**REQ7, "id": 1})
    a.send({**REQ7, "id": 2})
    assert [seen.get()["id"], seen.get()["id"]] == [1, 2]
    assert b.stats.handler_errors == 1


def test_close_is_idempotent_and_send_after_close_fails(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    a = links(sockets[0])
    a.close()
    a.close()
    assert a.closed
    with pytest.raises(RigError, match="closed"):
        a.send(REQ7)


def test_close_wakes_a_blocked_sender(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    a = links(sockets[0], ack_timeout=30.0)
    errors: queue.Queue[BaseException] = queue.Queue()

    def send() -> None:
        try:
            a.send(REQ7)
        except RigError as e:
            errors.put(e)

    threading.Thread(target=send).start()
    read_frames(sockets[1], 1)  # the frame is out: the sender now waits for its ACK
    a.close()
    assert "closed" in str(errors.get(timeout=WAIT))


# -- transcript ----------------------------------------------------------------


def test_transcript_records_both_directions(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    transcript = Transcript()
    inbox_a = Inbox()
    a = links(WrappedPort(sockets[0], corrupt_first_frame()), transcript=transcript)
    b = links(sockets[1], on_message=inbox_a)
    a.send(REQ7)
    inbox_a.get()
    b.send({"type": "res", "id": 7, "ok": True, "result": {"verdict": "pass"}})
    text = transcript.render()
    directions = {e.direction for e in transcript.entries()}
    assert directions == {"tx", "rx"}
    assert '{"type":"req","id":7,"cmd":"selfcheck.run","args":{}}' in text
    assert '"verdict":"pass"' in text
    assert "retransmit 1/3" in text
    assert " rx  15 | NAK" in text
    assert " tx  06 | ACK" in text
    assert len(transcript) == len(text.splitlines())
    transcript.clear()
    assert len(transcript) == 0 and transcript.render() == ""


def test_transcript_never_shows_a_pan() -> None:
    transcript = Transcript()
    pan = "4111111111111111"
    raw = encode_frame(
        {"type": "evt", "seq": 1, "name": "card.read", "ts_ms": 0, "data": {"pan": pan}}
    )
    transcript.record("rx", raw[:20])  # the PAN straddles two chunks
    transcript.record("rx", raw[20:])
    text = transcript.render()
    assert not contains_full_pan(text)
    assert pan.encode().hex(":") not in text
    assert "411111******1111" in text


def test_transcript_shows_false_starts() -> None:
    transcript = Transcript()
    transcript.record("rx", bytes([STX, 0xFF, 0xFF]) + encode_frame(REQ7))
    transcript.record("rx", bytes([STX, 0x00, 0x40]) + b"ab")
    transcript.record_resync("rx", "200 ms of silence: dropped, no NAK")
    lines = transcript.render().splitlines()
    assert "not a frame: STX at byte 3, inside the 65535-byte BODY LEN announced" in lines[0]
    assert "selfcheck.run" in lines[0]
    assert lines[2].endswith(
        "not a frame: incomplete frame: got 5 of 70 bytes | skipped 4 byte(s)"
        " | 200 ms of silence: dropped, no NAK"
    )


def test_transcript_refuses_unknown_direction() -> None:
    with pytest.raises(ValueError):
        Transcript().record("up", b"x")


# -- transport -----------------------------------------------------------------


def test_open_serial_failure_names_the_url() -> None:
    with pytest.raises(RigError, match="/dev/no-such-port") as caught:
        open_serial("/dev/no-such-port")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(RigError, match="bogus://x"):
        open_serial("bogus://x")


def test_open_serial_loop_url() -> None:
    port = open_serial("loop://", timeout=0.05)
    try:
        port.write(b"abc")
        assert port.read(3) == b"abc"
    finally:
        port.close()


def test_fdport_on_closed_pty_slave_reads_empty() -> None:
    master, slave = os.openpty()
    os.close(slave)
    port = FdPort(master, timeout=0.01, close_fd=True)
    assert port.read(10) == b""
    port.close()
    with pytest.raises(OSError):
        os.fstat(master)  # close_fd=True closed it


def test_fdport_leaves_fd_open_by_default() -> None:
    a, b = socket.socketpair()
    port = FdPort(a.fileno(), timeout=0.01)
    port.close()
    os.fstat(a.fileno())
    a.close()
    b.close()


def test_send_before_start_fails_at_once(sockets: tuple[FdPort, FdPort]) -> None:
    link = Link(sockets[0], name="console", on_message=Inbox())
    with pytest.raises(RigError, match="not started"):
        link.send(REQ7)


# -- inline dispatch and answers on the reader thread ---------------------------


def test_inline_on_message_runs_on_the_reader_and_may_not_send(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    seen: queue.Queue[str] = queue.Queue()
    holder: dict[str, Link] = {}

    def handler(message: dict[str, Any]) -> None:
        seen.put(threading.current_thread().name)
        holder["b"].send({"type": "res", "id": message["id"], "ok": True, "result": {}})

    a = links(sockets[0])
    holder["b"] = links(sockets[1], on_message=handler, inline=True)
    a.send(REQ7)
    a.send({**REQ7, "id": 8})  # the refused send did not stop the reader or its ACKs
    assert [seen.get(timeout=WAIT), seen.get(timeout=WAIT)] == ["console-reader"] * 2
    assert holder["b"].stats.handler_errors == 2 and holder["b"].stats.acks_tx == 2
    assert a.stats.frames_rx == 0


def answering(frame: bytes, given_up: threading.Event | None = None) -> Callable[..., Any]:
    def answer(message: dict[str, Any]) -> Answer:
        return Answer(frame, "res id 7", given_up.set if given_up else None)

    return answer


def test_answer_goes_out_with_the_ack_in_one_write(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    res7 = encode_frame({"type": "res", "id": 7, "ok": True, "result": {}})
    writes: list[bytes] = []

    def record(data: bytes) -> bytes:
        writes.append(data)
        return data

    inbox_a, inbox_b = Inbox(), Inbox()
    a = links(sockets[0], on_message=inbox_a)
    b = links(WrappedPort(sockets[1], record), on_message=inbox_b, answer=answering(res7))
    a.send(REQ7)
    assert inbox_a.get()["id"] == 7
    assert inbox_b.empty()  # the answer callback took it: not passed to on_message
    assert writes[0] == bytes([ACK]) + res7
    # The reader saw the answer's ACK and freed the send lock: the next send goes out.
    b.send({"type": "evt", "seq": 1, "name": "x", "ts_ms": 0, "data": {}})
    assert inbox_a.get()["type"] == "evt"
    assert b.stats.frames_tx == 2 and b.stats.acks_tx == 1 and b.stats.acks_rx == 2
    a.send(REQ7)  # a retransmission of the request is a duplicate: ACK only, no answer
    assert a.stats.frames_rx == 2


def test_answer_is_retransmitted_by_the_reader_and_given_up_after_four(
    sockets: tuple[FdPort, FdPort], links: Callable[..., Link]
) -> None:
    res7 = encode_frame({"type": "res", "id": 7, "ok": True, "result": {}})
    given_up = threading.Event()
    b = links(sockets[1], answer=answering(res7, given_up), ack_timeout=0.1)
    peer = sockets[0]
    peer.write(encode_frame(REQ7))
    assert read_frames(peer, 1)[0].raw == res7  # after the ACK, in one write
    peer.write(bytes([NAK]))  # a NAK: sent again at once
    assert read_frames(peer, 1)[0].raw == res7
    assert given_up.wait(WAIT)  # then nothing: two more on the timer, then given up
    assert b.stats.retransmits == 3 and b.stats.send_failures == 1
    assert b.stats.naks_rx == 1
    # The send lock is free again: a frame of b's own goes out after them.
    event = {"type": "evt", "seq": 1, "name": "x", "ts_ms": 0, "data": {}}
    sender = threading.Thread(target=b.send, args=(event,))
    sender.start()
    frames = read_frames(peer, 3)  # two retransmissions of res7, then the event
    assert [f.message["type"] for f in frames] == ["res", "res", "evt"]
    peer.write(bytes([ACK]))
    sender.join(WAIT)
    assert not sender.is_alive()


@contextlib.contextmanager
def _serial_on_pty(timeout: float) -> Iterator[tuple[int, SerialLike]]:
    """pyserial's port on a raw pty's slave, and the pty's master; all closed after."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = open_serial(os.ttyname(slave), timeout=timeout)
    try:
        yield master, port
    finally:
        port.close()
        os.close(master)
        os.close(slave)


def test_read_some_takes_a_whole_chunk_from_a_pty() -> None:
    with _serial_on_pty(timeout=0.5) as (master, port):
        read_some = read_some_of(port)
        assert read_some is not None
        os.write(master, b"abcdef")
        got = b""
        while len(got) < 6:
            got += read_some(4096)
        assert got == b"abcdef"
        port.timeout = 0.01
        assert read_some(4096) == b""  # the timeout, as pyserial's read


def test_direct_write_sends_everything_even_past_a_full_buffer() -> None:
    # write_of tries one os.write; what a full pty buffer leaves goes through pyserial.
    big = bytes(range(256)) * 2048  # 512 KiB: more than a pty buffers
    got = bytearray()
    with _serial_on_pty(timeout=0.5) as (master, port):

        def drain() -> None:
            while len(got) < len(big):
                got.extend(os.read(master, 65536))

        reader = threading.Thread(target=drain, daemon=True)
        write = write_of(port)
        reader.start()
        write(b"")  # nothing to send is fine too
        write(big)
        reader.join(10)
        assert bytes(got) == big
        port.close()
        with pytest.raises(serial.SerialException):
            write(b"x")  # a closed port: pyserial's own error


def test_one_shot_wakes_a_waiter_and_stays_set() -> None:
    flag = OneShot()
    assert not flag.wait(0.01) and not flag.is_set()
    threading.Timer(0.05, flag.set).start()
    assert flag.wait(5.0)
    assert flag.wait(0) and flag.is_set()  # later waits return at once
    flag.set()  # a second set does nothing
    assert flag.is_set()


def test_read_some_returns_on_cancel_and_follows_a_reopened_port() -> None:
    # The poll object watches pyserial's descriptor and abort pipe; cancel_read writes
    # the pipe, and a port closed and opened again has new descriptors to watch.
    with _serial_on_pty(timeout=5.0) as (master, port):
        serial_port = cast(serial.Serial, port)
        read_some = read_some_of(port)
        assert read_some is not None
        threading.Timer(0.05, serial_port.cancel_read).start()
        started = time.monotonic()
        assert read_some(4096) == b""
        assert time.monotonic() - started < 4.0  # the cancel, not the 5 s timeout
        serial_port.close()
        serial_port.open()
        os.write(master, b"after reopen")
        got = b""
        while len(got) < 12:
            got += read_some(4096)
        assert got == b"after reopen"


def test_fdport_read_of_a_descriptor_closed_underneath_is_ebadf() -> None:
    a, b = socket.socketpair()
    port = FdPort(os.dup(a.fileno()), timeout=0.5)
    os.close(port.fd)
    with pytest.raises(OSError) as caught:
        port.read(10)
    assert caught.value.errno == errno.EBADF
    a.close()
    b.close()


def test_fdport_write_finishes_past_a_full_buffer_and_times_out_when_nobody_reads() -> None:
    a, b = socket.socketpair()
    big = bytes(range(256)) * 4096  # 1 MiB: more than a socket buffers
    got = bytearray()

    def drain() -> None:
        while len(got) < len(big):
            got.extend(b.recv(65536))

    port = FdPort(a.fileno(), write_timeout=10.0)
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert port.write(big) == len(big)
    reader.join(10)
    assert bytes(got) == big
    port.write_timeout = 0.2
    with pytest.raises(TimeoutError, match="unsent"):
        port.write(big)  # b reads no more
    a.close()
    b.close()
