"""The decoder's direct path (whole frames and ACK/NAK bytes taken straight from the
chunk) gives exactly what the buffered path gives, whatever follows them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hil.protocol.framing import (
    ACK,
    ETX,
    NAK,
    STX,
    Control,
    Decoded,
    Frame,
    FrameDecoder,
    crc16_ccitt_false,
    encode_frame,
)


class BufferedOnly(FrameDecoder):
    """The decoder as it was before the direct path: every byte through the buffer."""

    @staticmethod
    def _take_whole(data: bytes, out: list[Decoded]) -> int:
        return 0


def _frame(body: bytes, *, crc_delta: int = 0) -> bytes:
    length = len(body).to_bytes(2, "big")
    crc = (crc16_ccitt_false(length + body) + crc_delta) & 0xFFFF
    return bytes([STX]) + length + body + bytes([ETX]) + crc.to_bytes(2, "big")


_MESSAGES = st.dictionaries(
    st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=8), st.booleans()), max_size=4
)
# Pieces a chunk is made of: sound frames, ACK/NAK, frames refused for their content,
# a bad CRC, a short LEN, a cut frame, noise.
_PIECES = st.one_of(
    _MESSAGES.map(encode_frame),
    st.sampled_from([bytes([ACK]), bytes([NAK])]),
    st.sampled_from(
        [
            _frame(b'{"a":1,"a":2}'),
            _frame(b'{"a":NaN}'),
            _frame(b"[1,2]"),
            _frame(b'{"a":"\xff"}'),
            _frame(b'{"a":1}', crc_delta=1),
            bytes([STX, 0, 1, 0x7B, ETX, 0, 0]),
            encode_frame({"cut": True})[:-2],
            encode_frame({"stx": 1}).replace(b"1", bytes([STX])),
        ]
    ),
    st.binary(max_size=12),
)


def _both(stream: bytes) -> tuple[list[Decoded], list[Decoded]]:
    fast, slow = FrameDecoder(), BufferedOnly()
    return fast.feed(stream) + fast.flush_partial(), slow.feed(stream) + slow.flush_partial()


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=8))
def test_direct_path_gives_what_the_buffer_gives(pieces: list[bytes]) -> None:
    fast, slow = _both(b"".join(pieces))
    assert fast == slow
    for item in fast:
        assert type(item.raw) is bytes


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=8), st.integers(min_value=1, max_value=30))
def test_direct_path_in_chunks_gives_what_the_buffer_gives(pieces: list[bytes], cut: int) -> None:
    stream = b"".join(pieces)
    fast, slow = FrameDecoder(), BufferedOnly()
    got: list[Decoded] = []
    want: list[Decoded] = []
    for at in range(0, len(stream), cut):
        got += fast.feed(stream[at : at + cut])
        want += slow.feed(stream[at : at + cut])
    assert got + fast.flush_partial() == want + slow.flush_partial()


def test_a_chunk_of_ack_and_answer_is_taken_directly() -> None:
    answer: dict[str, Any] = {"type": "res", "id": 3, "ok": True, "result": {}}
    chunk = bytes([ACK]) + encode_frame(answer)
    decoder = FrameDecoder()
    assert decoder.feed(chunk) == [Control(ACK, bytes([ACK])), Frame(answer, chunk[1:])]
    assert not decoder.pending()


def test_what_follows_a_direct_frame_is_still_buffered() -> None:
    first = encode_frame({"n": 1})
    second = encode_frame({"n": 2})
    decoder = FrameDecoder()
    assert decoder.feed(first + second[:5]) == [Frame({"n": 1}, first)]
    assert decoder.pending()
    assert decoder.feed(second[5:]) == [Frame({"n": 2}, second)]


def test_a_bytearray_chunk_gives_bytes() -> None:
    raw = encode_frame({"n": 1})
    (item,) = FrameDecoder().feed(bytearray(raw))  # type: ignore[arg-type]
    assert type(item.raw) is bytes and item == Frame({"n": 1}, raw)
