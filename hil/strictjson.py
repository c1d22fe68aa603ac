"""Strict JSON: one loader for text that is signed or judged, shared by every reader.

RFC 8259 leaves some texts to each parser's taste, and two readers of the same bytes
then act on different facts: an object that names a key twice (Python keeps the last
value, many embedded parsers the first), a number beyond the range of a double
(``1e400`` is infinity here, an error elsewhere), an escape for half a UTF-16
surrogate pair (Python keeps a string that cannot be encoded again), and Python's
own ``NaN``/``Infinity``, which are not JSON at all. A signed firmware manifest or a
terminal's answer must mean one thing, so this loader refuses all of them: these are
the rules of I-JSON (RFC 7493) that matter here.

Used by ``hil.firmware`` (image files) and ``hil.protocol.framing`` (test-port frame
bodies). Errors are one line without a file name: the caller knows what it read.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from typing import Any


class StrictJsonError(ValueError):
    """The text is not strict JSON (or, for ``loads_object``, not an object)."""


_SURROGATES = re.compile("[\ud800-\udfff]")
# Only a text holding a \uD800-\uDFFF escape (or, given as str, a raw surrogate) needs
# the walk for unpaired halves: UTF-8 cannot encode a surrogate, and an escaped pair
# decodes to one code point.
_MAY_HOLD_SURROGATES = re.compile("\\\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJsonError(f"not strict JSON: duplicate key {key!r}")
            seen.add(key)
    return result


def _refuse_constant(name: str) -> Any:
    raise StrictJsonError(f"invalid JSON: {name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise StrictJsonError(f"not strict JSON: number {text} is beyond the range of a double")
    return value


def _check_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            unpaired = _SURROGATES.search(text)
            if unpaired is not None:
                raise StrictJsonError(
                    f"not strict JSON: unpaired surrogate \\u{ord(unpaired.group()):04x} "
                    "in a string"
                )


_per_thread = threading.local()


def _decoder() -> json.JSONDecoder:
    """This thread's strict decoder: built once (json.loads with hooks builds one per
    call), and not shared, since its hooks run Python code in the middle of a parse."""
    decoder: json.JSONDecoder | None = getattr(_per_thread, "decoder", None)
    if decoder is None:
        decoder = json.JSONDecoder(
            object_pairs_hook=_unique_keys,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
        _per_thread.decoder = decoder
    return decoder


def _direct(text: str) -> Any:
    """The value of ``text`` if it is one JSON value with nothing around it, read by the
    strict decoder's scanner itself; None otherwise (the full path then words the
    error, or reads the value with the whitespace around it). Spares a message
    ``JSONDecoder.decode``'s two regex matches and its calls around the scanner."""
    scan: Callable[[str, int], tuple[Any, int]] | None = getattr(_per_thread, "scan", None)
    if scan is None:
        scan = _per_thread.scan = _decoder().scan_once  # type: ignore[attr-defined]
    try:
        value, end = scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return None  # not JSON or not strict: the full path words why
    return value if end == len(text) else None


def loads(data: bytes | str) -> Any:
    """The value in ``data`` (UTF-8 bytes or text); StrictJsonError if it is not strict JSON."""
    if isinstance(data, bytes | bytearray):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StrictJsonError(f"invalid UTF-8 at byte {e.start}") from e
    else:
        text = data
    # Only a text that opens an object or array takes the direct path: for it, None
    # means "not read" (the text "null" goes the full way).
    value = _direct(text) if text[:1] in ("{", "[") else None
    if value is None:
        value = _full(text)
    # Most texts are ASCII without escapes: two C-speed checks spare them the regex.
    if ("\\u" in text or not text.isascii()) and _MAY_HOLD_SURROGATES.search(text):
        _check_surrogates(value)
    return value


def _full(text: str) -> Any:
    try:
        return _decoder().decode(text)
    except StrictJsonError:
        raise
    except (ValueError, RecursionError) as e:
        # JSONDecodeError is a ValueError; so is int()'s refusal of 4300+ digit numbers.
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StrictJsonError(f"invalid JSON: {detail}") from e


def loads_object(data: bytes | str) -> dict[str, Any]:
    """Like ``loads``, and the top-level value must be an object."""
    if type(data) is bytes and data[:1] == b"{":
        # A test-port BODY, on every frame: ``loads`` without its calls in between.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = ""  # loads words the error
        quick: dict[str, Any] | None = _direct(text) if text else None
        if quick is not None:
            if ("\\u" in text or not text.isascii()) and _MAY_HOLD_SURROGATES.search(text):
                _check_surrogates(quick)
            return quick
    value = loads(data)
    if not isinstance(value, dict):
        raise StrictJsonError(f"JSON is not an object but {type(value).__name__}")
    return value
