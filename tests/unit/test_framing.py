from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.protocol.framing import (
    ACK,
    ETX,
    NAK,
    OVERHEAD,
    STX,
    Broken,
    Control,
    Decoded,
    Frame,
    FrameDecoder,
    NotAFrame,
    Skipped,
    crc16_ccitt_false,
    describe,
    encode_body,
    encode_frame,
)

REQ = {"type": "req", "id": 7, "cmd": "selfcheck.run", "args": {"items": ["comm"]}}


def frame_with(body: bytes, *, crc: int | None = None, etx: int = ETX) -> bytes:
    length = len(body).to_bytes(2, "big")
    value = crc16_ccitt_false(length + body) if crc is None else crc
    return bytes([STX]) + length + body + bytes([etx]) + value.to_bytes(2, "big")


def decode_all(data: bytes, *, chunk: int | None = None) -> list[Decoded]:
    decoder = FrameDecoder()
    if chunk is None:
        out = decoder.feed(data)
    else:
        out = []
        for i in range(0, len(data), chunk):
            out += decoder.feed(data[i : i + chunk])
    # What the link does when the line goes quiet mid-frame.
    out += decoder.flush_partial()
    assert not decoder.pending()
    return out


def frames(items: list[Decoded]) -> list[dict[str, Any]]:
    return [i.message for i in items if isinstance(i, Frame)]


def broken(items: list[Decoded]) -> list[Broken]:
    return [i for i in items if isinstance(i, Broken)]


def not_frames(items: list[Decoded]) -> list[NotAFrame]:
    return [i for i in items if isinstance(i, NotAFrame)]


# -- CRC and encoding ----------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def test_crc_of_nothing_is_init() -> None:
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_crc_can_be_continued() -> None:
    assert crc16_ccitt_false(b"6789", crc16_ccitt_false(b"12345")) == 0x29B1


