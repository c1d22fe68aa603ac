"""Strict JSON: what two parsers could read two ways is refused, the rest is plain JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil import strictjson
from hil.strictjson import StrictJsonError, loads, loads_object


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a":1}', {"a": 1}),
        (
            ' {\n\t"a" : [1, 2.5, -0.0, 1e308],\r\n"b":null } ',
            {"a": [1, 2.5, -0.0, 1e308], "b": None},
        ),
        ('{"t":"\\u81ea\\u68c0\\u4e2d","e":"\\ud83d\\ude00"}', {"t": "自检中", "e": "😀"}),
        ('{"path":"C:\\\\ud800"}', {"path": "C:\\ud800"}),  # an escaped backslash, no escape
        ('{"a":{"b":1},"c":{"b":2}}', {"a": {"b": 1}, "c": {"b": 2}}),  # same key, two objects
        ('{"n":123456789012345678901234567890}', {"n": 123456789012345678901234567890}),
    ],
)
def test_plain_json_objects_load(text: str, value: dict[str, Any]) -> None:
    assert loads_object(text) == value
    assert loads_object(text.encode("utf-8")) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"ok":true,"ok":false}', "not strict JSON: duplicate key 'ok'"),
        ('{"a":{"x":1,"y":2,"x":1}}', "not strict JSON: duplicate key 'x'"),
        ('{"a":[{"k":1},{"k":1,"k":1}]}', "not strict JSON: duplicate key 'k'"),
        ('{"\\u0061":1,"a":2}', "not strict JSON: duplicate key 'a'"),  # same key, spelled twice
        ('{"a":NaN}', "invalid JSON: NaN is not JSON"),
        ('{"a":Infinity}', "invalid JSON: Infinity is not JSON"),
        ('{"a":[-Infinity]}', "invalid JSON: -Infinity is not JSON"),
        ('{"a":1e400}', "not strict JSON: number 1e400 is beyond the range of a double"),
        ('{"a":-1E+309}', "not strict JSON: number -1E+309 is beyond the range of a double"),
        ('{"a":"x\\ud800"}', "not strict JSON: unpaired surrogate \\ud800 in a string"),
        ('{"\\uDC01":1}', "not strict JSON: unpaired surrogate \\udc01 in a string"),
        ('{"a":["\\ude00\\ud83d"]}', "not strict JSON: unpaired surrogate"),  # wrong order
        ('{"a":', "invalid JSON: Expecting value: line 1 column 6 (char 5)"),
        ("[1,2]", "JSON is not an object but list"),
        ('"text"', "JSON is not an object but str"),
        ("null", "JSON is not an object but NoneType"),
    ],
)
def test_what_parsers_disagree_on_is_refused(text: str, reason: str) -> None:
    with pytest.raises(StrictJsonError) as caught:
        loads_object(text)
    assert str(caught.value).startswith(reason)
    assert "\n" not in str(caught.value)


def test_invalid_utf8_names_the_byte() -> None:
    with pytest.raises(StrictJsonError, match=r"^invalid UTF-8 at byte 6$"):
        loads_object(b'{"a":"\xff"}')


def test_any_top_level_value_through_loads() -> None:
    assert loads("[1,2]") == [1, 2]
    assert loads('"x"') == "x"
    with pytest.raises(StrictJsonError, match="duplicate key 'a'"):
        loads('[{"a":1,"a":1}]')


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(StrictJsonError, match=r"^invalid JSON"):
        loads("[" * 100_000)


def test_error_is_a_value_error() -> None:
    # Callers that caught json's ValueError keep working.
    assert issubclass(StrictJsonError, ValueError)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=25,
)


def test_a_raw_surrogate_in_text_given_as_str_is_refused() -> None:
    # Bytes cannot carry one (UTF-8 refuses surrogates); a Python caller's str can.
    with pytest.raises(StrictJsonError, match="unpaired surrogate \\\\udfff"):
        loads_object('{"a":"\udfff"}')


@settings(deadline=None)
@given(st.dictionaries(st.text(), json_values), st.booleans())
def test_anything_json_dumps_writes_loads_back(value: dict[str, Any], ascii_only: bool) -> None:
    assert loads_object(json.dumps(value, ensure_ascii=ascii_only)) == value


# -- the direct path (the scanner without JSONDecoder.decode around it) ------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_JSON, st.sampled_from(["", " ", "\n\t"]))
def test_direct_path_reads_what_the_full_decoder_reads(value: Any, space: str) -> None:
    for ensure_ascii in (True, False):
        text = space + json.dumps({"v": value}, ensure_ascii=ensure_ascii) + space
        assert loads(text) == {"v": value}
        assert loads_object(text.encode("utf-8")) == {"v": value}


@pytest.mark.parametrize(
    "body",
    [
        b'{"ok":true,"ok":false}',
        b'{"a":[{"k":1,"k":1}]}',
        b'{"a":NaN}',
        b'{"a":1e400}',
        b'{"a":"x\\ud800"}',
        b'{"a":1} x',
        b'{"a":',
    ],
)
def test_direct_path_refuses_with_the_full_paths_words(body: bytes) -> None:
    with pytest.raises(StrictJsonError) as direct:
        loads_object(body)  # bytes opening an object: the direct path first
    with pytest.raises(StrictJsonError) as full:
        strictjson._full(body.decode("utf-8"))
        strictjson._check_surrogates(json.loads(body))
    assert str(direct.value) == str(full.value)
