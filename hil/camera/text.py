"""How text read off a screen by OCR is compared with the documented text.

OCR recovers characters, not layout: the width of a space, a space between two
Chinese characters, or a full-width colon for a half-width one are not something a
camera can tell apart reliably. So both sides are folded before comparing: Unicode
NFKC (full-width forms become their ASCII twins), every whitespace and underscore
removed (an underscore sits on the baseline and blurs away, or is read as a space),
capital I read as small l (the display's sans-serif font draws them alike), and case
ignored (s/S, o/O, w/W differ only in size). No two documented lines differ only in
these respects (tests/unit/test_camera.py checks it). Every
other character must match exactly: a wrong code, a missing word or a misspelt one
still differs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

#: Characters a camera cannot tell from others on a terminal's display: removed or merged.
CAMERA_CONFUSABLE = str.maketrans({"_": None, "I": "l", "|": "l"})


def fold(text: str) -> str:
    """``text`` as compared: NFKC, no whitespace or underscore, I as l, no case."""
    joined = "".join(unicodedata.normalize("NFKC", text).split())
    return joined.translate(CAMERA_CONFUSABLE).casefold()


def same_line(read: str, documented: str) -> bool:
    return fold(read) == fold(documented)


def same_lines(read: Sequence[str], documented: Sequence[str]) -> bool:
    return len(read) == len(documented) and all(
        same_line(a, b) for a, b in zip(read, documented, strict=True)
    )


def line_match_rate(read: Sequence[str], documented: Sequence[str]) -> tuple[int, int]:
    """How many documented lines were read exactly (folded): ``(matched, documented)``.
    Each read line counts for one documented line at most; a line split or merged by
    the OCR counts as missed. Extra read lines do not count for or against."""
    unused = [fold(line) for line in read]
    matched = 0
    for line in documented:
        folded = fold(line)
        if folded in unused:
            unused.remove(folded)
            matched += 1
    return matched, len(documented)