def _crc_as_the_doc_writes_it(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_crc_matches_the_documented_bitwise_algorithm(data: bytes) -> None:
    assert crc16_ccitt_false(data) == _crc_as_the_doc_writes_it(data)


def test_encode_layout() -> None:
    raw = encode_frame({"a": 1})
    body = b'{"a":1}'
    assert raw[0] == STX
    assert raw[1:3] == len(body).to_bytes(2, "big")
    assert raw[3:-3] == body
    assert raw[-3] == ETX
    assert int.from_bytes(raw[-2:], "big") == crc16_ccitt_false(raw[1:-3])


def test_body_is_compact_utf8_json() -> None:
    raw = encode_frame({"text": "自检中", "list": [1, 2]})
    assert raw[3:-3] == '{"text":"自检中","list":[1,2]}'.encode()


def test_encode_body_limits() -> None:
    with pytest.raises(ValueError, match="empty"):
        encode_body(b"")
    with pytest.raises(ValueError, match="65535"):
        encode_body(b"x" * 65536)
    assert len(encode_body(b"x" * 65535)) == 65535 + 6


def test_encode_refuses_non_json() -> None:
    with pytest.raises(ValueError):
        encode_frame({"x": float("nan")})
    with pytest.raises(TypeError):
        encode_frame({"x": object()})
    with pytest.raises(TypeError):
        encode_frame([1, 2])  # type: ignore[arg-type]


def test_describe_names_without_content() -> None:
    assert describe(REQ) == "req 'selfcheck.run' id 7"
    assert describe({"type": "res", "id": 3, "result": {"pan": "x"}}) == "res id 3"
    assert describe({"type": "evt", "name": "a.b", "seq": 2}) == "evt 'a.b' seq 2"


# -- decoding ------------------------------------------------------------------


def test_round_trip() -> None:
    items = decode_all(encode_frame(REQ))
    assert items == [Frame(REQ, encode_frame(REQ))]


def test_two_frames_in_one_feed() -> None:
    other = {"type": "evt", "seq": 1, "name": "x.y", "ts_ms": 5, "data": {}}
    assert frames(decode_all(encode_frame(REQ) + encode_frame(other))) == [REQ, other]


def test_split_into_single_bytes() -> None:
    decoder = FrameDecoder()
    raw = encode_frame(REQ)
    out: list[Decoded] = []
    for i, byte in enumerate(raw):
        out += decoder.feed(bytes([byte]))
        assert decoder.pending() == (i < len(raw) - 1)
    assert frames(out) == [REQ]


def test_ack_and_nak_between_frames_are_controls() -> None:
    items = decode_all(bytes([ACK]) + encode_frame(REQ) + bytes([NAK]))
    assert items[0] == Control(ACK, bytes([ACK]))
    assert isinstance(items[1], Frame)
    assert items[2] == Control(NAK, bytes([NAK]))


@pytest.mark.parametrize("control", [ACK, NAK])
def test_len_byte_equal_to_control_is_data(control: int) -> None:
    body = json.dumps({"k": "v"}).encode()
    padded = b" " * (0x100 + control - len(body)) + body  # JSON allows leading blanks
    raw = frame_with(padded)
    assert raw[2] == control
    assert decode_all(raw) == [Frame({"k": "v"}, raw)]


def test_raw_control_bytes_in_body_are_data() -> None:
    # Unescaped control characters are not valid JSON, so the frame is broken; but its
    # ACK/NAK bytes must not be reported as controls.
    raw = frame_with(b'{"a":"' + bytes([ACK, NAK]) + b'"}')
    items = decode_all(raw)
    assert [type(i) for i in items] == [Broken]
    assert items[0].raw == raw


def test_crc_bytes_equal_to_control_are_data() -> None:
    # Find a body whose CRC contains a NAK byte: it must still decode as one frame.
    for n in range(5000):
        raw = encode_frame({"n": n})
        if NAK in raw[-2:] or ACK in raw[-2:]:
            break
    else:
        pytest.fail("no CRC with a control byte found")
    assert decode_all(raw) == [Frame({"n": n}, raw)]


def test_bad_crc() -> None:
    raw = frame_with(b'{"a":1}', crc=0x1234)
    items = decode_all(raw)
    [b] = broken(items)
    expected = crc16_ccitt_false(raw[1:-3])
    assert b.reason == f"bad CRC: got 0x1234, expected 0x{expected:04X}"
    assert b.raw == raw
    assert not frames(items)


def test_missing_etx_is_not_a_frame() -> None:
    # Nothing confirms where this candidate ends, so nothing says a sender wrote it.
    raw = frame_with(b'{"a":1}', etx=0x00)
    items = decode_all(raw)
    assert broken(items) == []
    [n] = not_frames(items)
    assert n == NotAFrame("missing ETX: byte 0x00 after LEN 7", raw[:-2])


@pytest.mark.parametrize("length", [0, 1])
def test_len_that_cannot_announce_an_object_is_not_a_frame(length: int) -> None:
    stray = bytes([STX]) + length.to_bytes(2, "big")
    items = decode_all(stray + encode_frame(REQ))
    assert broken(items) == []
    assert not_frames(items) == [NotAFrame(f"LEN {length} cannot announce a JSON object", stray)]
    assert frames(items) == [REQ]


def test_truncated_frame_stays_pending_then_flushes() -> None:
    decoder = FrameDecoder()
    raw = encode_frame(REQ)
    assert decoder.feed(raw[:10]) == []
    assert decoder.pending()
    n, *rest = decoder.flush_partial()
    assert n == NotAFrame(f"incomplete frame: got 10 of {len(raw)} bytes", raw[:10])
    assert not decoder.pending()
    assert all(isinstance(i, Skipped) for i in rest)
    assert decoder.flush_partial() == []
    # The decoder is usable afterwards.
    assert frames(decoder.feed(raw)) == [REQ]


def test_truncated_before_len() -> None:
    decoder = FrameDecoder()
    decoder.feed(bytes([STX, 0]))
    [n, skipped] = decoder.flush_partial()
    assert n == NotAFrame("incomplete frame: 2 byte(s), LEN not received", bytes([STX, 0]))
    assert skipped == Skipped(b"\x00")


@pytest.mark.parametrize("count", [1, 10, 200])
def test_stray_stx_run_costs_the_next_frame_nothing(count: int) -> None:
    # Each stray STX sees another STX (or the frame's own ETX) inside the BODY its LEN
    # announces, so it is dropped at once: no NAK, no wait for the stall timer.
    decoder = FrameDecoder()
    items = decoder.feed(bytes([STX]) * count + encode_frame(REQ))
    assert not decoder.pending()
    assert [type(i) for i in items] == [NotAFrame] * count + [Frame]
    assert frames(items) == [REQ]


def test_stray_stx_with_huge_len_ends_where_the_next_frame_starts() -> None:
    decoder = FrameDecoder()
    stray = bytes([STX, 0xFF, 0xF0]) + b"line noise "
    assert decoder.feed(stray) == []
    assert decoder.pending()  # it could still be a frame
    items = decoder.feed(encode_frame(REQ))
    assert items[0] == NotAFrame(
        "STX at byte 14, inside the 65520-byte BODY LEN announced", stray + bytes([STX])
    )
    assert frames(items) == [REQ]
    assert broken(items) == []


def _event_with_body_of(size: int) -> bytes:
    message: dict[str, Any] = {"type": "evt", "seq": 1, "name": "x", "ts_ms": 0, "data": {}}
    message["data"]["pad"] = ""
    message["data"]["pad"] = "x" * (size - len(encode_frame(message)) + OVERHEAD)
    raw = encode_frame(message)
    assert len(raw) - OVERHEAD == size
    return raw


@pytest.mark.parametrize(
    ("noise", "size"),
    [
        (bytes([STX]), 513),  # LEN 02 02 = 514: ends exactly on the frame's ETX
        (bytes([STX]) * 10, 513),
        (b"boot\r\n" + bytes([STX]), 513),
        (bytes([STX, 0x01]), 256),  # LEN 01 02 = 258
    ],
)
def test_false_start_ending_on_the_next_frames_etx_is_not_naked(noise: bytes, size: int) -> None:
    # The false candidate has its ETX where its LEN says, only its CRC is wrong; what
    # gives it away is the frame that starts inside its LEN.
    frame = _event_with_body_of(size)
    items = FrameDecoder().feed(noise + frame)
    assert broken(items) == []
    assert [i.raw for i in items if isinstance(i, Frame)] == [frame]
    assert any(n.reason.endswith("and a frame starts inside LEN") for n in not_frames(items))


def test_etx_inside_the_announced_body_ends_a_false_start() -> None:
    # A stray STX just before a frame's last bytes: the frame's ETX lands in its BODY.
    items = decode_all(bytes([STX, 0x00, 0x40]) + encode_frame(REQ)[-5:])
    assert not_frames(items)[0].reason == "ETX at byte 5, inside the 64-byte BODY LEN announced"
    assert broken(items) == []


def test_ack_swallowed_by_a_false_start_is_recovered() -> None:
    # The peer's ACK right after a stray STX first looks like LEN, then comes back out.
    items = decode_all(bytes([STX, ACK]) + encode_frame(REQ))
    assert [type(i) for i in items] == [NotAFrame, Control, Frame]


def test_silence_flushes_every_pending_false_start_at_once() -> None:
    # Stray STX bytes and then the peer's ACK, then nothing: the ACK must come out after
    # one stall, not one stall per STX.
    decoder = FrameDecoder()
    first = decoder.feed(bytes([STX]) * 10 + bytes([ACK]))
    assert [type(i) for i in first] == [NotAFrame] * 7  # the last three could be frames
    items = decoder.flush_partial()
    assert [type(i) for i in items] == [NotAFrame] * 3 + [Control]
    assert not decoder.pending()


def test_invalid_utf8() -> None:
    [b] = broken(decode_all(frame_with(b'{"a":"\xff"}')))
    assert b.reason == "invalid UTF-8 at byte 6"


def test_invalid_json() -> None:
    [b] = broken(decode_all(frame_with(b'{"a":')))
    assert b.reason.startswith("invalid JSON")


def test_nan_is_not_json() -> None:
    [b] = broken(decode_all(frame_with(b'{"a":NaN}')))
    assert b.reason.startswith("invalid JSON")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"type":"res","id":7,"ok":true,"ok":false}', "not strict JSON: duplicate key 'ok'"),
        (b'{"a":{"b":1,"b":2}}', "not strict JSON: duplicate key 'b'"),
        (b'{"a":-Infinity}', "invalid JSON: -Infinity is not JSON"),
        (b'{"a":1e999}', "not strict JSON: number 1e999 is beyond the range of a double"),
        (b'{"a":"\\ud800"}', "not strict JSON: unpaired surrogate \\ud800 in a string"),
    ],
)
def test_body_that_is_not_strict_json_is_naked_and_skipped_whole(body: bytes, reason: str) -> None:
    # Two parsers would read these two ways: the receiver must not pick one.
    raw = frame_with(body)
    items = decode_all(raw + encode_frame(REQ))
    assert items == [Broken(reason, raw, well_delimited=True), Frame(REQ, encode_frame(REQ))]


