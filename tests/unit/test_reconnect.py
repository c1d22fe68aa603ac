"""ReconnectingPort over ``socket://`` on loopback: a real TCP peer that hangs up, goes
away and comes back (the RFC 2217 path through ser2net: tests/integration/test_rfc2217.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from hil.errors import CommandTimeout, DutError, RigError
from hil.instruments.console import PyserialConsole
from hil.protocol.framing import ACK, ETX
from hil.protocol.reconnect import ReconnectingPort, is_network_url
from hil.protocol.session import EventTimeout
from hil.protocol.transcript import Transcript

WAIT = 10.0


class Peer:
    """A TCP server on loopback, one client at a time: records what it receives,
    sends what it is told, hangs up on demand; ``stop`` and ``start`` keep the port."""

    def __init__(self) -> None:
        self.port = 0
        self.received = bytearray()
        self.connections = 0
        self.ack_frames = False
        self.hang_up_after_frame = False
        self._client: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._serve, args=(listener,), daemon=True).start()

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._client = client
                self.connections += 1
            while True:
                try:
                    data = client.recv(4096)
                except OSError:
                    break
                if not data:
                    break
                with self._lock:
                    self.received += data
                if self.ack_frames and ETX in data:
                    client.sendall(bytes((ACK,)))
                    if self.hang_up_after_frame:
                        self.hang_up_after_frame = False
                        client.close()
                        break
            client.close()

    def send(self, data: bytes) -> None:
        with self._lock:
            assert self._client is not None
            self._client.sendall(data)

    def hang_up(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(OSError):  # already closed
                    self._client.shutdown(socket.SHUT_RDWR)
                self._client.close()

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown first: a close alone leaves the socket listening for as long as
            # the thread blocked in accept() holds it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        self.hang_up()

    def wait_connections(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.connections < count:
            assert time.monotonic() < deadline, f"{self.connections} connection(s)"
            time.sleep(0.01)

    def wait_for(self, what: bytes) -> None:
        deadline = time.monotonic() + WAIT
        while what not in self.received:
            assert time.monotonic() < deadline, f"{what!r} never arrived: {bytes(self.received)!r}"
            time.sleep(0.01)


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    try:
        yield server
    finally:
        server.stop()


def read_until(port: ReconnectingPort, wanted: bytes) -> bytes:
    got = b""
    deadline = time.monotonic() + WAIT
    while wanted not in got:
        assert time.monotonic() < deadline, got
        got += port.read_some(4096)
    return got


def test_network_urls_are_the_ones_reopened() -> None:
    assert is_network_url("rfc2217://10.0.0.5:3001?ign_set_control")
    assert is_network_url("SOCKET://host:1")
    assert not is_network_url("/dev/ttyUSB0") and not is_network_url("loop://")


def test_a_dropped_link_is_reopened_and_marked_in_the_transcript(peer: Peer) -> None:
    transcript = Transcript()
    port = ReconnectingPort(peer.url, interval=0.05, transcript=transcript)
    try:
        port.write(b"before")
        peer.wait_for(b"before")
        peer.send(b"hello")
        assert read_until(port, b"hello").endswith(b"hello")
        peer.hang_up()
        # The read that meets the drop returns silence; the port is back afterwards.
        deadline = time.monotonic() + WAIT
        while port.reconnects == 0:
            assert time.monotonic() < deadline
            port.read_some(4096)
        assert port.drops == 1
        peer.wait_connections(2)
        port.write(b"after")
        peer.wait_for(b"after")
        peer.send(b"again")
        assert read_until(port, b"again").endswith(b"again")
        notes = [e.note for e in transcript.entries() if e.note]
        assert len(notes) == 2
        assert notes[0].startswith(f"link to {peer.url} dropped")
        assert notes[1].startswith(f"link to {peer.url} re-established after 1 attempt(s)")
    finally:
        port.close()


def test_a_write_that_meets_the_drop_is_written_again_on_the_new_link(peer: Peer) -> None:
    port = ReconnectingPort(peer.url, interval=0.05)
    try:
        peer.wait_connections(1)
        port.write(b"first")
        peer.wait_for(b"first")
        peer.hang_up()
        time.sleep(0.1)  # the hang-up reached this side
        for _ in range(20):  # the first writes may land in the dead socket's buffer
            port.write(b"x")
            if port.drops:
                break
            time.sleep(0.05)
        assert port.drops == 1
        port.write(b"second")
        peer.wait_for(b"second")
        peer.wait_connections(2)
    finally:
        port.close()


def test_a_link_that_does_not_come_back_is_a_rig_error_after_its_attempts(peer: Peer) -> None:
    transcript = Transcript()
    port = ReconnectingPort(peer.url, attempts=3, interval=0.05, transcript=transcript)
    try:
        peer.wait_connections(1)
        peer.stop()
        with pytest.raises(RigError) as caught:
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                port.read_some(4096)
        message = str(caught.value)
        assert peer.url in message and "3 attempt(s)" in message
        assert "could not be re-established" in message
        # From then on the port stays failed, with the same error, for readers and writers.
        with pytest.raises(RigError, match="could not be re-established"):
            port.write(b"x")
        assert "not re-established after 3 attempt(s)" in transcript.render()
    finally:
        port.close()


def test_no_attempts_means_a_drop_is_a_rig_error_at_once(peer: Peer) -> None:
    port = ReconnectingPort(peer.url, attempts=0)
    try:
        peer.wait_connections(1)
        peer.hang_up()
        with pytest.raises(RigError, match="0 attempt"):
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                port.read_some(4096)
    finally:
        port.close()


def test_a_port_that_never_opened_is_not_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"socket://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(RigError, match="cannot open test port"):
        ReconnectingPort(url, attempts=5, interval=1.0)
    assert time.monotonic() - started < 1.0, "a wiring mistake is reported at once"


def test_close_stops_a_reconnection_under_way(peer: Peer) -> None:
    port = ReconnectingPort(peer.url, attempts=1000, interval=0.05)
    peer.wait_connections(1)
    peer.stop()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while True:
                port.read_some(4096)
        except BaseException as e:
            errors.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + WAIT
    while port.drops == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    port.close()
    reader.join(WAIT)
    assert not reader.is_alive()
    assert errors and not isinstance(errors[0], RigError), "closing is not a rig fault"


def test_an_answer_lost_with_the_link_is_a_rig_fault_not_the_terminals(peer: Peer) -> None:
    # The peer ACKs the request and hangs up before answering: the console reconnects,
    # but the answer is gone. A timeout here must not be blamed on the terminal.
    peer.ack_frames = True
    console = PyserialConsole(peer.url, reconnect_interval=0.05)
    try:
        peer.wait_connections(1)
        peer.hang_up_after_frame = True
        with pytest.raises(RigError) as caught:
            console.request("device.info", timeout=1.0)
        assert not isinstance(caught.value, DutError)
        assert "dropped while 'device.info' was in flight" in str(caught.value)
        assert isinstance(caught.value.__cause__, CommandTimeout)
        assert console.link_drops == 1
        # Without a drop, silence after the ACK is still the terminal's timeout.
        with pytest.raises(CommandTimeout):
            console.request("device.info", timeout=0.5)
    finally:
        console.close()


def test_an_event_awaited_across_a_drop_is_a_rig_fault_not_the_terminals(peer: Peer) -> None:
    console = PyserialConsole(peer.url, reconnect_interval=0.05)
    try:
        peer.wait_connections(1)
        events = console.events
        before = events.mark()
        # No drop: silence is the terminal's.
        with pytest.raises(EventTimeout):
            events.wait_for("sys.ready", since=before, timeout=0.2)
        peer.hang_up()
        deadline = time.monotonic() + WAIT
        while console.link_drops == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # The cursor was taken before the drop: the event may have been lost with it.
        with pytest.raises(RigError, match=r"dropped while the rig waited for 'sys\.ready'"):
            events.wait_for("sys.ready", since=before, timeout=0.2)
        # A cursor taken after the return: silence is the terminal's again.
        peer.wait_connections(2)
        after = events.mark()
        with pytest.raises(EventTimeout):
            events.wait_for("sys.ready", since=after, timeout=0.2)
    finally:
        console.close()


def test_a_wait_begun_after_the_link_went_for_good_is_a_rig_fault_at_once(peer: Peer) -> None:
    """The drop came before the cursor (a power cycle after the link died): nothing can
    arrive, and the wait says so at once instead of blaming the terminal's silence."""
    console = PyserialConsole(peer.url, reconnect_attempts=2, reconnect_interval=0.05)
    try:
        peer.wait_connections(1)
        peer.stop()
        deadline = time.monotonic() + WAIT
        while not console.link_down:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        cursor = console.events.mark()
        started = time.monotonic()
        with pytest.raises(RigError, match=r"no 'sys\.ready' can arrive: .*could not be re-e"):
            console.events.wait_for("sys.ready", since=cursor, timeout=30.0)
        assert time.monotonic() - started < 29.0  # it did not wait out the terminal's time
    finally:
        console.close()


def test_closing_the_console_during_a_reconnection_does_not_wait_out_the_attempts(
    peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    console = PyserialConsole(peer.url, reconnect_attempts=1000, reconnect_interval=0.05)
    peer.wait_connections(1)
    peer.stop()
    deadline = time.monotonic() + WAIT
    while console.link_drops == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    console.close()
    # The link joins its reader for 2 s at most, then says so: the reader must have
    # left the reconnection at once, not after 1000 attempts.
    assert "did not stop" not in caplog.text
