"""The rig's contract tables say what the protocol documentation says."""

from __future__ import annotations

from hil.contract.selfcheck import FAULT_LINE_CODES, ITEM_CODES, ITEM_NAMES, item_code
from tests.conftest import REPO

PROTOCOL_DOC = REPO / "docs" / "test-port-protocol.md"
TABLE_HEADER = "| # | item | nominal ms | code | status | message | screen text |"


def _documented_rows() -> list[tuple[str, str, str, str]]:
    """(item, code, status, screen text) of the doc's self-check table, in order."""
    lines = PROTOCOL_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADER) + 2
    rows, item = [], ""
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        item = cells[1] or item
        # messages may hold escaped pipes; the screen text is always the last cell
        rows.append((item, cells[3].strip("`"), cells[4], cells[-1]))
    return rows


def test_items_and_codes_equal_the_documentation() -> None:
    rows = _documented_rows()
    items = list(dict.fromkeys(item for item, *_ in rows))
    assert tuple(items) == ITEM_NAMES
    documented = [(i, c, s, t) for i, c, s, t in rows if c != "OK"]
    assert [(c.item, c.code, c.status, c.screen_text) for c in ITEM_CODES] == documented


def test_fault_lines_provoke_documented_failures() -> None:
    for line, code in FAULT_LINE_CODES.items():
        entry = item_code(code)
        assert entry is not None and entry.status in ("fail", "warn"), line
    assert item_code("E_NO_SUCH_CODE") is None