def test_deep_nesting_is_broken_not_a_crash() -> None:
    [b] = broken(decode_all(frame_with(b"[" * 60000)))
    assert b.reason.startswith("invalid JSON")


def test_json_array_is_not_a_message() -> None:
    [b] = broken(decode_all(frame_with(b"[1,2]")))
    assert b.reason == "JSON is not an object but list"


def test_sound_frame_with_bad_content_is_skipped_whole() -> None:
    # ETX and CRC check out, so the boundaries are trusted: an ACK byte in its body
    # must not surface as a Control.
    items = decode_all(frame_with(b"\x06\x15") + encode_frame(REQ))
    assert [type(i) for i in items] == [Broken, Frame]


def test_garbage_before_and_between_frames() -> None:
    garbage = b"boot: ok\r\n\x00\xff"
    items = decode_all(garbage + encode_frame(REQ) + b"noise" + encode_frame(REQ))
    assert frames(items) == [REQ, REQ]
    skipped = b"".join(i.raw for i in items if isinstance(i, Skipped))
    assert skipped == garbage + b"noise"


def test_resync_scans_from_byte_after_a_false_stx() -> None:
    good = encode_frame(REQ)
    # A candidate whose LEN covers the start of the good frame, then rescan.
    bad = bytes([STX, 0x00, 0x04]) + b"ab"
    items = decode_all(bad + good)
    assert not_frames(items)[0].reason.startswith("STX at byte 5")
    assert frames(items) == [REQ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_mixed_stream_in_chunks(chunk: int) -> None:
    stream = (
        b"\x00junk"
        + encode_frame(REQ)
        + bytes([ACK])
        + frame_with(b'{"a":1}', crc=0)
        + encode_frame({"type": "evt", "seq": 1, "name": "自检中", "ts_ms": 0, "data": {}})
        + bytes([NAK])
    )
    items = decode_all(stream, chunk=chunk)
    assert [m.get("type") for m in frames(items)] == ["req", "evt"]
    controls = [i.byte for i in items if isinstance(i, Control)]
    assert controls[0] == ACK and controls[-1] == NAK
    assert any(b.reason.startswith("bad CRC") for b in broken(items))


# -- properties ----------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


@settings(deadline=None)
@given(messages)
def test_any_message_round_trips(message: dict[str, Any]) -> None:
    raw = encode_frame(message)
    assert decode_all(raw) == [Frame(message, raw)]


@settings(deadline=None)
@given(messages, st.integers(min_value=1, max_value=16))
def test_any_message_round_trips_in_chunks(message: dict[str, Any], chunk: int) -> None:
    assert frames(decode_all(encode_frame(message), chunk=chunk)) == [message]


def _feed_in_pieces(decoder: FrameDecoder, stream: bytes, cuts: list[int]) -> list[Decoded]:
    out: list[Decoded] = []
    position = 0
    i = 0
    while position < len(stream):
        size = cuts[i % len(cuts)]
        out += decoder.feed(stream[position : position + size])
        position += size
        i += 1
    return out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=40), min_size=1))
