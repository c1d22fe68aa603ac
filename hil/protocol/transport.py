"""Port adapters: the few calls the link needs from a byte pipe.

The rig side opens any pyserial URL; the terminal side (the simulator) usually holds
the master end of a pty as a bare file descriptor, hence ``FdPort``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import termios
import threading
import time
from collections.abc import Callable
from typing import Protocol, cast, runtime_checkable

import serial

try:
    from serial.serialposix import Serial as _PosixSerial
except ImportError:  # not a posix system: every port takes the generic path
    _PosixSerial = None

from hil.errors import RigError


@runtime_checkable
class SerialLike(Protocol):
    """What the link needs from a port. pyserial's ``Serial`` classes fit as they are.

    ``read`` must return ``b""`` when ``timeout`` seconds pass without data, so the
    reader thread can notice stalls and shutdown.
    """

    timeout: float | None

    def read(self, size: int) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


def open_serial(url: str, *, baudrate: int = 115200, timeout: float = 0.05) -> SerialLike:
    """Open any pyserial URL: a device or pty path, ``socket://``, ``rfc2217://``, ``loop://``."""
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
    except (OSError, ValueError) as e:
        # SerialException is an OSError; an unknown URL scheme is a ValueError.
        raise RigError(f"cannot open test port {url!r}: {e}", instrument=url) from e
    return cast(SerialLike, port)


def read_some_of(port: SerialLike) -> Callable[[int], bytes] | None:
    """A call returning whatever ``port`` has ready (up to n bytes, waiting at most its
    timeout for the first byte) in one go, or None if the port cannot do that.

    pyserial's ``read(n)`` waits for all n bytes, so a reader must otherwise read one
    byte, ask ``in_waiting`` and read again: three more system calls per chunk. For a
    local serial device or pty (pyserial's posix ``Serial``) this reads the descriptor
    directly, as pyserial's own ``read`` does (same abort pipe for ``cancel_read``,
    same error for a device that vanished); ``FdPort`` has ``read_some``.
    """
    method = getattr(port, "read_some", None)
    if callable(method):
        return cast(Callable[[int], bytes], method)
    if type(port) is not _PosixSerial:
        return None
    serial_port = cast(serial.Serial, port)
    # A poll object made once per descriptor pair (select builds its sets on every
    # call); made again if pyserial reopened the port under other descriptors.
    poller = select.poll()
    watched_fd: int | None = None
    watched_abort: int | None = None

    def read_some(size: int) -> bytes:
        nonlocal poller, watched_fd, watched_abort
        fd = serial_port.fd
        abort = serial_port.pipe_abort_read_r
        if fd != watched_fd or abort != watched_abort:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(abort, select.POLLIN)
            watched_fd, watched_abort = fd, abort
        timeout = serial_port.timeout
        try:
            ready = poller.poll(None if timeout is None else timeout * 1000)
            if not ready:
                return b""
            for ready_fd, _ in ready:
                if ready_fd == abort:
                    os.read(abort, 1000)
                    return b""
            data = os.read(fd, size)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return b""
            raise serial.SerialException(f"read failed: {e}") from e
        if not data:
            raise serial.SerialException(
                "device reports readiness to read but returned no data "
                "(device disconnected or multiple access on port?)"
            )
        return data

    return read_some


def write_of(port: SerialLike) -> Callable[[bytes], object]:
    """``port.write``, or for pyserial's posix ``Serial`` one that first tries a single
    ``os.write`` of the whole: pyserial's write then waits in a ``select`` for the
    port to be writable again even when every byte went out (a system call more per
    frame and per ACK). Whatever is left (a full buffer) goes through pyserial's own
    write, with its write timeout and errors; so do the errors of the first try."""
    if type(port) is not _PosixSerial:
        return port.write
    serial_port = cast(serial.Serial, port)

    def write(data: bytes) -> object:
        fd = serial_port.fd
        if fd is None:
            return serial_port.write(data)  # closed: pyserial says so its own way
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            written = 0
        except OSError:
            return serial_port.write(data)
        if written < len(data):
            serial_port.write(data[written:])
        return len(data)

    return write


def in_waiting(port: SerialLike) -> int:
    """Bytes ready to read without blocking, or 0 if the port cannot tell."""
    try:
        value = getattr(port, "in_waiting", 0)
    except (OSError, ValueError):
        return 0
    return value if isinstance(value, int) and value > 0 else 0


class FdPort:
    """A ``SerialLike`` over a raw file descriptor (a pty master, one end of a socketpair).

    The descriptor is switched to non-blocking so a write to a peer that stopped
    reading times out instead of hanging the writer forever. When the far end is
    gone (EIO on a pty master whose slave is closed, EOF on a socket), ``read``
    waits its timeout and returns ``b""``: the terminal keeps running and picks up
    again when the rig reopens the port.
    """

    def __init__(
        self,
        fd: int,
        *,
        timeout: float | None = 0.05,
        write_timeout: float | None = 2.0,
        close_fd: bool = False,
    ) -> None:
        self.fd = fd
        self.timeout = timeout
        self.write_timeout = write_timeout
        self._close_fd = close_fd
        self._closed = threading.Event()
        self._open = True  # what _closed says, read without a call on every read/write
        os.set_blocking(fd, False)
        # Made once: select builds its descriptor sets on every call.
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)

    @property
    def in_waiting(self) -> int:
        try:
            buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int(struct.unpack("i", buf)[0])

    def read(self, size: int = 1) -> bytes:
        if not self._open:
            raise OSError(errno.EBADF, "port is closed")
        timeout = self.timeout
        ready = self._poller.poll(None if timeout is None else timeout * 1000)
        if not ready:
            return b""
        if ready[0][1] & select.POLLNVAL:  # fd closed underneath us
            raise OSError(errno.EBADF, f"file descriptor {self.fd} is not open")
        try:
            data = os.read(self.fd, size)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            # EIO/EOF stays "readable"; waiting keeps the reader from spinning.
            self._closed.wait(timeout if timeout is not None else 0.05)
        return data

    def read_some(self, size: int) -> bytes:
        """Whatever is ready, up to ``size`` bytes, waiting at most ``timeout`` for the
        first: a read never waits for more once something has arrived."""
        return self.read(size)

    def write(self, data: bytes) -> int:
        if not self._open:
            raise OSError(errno.EBADF, "port is closed")
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0
        if written == len(data):  # nearly always: a frame or an ACK fits in one write
            return written
        view = memoryview(data)[written:]
        deadline = None if self.write_timeout is None else time.monotonic() + self.write_timeout
        while view:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"write timed out with {len(view)} of {len(data)} bytes unsent")
            select.select([], [self.fd], [], left)
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                written = 0
            view = view[written:]
        return len(data)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._open = False
        self._closed.set()
        if self._close_fd:
            os.close(self.fd)
