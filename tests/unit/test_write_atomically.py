"""hil.reporting.write_atomically: a report is replaced in one step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil import reporting


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_a_file_is_created_then_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "new" / "summary.json"  # the folder is made too
    reporting.write_atomically(target, b"first, longer content")
    assert target.read_bytes() == b"first, longer content"
    with target.open("rb") as reader:  # a reader that opened the old file keeps it whole
        reporting.write_atomically(target, b"second")
        assert reader.read() == b"first, longer content"
    assert target.read_bytes() == b"second"
    assert _leftovers(target.parent) == []


def test_a_folder_in_the_way_is_an_error_and_stays(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        reporting.write_atomically(target, b"{}")
    assert (target / "inside").read_text() == "kept"
    assert os.path.isdir(target)
