"""A manual bench: ``hil run`` and ``hil rig check`` as real subprocesses, the operator
played by a script on their stdin. A confirmed action is no verdict: the rig still
checks what the terminal did. An operator who never answers is a rig fault (exit 3)
with one line naming the instrument and the action, never a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

HIL = Path(sys.executable).parent / "hil"


def _rig(tmp_path: Path, timeout_s: float) -> Path:
    return write_sim_rig(
        tmp_path / "rig.toml", extra=f'[keypad]\ndriver = "manual"\ntimeout_s = {timeout_s}\n'
    )


def _hil(tmp_path: Path, *args: str, answers: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run hil with ``answers`` on a stdin that stays open (an operator who says nothing
    more, not one who left) until hil ends."""
    read_end, write_end = os.pipe()
    os.write(write_end, answers)
    try:
        return subprocess.run(
            [str(HIL), *args],
            cwd=tmp_path,
            stdin=read_end,
            capture_output=True,
            timeout=300,
            check=False,
        )
    finally:
        os.close(read_end)
        os.close(write_end)


def test_rig_check_asks_the_operator_and_takes_the_answer(tmp_path: Path) -> None:
    done = _hil(tmp_path, "rig", "check", "--rig", str(_rig(tmp_path, 30)), answers=b"\n")
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert b"operator: stand by the terminal's keypad" in done.stderr
    assert b"operator confirmed at the keypad" in done.stdout


def test_a_confirmed_pin_the_terminal_never_got_fails_the_scenario(tmp_path: Path) -> None:
    """The operator says Enter but (on a simulated terminal) cannot type: the terminal
    times out its PIN entry and the scenario fails on the terminal's answer (exit 1).
    The prompt names the PIN's length, never its digits."""
    reports = tmp_path / "r"
    done = _hil(
        tmp_path, "run", "--rig", str(_rig(tmp_path, 30)), "--reports", str(reports),
        "--", "-k", "typed_at_the_prompt", answers=b"\n",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout.decode()[-2000:] + done.stderr.decode()
    assert (
        b"operator: on the terminal's keypad type the 4-digit PIN from the test card's sheet"
        in done.stderr
    )
    assert b"1234" not in done.stderr  # visa-credit's PIN
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["counts"]["failed"] == 1, summary["counts"]


def test_an_operator_who_never_answers_is_a_rig_fault(tmp_path: Path) -> None:
    reports = tmp_path / "r"
    started = time.monotonic()
    done = _hil(
        tmp_path, "run", "--rig", str(_rig(tmp_path, 2)), "--reports", str(reports),
        "--", "-k", "typed_at_the_prompt", answers=b"",
    )  # fmt: skip
    assert done.returncode == 3, done.stdout.decode()[-2000:] + done.stderr.decode()
    assert time.monotonic() - started < 120
    said = [
        line for line in done.stdout.decode().splitlines() + done.stderr.decode().splitlines()
        if "no answer from the operator" in line
    ]  # fmt: skip
    assert said and all(line.count("keypad") >= 1 for line in said), said
    rig_fault_lines = [line for line in done.stderr.decode().splitlines() if "rig fault" in line]
    assert len(rig_fault_lines) == 1 and "keypad: no answer" in rig_fault_lines[0]


def test_an_operator_whose_input_closes_is_a_rig_fault(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(HIL), "rig", "check", "--rig", str(_rig(tmp_path, 30))],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 3
    assert b"keypad: the operator's input closed" in done.stdout
