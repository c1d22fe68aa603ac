"""Transcript coalescing: the many small reads of a network serial link become few
entries, and withholding and masking work across them as across single reads."""

from __future__ import annotations

import time

import pytest

from hil.masking import contains_full_pan
from hil.protocol.framing import ACK, encode_frame
from hil.protocol.transcript import HEX_LIMIT, Transcript

EVENT = {"type": "evt", "seq": 1, "name": "sys.ready", "ts_ms": 5, "data": {}}
PAN = "4111111111111111"
CARD_READ = {"type": "evt", "seq": 2, "name": "card.read", "ts_ms": 9, "data": {"pan": PAN}}


def byte_by_byte(transcript: Transcript, direction: str, data: bytes) -> None:
    for i in range(len(data)):
        transcript.record(direction, data[i : i + 1])


def test_one_byte_reads_within_the_window_make_one_entry_that_still_decodes() -> None:
    transcript = Transcript(coalesce_window=60.0)
    frame = encode_frame(EVENT)
    byte_by_byte(transcript, "rx", frame)
    entries = transcript.entries()
    assert len(entries) == 1
    assert entries[0].data == frame and entries[0].direction == "rx"
    lines = transcript.render().splitlines()
    assert len(lines) == 1
    assert '"name":"sys.ready"' in lines[0]


def test_without_a_window_every_read_keeps_its_own_entry() -> None:
    transcript = Transcript()
    frame = encode_frame(EVENT)
    byte_by_byte(transcript, "rx", frame)
    assert len(transcript) == len(frame)
    assert '"name":"sys.ready"' in transcript.render()


def test_a_change_of_direction_a_note_or_a_pause_starts_a_new_entry() -> None:
    transcript = Transcript(coalesce_window=60.0)
    transcript.record("rx", b"\x02")
    transcript.record("tx", bytes((ACK,)))  # other direction
    transcript.record("tx", b"\x02", "retransmit 1/3")  # a note stays on its own line
    transcript.record("tx", b"\x03")  # nothing joins a noted entry
    transcript.record("tx", b"\x04")  # ... but the next plain one joins this
    assert [(e.direction, e.data, e.note) for e in transcript.entries()] == [
        ("rx", b"\x02", ""),
        ("tx", b"\x06", ""),
        ("tx", b"\x02", "retransmit 1/3"),
        ("tx", b"\x03\x04", ""),
    ]

    paused = Transcript(coalesce_window=0.001)
    paused.record("rx", b"a")
    time.sleep(0.05)  # far beyond the 1 ms window, however loaded the machine
    paused.record("rx", b"b")
    assert len(paused) == 2


def test_an_entry_stops_growing_at_the_hex_limit_so_no_byte_is_hidden() -> None:
    transcript = Transcript(coalesce_window=60.0)
    for _ in range(HEX_LIMIT * 2 + 1):
        transcript.record("rx", b"\x00")
    sizes = [len(e.data) for e in transcript.entries()]
    assert sizes == [HEX_LIMIT, HEX_LIMIT, 1]
    assert "..." not in transcript.render()


def test_a_pan_split_over_reads_is_masked_coalesced_or_not() -> None:
    frame = encode_frame(CARD_READ)
    start = frame.index(PAN.encode())
    for window in (0.0, 60.0):
        transcript = Transcript(coalesce_window=window)
        # the PAN arrives over three reads, then a pause splits the entries mid-PAN
        transcript.record("rx", frame[: start + 5])
        transcript.record("rx", frame[start + 5 : start + 9])
        transcript.record_marker("a marker between the halves")
        transcript.record("rx", frame[start + 9 :])
        text = transcript.render()
        assert not contains_full_pan(text), text
        assert PAN.encode().hex(":") not in text
        assert PAN[6:12].encode().hex(":") not in text


def test_a_coalesced_pan_is_masked_in_hex_and_decoded_text() -> None:
    transcript = Transcript(coalesce_window=60.0)
    byte_by_byte(transcript, "rx", encode_frame(CARD_READ))
    assert len(transcript) == 1
    text = transcript.render()
    assert not contains_full_pan(text)
    assert "411111******1111" in text


def test_key_presses_are_withheld_before_they_are_coalesced() -> None:
    transcript = Transcript(coalesce_window=60.0)
    press = encode_frame(
        {"type": "req", "id": 3, "cmd": "keypad.press", "args": {"keys": ["1", "2", "OK"]}}
    )
    transcript.record("tx", bytes((ACK,)))
    transcript.record("tx", press)  # one write, joined to the ACK before it
    entries = transcript.entries()
    assert len(entries) == 1
    text = transcript.render()
    assert '"keys":["*","*","OK"]' in text, "the frame still decodes, digits starred"
    assert b'"1"' not in entries[0].data and b'"2"' not in entries[0].data


def test_a_marker_ends_the_entry_and_drops_the_frame_the_drop_cut() -> None:
    transcript = Transcript(coalesce_window=60.0)
    frame = encode_frame(EVENT)
    transcript.record("rx", frame[:10])  # the link dropped here
    transcript.record_marker("link to rfc2217://127.0.0.1:1 dropped")
    byte_by_byte(transcript, "rx", frame)  # the new connection, a whole frame
    lines = transcript.render().splitlines()
    assert len(lines) == 3
    assert "link to rfc2217://127.0.0.1:1 dropped" in lines[1]
    assert "incomplete frame" in lines[1], "the cut frame is shown as dropped"
    assert '"name":"sys.ready"' in lines[2], "not glued to the bytes before the drop"


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError):
        Transcript(coalesce_window=-1)
