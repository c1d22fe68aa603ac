"""The JSON-lines framing both channel ends share: whole lines in, objects out."""

from __future__ import annotations

import logging

import pytest

from hil.jsonlines.codec import MAX_LINE, LineDecoder, encode_line


def test_encode_is_one_compact_utf8_line() -> None:
    line = encode_line({"type": "swipe", "id": 1, "name": "测试"})
    assert line == '{"type":"swipe","id":1,"name":"测试"}\n'.encode()
    assert line.count(b"\n") == 1


def test_lines_split_across_chunks_come_out_whole_and_in_order() -> None:
    decoder = LineDecoder("test")
    wire = encode_line({"id": 1}) + encode_line({"id": 2}) + encode_line({"id": 3})
    got = [m for i in range(0, len(wire), 5) for m in decoder.feed(wire[i : i + 5])]
    assert got == [{"id": 1}, {"id": 2}, {"id": 3}]


def test_unfinished_line_waits_for_its_newline() -> None:
    decoder = LineDecoder("test")
    assert decoder.feed(b'{"id":') == []
    assert decoder.feed(b"7}\n") == [{"id": 7}]


@pytest.mark.parametrize(
    "garbage",
    [b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"", b'{"id": 1, "id": 2}', b'{"v": NaN}'],
)
def test_lines_that_are_not_json_objects_are_skipped(garbage: bytes) -> None:
    decoder = LineDecoder("test")
    assert decoder.feed(garbage + b"\n" + encode_line({"id": 1})) == [{"id": 1}]


def test_a_line_longer_than_the_limit_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decoder = LineDecoder("maghead")
    with caplog.at_level(logging.WARNING):
        assert decoder.feed(b"x" * (MAX_LINE + 1)) == []
    assert "maghead: line longer than" in caplog.text
    # The channel goes on: the rest of the long line is one bad line, then messages flow.
    assert decoder.feed(b"tail\n" + encode_line({"id": 2})) == [{"id": 2}]
