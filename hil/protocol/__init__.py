"""Test-port protocol v1: framing, link, rig session and terminal endpoint.

See docs/test-port-protocol.md for the wire format.
"""

from __future__ import annotations

from hil.protocol.endpoint import CommandFailed, EndpointStats, TerminalEndpoint
from hil.protocol.framing import (
    ACK,
    ETX,
    NAK,
    STX,
    Broken,
    Control,
    Frame,
    FrameDecoder,
    NotAFrame,
    Skipped,
    crc16_ccitt_false,
    encode_body,
    encode_frame,
)
from hil.protocol.link import Link, LinkStats
from hil.protocol.session import ConsoleSession, Event, EventLog, EventTimeout
from hil.protocol.transcript import Transcript
from hil.protocol.transport import FdPort, SerialLike, open_serial

__all__ = [
    "ACK",
    "ETX",
    "NAK",
    "STX",
    "Broken",
    "CommandFailed",
    "ConsoleSession",
    "Control",
    "EndpointStats",
    "Event",
    "EventLog",
    "EventTimeout",
    "FdPort",
    "Frame",
    "FrameDecoder",
    "Link",
    "LinkStats",
    "NotAFrame",
    "SerialLike",
    "Skipped",
    "TerminalEndpoint",
    "Transcript",
    "crc16_ccitt_false",
    "encode_body",
    "encode_frame",
    "open_serial",
]
