"""PIN entry on the sim rig leaves no PIN digit anywhere: every file of the run's
reports (Allure results with the test-port transcript, HTML, JUnit, summary) and what
``hil run`` printed are scanned for the card's PIN, also with separators between its
digits (a key list, a hex dump). The scan is shown to find a PIN where one is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil.suite import FIXTURES
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"
#: 12 digits (the longest PIN): no timestamp, id or hex dump holds it by chance.
PIN = "739146285017"


def pin_pattern(pin: str) -> re.Pattern[str]:
    """The PIN's digits in order, with anything but digits (up to 8 characters:
    quotes, commas, colons of a hex dump, "3" of a hex digit pair) between them."""
    return re.compile(r"\D{0,8}".join(re.escape(d) for d in pin))


def hex_pattern(pin: str) -> re.Pattern[str]:
    """The PIN's digits as ASCII hex (``37:33:39...`` with any separators)."""
    return re.compile(r"[^0-9a-f]{0,8}".join(f"3{d}" for d in pin))


def leaks(text: str) -> list[str]:
    found = [m.group(0) for m in pin_pattern(PIN).finditer(text)]
    return found + [m.group(0) for m in hex_pattern(PIN).finditer(text)]


def test_the_scan_finds_a_pin_where_there_is_one() -> None:
    assert leaks('{"keys": ["7","3","9","1","4","6","2","8","5","0","1","7"]}')
    assert leaks("02:00:4c:37:33:39:31:34:36:32:38:35:30:31:37")
    assert not leaks('{"keys": ["*","*","*","*","enter"]} 73914 then 6285')


def test_pin_digits_never_reach_a_report(tmp_path: Path) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    profile = (FIXTURES / "cards" / "visa-credit.yaml").read_text()
    (cards / "visa-credit.yaml").write_text(profile.replace('pin: "1234"', f'pin: "{PIN}"'))
    rig = write_sim_rig(
        tmp_path / "rig.toml", extra=f'[keypad]\ndriver = "testport"\nprofiles = "{cards}"\n'
    )
    reports = tmp_path / "reports"
    done = subprocess.run(
        [str(HIL), "run", "--rig", str(rig), "--reports", str(reports), "--", "-k", "pin_entry"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "3 passed" in done.stdout, done.stdout[-2000:]
    scanned = 0
    found: dict[str, list[str]] = {}
    for path in [p for p in reports.rglob("*") if p.is_file()]:
        text = path.read_bytes().decode("utf-8", errors="replace")
        scanned += 1
        if leaks(text):
            found[str(path.relative_to(reports))] = leaks(text)[:3]
    for name, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        if leaks(text):
            found[name] = leaks(text)[:3]
    assert scanned > 10  # the report was written: the scan looked at something
    assert not found, f"PIN digits in {found}"
    transcripts = [
        p
        for p in reports.rglob("*")
        if p.is_file() and "keypad.press" in p.read_text(errors="replace")
    ]
    assert transcripts, "no transcript shows the key presses (withheld, not missing)"