def test_noise_never_raises_and_costs_the_following_frame_nothing(
    garbage: bytes, cuts: list[int]
) -> None:
    decoder = FrameDecoder()
    out = _feed_in_pieces(decoder, garbage + encode_frame(REQ), cuts)
    # Found as soon as its bytes are in, without the stall timer (no flush_partial).
    assert frames(out)[-1] == REQ
    assert not decoder.pending()
    # The only NAKs are for candidates wholly inside the noise, which the noise alone
    # gives too: nothing that reaches into the frame is NAKed.
    assert broken(out) == broken(decode_all(garbage))
    for item in out:
        assert isinstance(item, Frame | Control | Broken | NotAFrame | Skipped)
        if isinstance(item, Broken | NotAFrame):
            assert "\n" not in item.reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=40), min_size=1))
def test_how_the_bytes_are_cut_changes_nothing(stream: bytes, cuts: list[int]) -> None:
    # Guards the decoder's memory of how far a candidate's BODY was searched.
    stream += encode_frame(REQ) + stream
    whole = decode_all(stream)
    decoder = FrameDecoder()
    pieces = _feed_in_pieces(decoder, stream, cuts) + decoder.flush_partial()
    assert [i for i in pieces if not isinstance(i, Skipped)] == [
        i for i in whole if not isinstance(i, Skipped)
    ]


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_body_never_raises(body: bytes) -> None:
    items = decode_all(frame_with(body) if body else bytes([STX, 0, 0]))
    assert len(frames(items)) + len(broken(items)) + len(not_frames(items)) >= 1


