"""A time-stamped record of every byte that crossed a test port, for reports.

The link records raw chunks as they were written and read. ``render`` decodes each
direction again so the text shows the messages next to their bytes, and masks it:
the transcript is an attachment, and attachments must never show a full PAN.

Reads may be coalesced (``coalesce_window``): a network serial link (RFC 2217 through
ser2net, ``socket://``) hands the reader a few bytes at a time, and one line per read
would bury a request among hundreds. Adjacent chunks in the same direction, each within
the window of the one before and without a note, become one entry (at most
``HEX_LIMIT`` bytes, so coalescing never hides bytes from the hex column). Chunks are
withheld and masked exactly as before: key presses per chunk as they are recorded, PANs
over each direction's whole stream when rendered, so a PAN split over two reads is
masked whether or not they were coalesced.

Key presses are withheld as they are recorded: a ``keypad.press`` request may carry PIN
digits, which are never written anywhere, so its digit keys are kept as ``*`` (the frame
re-encoded, so it still decodes); the count of keys stays.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

from hil.masking import mask_text
from hil.protocol.framing import (
    ACK,
    Broken,
    Control,
    Decoded,
    Frame,
    FrameDecoder,
    NotAFrame,
    Skipped,
    encode_frame,
)
from hil.secrets import redact, redact_json_bytes

DIRECTIONS = ("tx", "rx")
HEX_LIMIT = 512  # bytes of hex shown per chunk; decoded JSON carries the content anyway

# Any run of 13+ digits (single spaces/dashes between) could be a PAN in ASCII. The hex
# column is masked without a Luhn test: over-masking hex costs nothing, a leak costs a
# certification.
_DIGIT_RUN = re.compile(rb"(?<![0-9])[0-9](?:[ -]?[0-9]){12,}(?![0-9])")


class TranscriptEntry(NamedTuple):
    """One recorded chunk (a named tuple: one is made per write and read of the port)."""

    at: float  # time.monotonic()
    direction: str
    data: bytes
    note: str = ""
    resync: bool = False


class Transcript:
    """Thread-safe, bounded list of port I/O. The link records into it; reports render it."""

    def __init__(self, *, max_entries: int = 100_000, coalesce_window: float = 0.0) -> None:
        """``coalesce_window``: seconds within which a chunk joins the entry before it
        (same direction, neither with a note); 0 keeps one entry per chunk."""
        if coalesce_window < 0:
            raise ValueError("coalesce_window must be >= 0")
        self._lock = threading.Lock()
        self._entries: deque[TranscriptEntry] = deque(maxlen=max_entries)
        self._dropped = 0
        self._t0 = time.monotonic()
        self.coalesce_window = coalesce_window
        # When the last entry last grew, and whether it may grow: a chunk with a note, a
        # resync or a marker closes it.
        self._last_chunk_at = 0.0
        self._open = False

    def record(self, direction: str, data: bytes, note: str = "") -> None:
        """Record one chunk written ("tx") or read ("rx")."""
        self._append(direction, data, note, resync=False)

    def record_resync(self, direction: str, note: str) -> None:
        """Record that the receiver gave up on partial frames in ``direction``.

        ``render`` needs this to drop the same partial frames from its own decoder.
        """
        self._append(direction, b"", note, resync=True)

    def record_marker(self, note: str) -> None:
        """Record an event of the link itself (dropped, re-established): an entry of its
        own, after which the receiving decoder starts afresh (a frame cut by the drop
        is shown as dropped, not glued to the first bytes of the new connection)."""
        self._append("rx", b"", note, resync=True)

    def _append(self, direction: str, data: bytes, note: str, *, resync: bool) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'tx' or 'rx', not {direction!r}")
        now = time.monotonic()
        if type(data) is not bytes:
            data = bytes(data)
        # Withheld per chunk, before any coalescing: withhold_keys recognises a whole
        # keypad.press frame, not one glued to an ACK. (Its test inline: every chunk
        # of the port passes here.)
        if b"keypad.press" in data:
            data = withhold_keys(data)
        plain = not note and not resync and bool(data)
        with self._lock:
            if plain and self._open and self._entries:
                last = self._entries[-1]
                if (
                    last.direction == direction
                    and now - self._last_chunk_at <= self.coalesce_window
                    and len(last.data) + len(data) <= HEX_LIMIT
                ):
                    self._entries[-1] = TranscriptEntry(last.at, direction, last.data + data)
                    self._last_chunk_at = now
                    return
            if self._entries.maxlen is not None and len(self._entries) == self._entries.maxlen:
                self._dropped += 1
            self._entries.append(TranscriptEntry(now, direction, data, note, resync))
            self._last_chunk_at = now
            self._open = plain and self.coalesce_window > 0

    def entries(self) -> list[TranscriptEntry]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        """Forget everything; times in ``render`` restart from here."""
        with self._lock:
            self._entries.clear()
            self._dropped = 0
            self._t0 = time.monotonic()
            self._open = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def render(self) -> str:
        """One line per chunk: ``+ms direction hex | decoded items | note``, PAN-masked."""
        with self._lock:
            entries = list(self._entries)
            dropped = self._dropped
            t0 = self._t0
        decoders = {d: FrameDecoder() for d in DIRECTIONS}
        masked = _masked_streams(entries)
        lines: list[str] = []
        if dropped:
            lines.append(f"({dropped} older entries dropped)")
        for entry, shown in zip(entries, masked, strict=True):
            decoder = decoders[entry.direction]
            items = decoder.flush_partial() if entry.resync else decoder.feed(entry.data)
            notes = [_describe(item) for item in items if not (entry.note and _is_control(item))]
            if entry.note:
                notes.append(entry.note)
            millis = (entry.at - t0) * 1000.0
            line = f"{millis:10.1f} ms  {entry.direction}  {_hex(shown)}"
            lines.append(" | ".join([line, *notes]))
        return mask_text("\n".join(lines) + ("\n" if lines else ""))


_KEYS_ARRAY = re.compile(rb'"keys"\s*:\s*\[[^\]]*\]')


def withhold_args(cmd: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """A request's arguments as a report may show them: ``keypad.press`` digit keys
    as ``*``."""
    shown = dict(args)
    keys = shown.get("keys")
    if cmd == "keypad.press" and isinstance(keys, list):
        shown["keys"] = ["*" if isinstance(k, str) and k.isdigit() else k for k in keys]
    return shown


def withhold_keys(data: bytes) -> bytes:
    """``data`` with the digit keys of any ``keypad.press`` request starred."""
    if b"keypad.press" not in data:
        return data
    items = FrameDecoder().feed(data)
    frames = [item for item in items if isinstance(item, Frame)]
    message = frames[0].message if len(frames) == 1 and len(items) == 1 else None
    if isinstance(message, dict) and isinstance(message.get("args"), dict):
        keys = message["args"].get("keys")
        if isinstance(keys, list):
            starred = ["*" if isinstance(k, str) and k.isdigit() else k for k in keys]
            return encode_frame({**message, "args": {**message["args"], "keys": starred}})
    # Not one whole frame: star every digit of the keys array (the frame will not decode).
    return _KEYS_ARRAY.sub(lambda m: re.sub(rb"[0-9]", b"*", m.group(0)), data)


def _is_control(item: Decoded) -> bool:
    return isinstance(item, Control)


def _describe(item: Decoded) -> str:
    if isinstance(item, Frame):
        return json.dumps(redact(item.message), separators=(",", ":"), ensure_ascii=False)
    if isinstance(item, Control):
        return "ACK" if item.byte == ACK else "NAK"
    if isinstance(item, Broken):
        return f"broken frame: {item.reason}"
    if isinstance(item, NotAFrame):
        return f"not a frame: {item.reason}"
    if isinstance(item, Skipped):
        return f"skipped {len(item.raw)} byte(s)"
    raise AssertionError(item)


def _hex(data: bytes) -> str:
    # Colons, not spaces: "22 74 79 ..." is a spaced digit run that mask_text would take
    # for a PAN (and PAN checks on reports would flag); "22:74:79" never is.
    if not data:
        return "-"
    if len(data) <= HEX_LIMIT:
        return data.hex(":")
    return f"{data[:HEX_LIMIT].hex(':')} ... (+{len(data) - HEX_LIMIT} bytes)"


def _masked_streams(entries: list[TranscriptEntry]) -> list[bytes]:
    """Each entry's bytes with PAN-like digit runs starred, runs split across chunks too."""
    shown = [e.data for e in entries]
    for direction in DIRECTIONS:
        indices = [i for i, e in enumerate(entries) if e.direction == direction]
        stream = bytearray(b"".join(entries[i].data for i in indices))
        redact_json_bytes(stream)  # passwords and templates: starred, whatever they hold
        for run in list(_DIGIT_RUN.finditer(stream)):
            digit_positions = [
                p for p in range(run.start(), run.end()) if 0x30 <= stream[p] <= 0x39
            ]
            for p in digit_positions[6:-4]:
                stream[p] = ord("*")
        offset = 0
        for i in indices:
            size = len(entries[i].data)
            shown[i] = bytes(stream[offset : offset + size])
            offset += size
    return shown
