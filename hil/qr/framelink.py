"""The camera channel: how a simulated scanner pulls the frames a QR screen shows.

Protocol ``pos-hil camera/1``, TCP on loopback (the rig's ``sim`` QR screen listens,
the terminal's camera connects to the ``camera=ADDRESS:PORT`` channel):

- The camera sends one request byte ``F`` (0x46): "the frame you show now".
- The screen answers with a 16-byte header and the pixels::

      magic  b"HQF1"   4 bytes
      seq    u32 BE    changes each time the screen shows something new (show/blank)
      width  u16 BE    pixels
      height u16 BE    pixels
      length u32 BE    = width * height
      pixels           length bytes, 8-bit grey, row-major, 0 = black

- Any other request byte: the screen closes the connection. One connection may
  ask for any number of frames; several cameras may be connected at once.

Raw grey frames keep a pull at well under a millisecond on loopback (640x480 is
300 KiB); PNG would cost more to encode than the decode we are timing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from hil.tcpservice import ClientConnection, TcpService

if TYPE_CHECKING:
    from hil.qr.render import Image

log = logging.getLogger(__name__)

REQUEST_FRAME = b"F"
MAGIC = b"HQF1"
HEADER = struct.Struct(">4sIHHI")
MAX_PIXELS = 8192 * 8192


class RawFrame(NamedTuple):
    """One frame as it crossed the link: 8-bit grey pixels, row-major."""

    seq: int
    width: int
    height: int
    pixels: bytes

    def image(self) -> Image:
        """The pixels as a grey image (numpy loads here, not with this module)."""
        import numpy as np

        return np.frombuffer(self.pixels, dtype=np.uint8).reshape(self.height, self.width)


class FrameLinkError(OSError):
    """The camera channel failed: not listening, closed, or answered garbage."""


FrameSource = Callable[[], "tuple[int, Image]"]


class FrameServer(TcpService):
    """Serves ``source()`` (seq, grey image) to every camera that asks. Loopback only.

    Listens from construction until ``close``."""

    def __init__(self, source: FrameSource, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the frame server listens on loopback only, not {host!r}")
        super().__init__(
            listen=(host, port),
            name="qr_screen",
            description="camera channel",
            thread_name="qr-frame-server",
        )
        self._source = source
        self.start()

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"{host}:{port}"

    async def serve_client(
        self, client: ClientConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        import numpy as np  # the rig's side has it loaded already (the screen renders)

        try:
            while True:
                request = await reader.read(1)
                if request != REQUEST_FRAME:
                    return  # closed by the camera, or a request we do not know
                seq, image = self._source()
                height, width = image.shape
                header = HEADER.pack(MAGIC, seq & 0xFFFFFFFF, width, height, width * height)
                writer.write(header + np.ascontiguousarray(image, dtype=np.uint8).tobytes())
                await writer.drain()
        except OSError:  # the camera went away mid-frame
            return

    def close(self) -> None:
        self.stop()


def parse_endpoint(text: str) -> tuple[str, int]:
    """``ADDRESS:PORT`` -> (address, port); FrameLinkError when malformed."""
    address, sep, port = text.strip().rpartition(":")
    if not sep or not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise FrameLinkError(f"camera channel {text!r} is not ADDRESS:PORT")
    return address.strip("[]"), int(port)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise FrameLinkError(f"camera channel closed after {len(chunks)} of {size} bytes")
        chunks += chunk
    return bytes(chunks)


class FrameClient:
    """The camera end: connects lazily, reconnects once after a broken connection."""

    def __init__(self, endpoint: str, *, timeout: float = 2.0) -> None:
        self.endpoint = endpoint
        self._address = parse_endpoint(endpoint)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection(self._address, timeout=self._timeout)
        except OSError as e:
            raise FrameLinkError(
                f"camera {self.endpoint}: {e.strerror or e.__class__.__name__}"
            ) from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _pull(self, sock: socket.socket) -> RawFrame:
        sock.sendall(REQUEST_FRAME)
        magic, seq, width, height, length = HEADER.unpack(_recv_exactly(sock, HEADER.size))
        if magic != MAGIC:
            raise FrameLinkError(f"camera {self.endpoint}: bad frame magic {magic!r}")
        if length != width * height or not 0 < length <= MAX_PIXELS:
            raise FrameLinkError(
                f"camera {self.endpoint}: frame {width}x{height} with {length} bytes"
            )
        return RawFrame(seq, width, height, _recv_exactly(sock, length))

    def grab(self) -> tuple[int, Image]:
        """(seq, grey frame) of what the screen shows now; FrameLinkError if it cannot.

        A broken connection is retried once on a fresh one (the screen may have been
        restarted); a second failure is the answer.
        """
        frame = self.grab_raw()
        return frame.seq, frame.image()

    def grab_raw(self) -> RawFrame:
        """``grab``'s frame as the bytes that came, without numpy: a terminal that
        needs only a hash or a mean of the pixels does not load it (about 0.1 s)."""
        with self._lock:
            last: Exception | None = None
            for _ in range(2):
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    return self._pull(self._sock)
                except (OSError, struct.error) as e:
                    last = e
                    if self._sock is not None:
                        self._sock.close()
                        self._sock = None
            if isinstance(last, FrameLinkError):
                raise last
            raise FrameLinkError(f"camera {self.endpoint}: {last}") from last

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