# -- the published test vectors ------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "test-port-protocol.md"
_BLOCK = re.compile(r"```(json|hex|hex-broken)\n(.*?)```", re.S)
# "NAK (`reason`)" for a broken frame, "dropped (`reason`)" for noise (no NAK).
_STATED = re.compile(r"\b(NAK|[Dd]ropped)\s+\(`([^`]+)`\)")


def _vector_section() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Test vectors")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_published_vectors_match_the_codec() -> None:
    section = _vector_section()
    last_json: dict[str, Any] | None = None
    checked = {"hex": 0, "NAK": 0, "dropped": 0}
    previous_end = 0
    for block in _BLOCK.finditer(section):
        kind, content = block.group(1), block.group(2)
        prose = section[previous_end : block.start()]
        previous_end = block.end()
        if kind == "json":
            last_json = json.loads(content)
            continue
        data = bytes.fromhex(content.replace("\n", " "))
        items = decode_all(data)
        if kind == "hex":
            checked["hex"] += 1
            assert last_json is not None
            assert broken(items) == [] and not_frames(items) == []
            [frame] = [i for i in items if isinstance(i, Frame)]
            assert frame.message == last_json
            assert frame.raw == encode_frame(last_json)
            continue
        verdict, reason = _STATED.findall(prose)[-1]
        stated = " ".join(reason.split())
        if verdict == "NAK":
            checked["NAK"] += 1
            assert isinstance(items[0], Broken), content
        else:
            checked["dropped"] += 1
            assert isinstance(items[0], NotAFrame), content
            assert broken(items) == [], content  # noise: nothing in it is NAKed
        if stated.endswith("..."):
            assert items[0].reason.startswith(stated[:-3])
        else:
            assert items[0].reason == stated
        if "finds the request" in prose:
            assert last_json is not None
            assert frames(items) == [last_json]
    assert checked == {"hex": 7, "NAK": 5, "dropped": 4}


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _JSON_VALUES, max_size=6))
def test_body_is_what_json_dumps_gives(message: dict[str, Any]) -> None:
    # The BODY encoder made once (CPython's C encoder, hil.protocol.framing) must give
    # the very bytes of json.dumps with the documented options.
    expected = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert encode_frame(message)[3:-3] == expected.encode("utf-8")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_body_refuses_what_is_not_json(value: float) -> None:
    with pytest.raises(ValueError):
        encode_frame({"x": value})
    with pytest.raises(TypeError):
        encode_frame({"x": object()})


def test_body_refuses_a_cycle_with_value_error() -> None:
    message: dict[str, Any] = {"type": "evt"}
    message["data"] = message
    with pytest.raises(ValueError, match="Circular"):
        encode_frame(message)
