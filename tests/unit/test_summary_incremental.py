"""summary.json and junit.xml written after every scenario remake only what changed
(hil.summary's tracked entries): what they say must be, byte for byte, what making
them from scratch says, whatever happens to the runs, and a write must not grow with
the scenarios already written."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from hil.repeats import Repeat, repeats
from hil.summary import RunSummary

PAN = "4761739001010010"
FEATURE = "features/cost.feature"


class _Callspec:
    def __init__(self, repeat: Repeat) -> None:
        from hil.repeats import REPEAT_ARG

        self.params = {REPEAT_ARG: repeat}


class _Item:
    """What RunSummary reads of a pytest item (a repeat of a scenario, or a plain run)."""

    def __init__(self, test: str, repeat: Repeat | None) -> None:
        suffix = f"[{repeat.id}]" if repeat is not None else ""
        self.nodeid = f"{FEATURE}::{test}{suffix}"
        self.name = f"{test}{suffix}"
        if repeat is not None:
            self.callspec = _Callspec(repeat)

    def iter_markers(self) -> list[Any]:
        return []


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The two summaries are written moments apart: "updated" and the times must agree.
    monkeypatch.setattr(time, "time", lambda: 1_790_000_000.0)


def _pair(items: list[_Item], *, listed: bool = True) -> tuple[RunSummary, RunSummary]:
    """The same run twice: tracked (remade where it changed) and from scratch."""
    # A card number in the rig's facts too: the environment is spliced in as well.
    tracked = RunSummary("run-1", lambda: {"rig": "sim", "note": f"card {PAN}"})
    scratch = RunSummary("run-1", lambda: {"rig": "sim", "note": f"card {PAN}"})
    scratch.results = scratch.results  # entries that do not tell: made from scratch
    for summary in (tracked, scratch):
        summary.repeat = 2
        summary.begin(items, listed=listed)  # type: ignore[arg-type]
    assert tracked._tracked and not scratch._tracked
    return tracked, scratch


def _same_reports(tracked: RunSummary, scratch: RunSummary, folder: Path) -> None:
    for name, summary in (("tracked", tracked), ("scratch", scratch)):
        summary.write(folder / f"{name}.json")
        summary.write_junit(folder / f"{name}.xml")
    text = (folder / "tracked.json").read_text()
    assert text == (folder / "scratch.json").read_text()
    assert text == json.dumps(json.loads(text), ensure_ascii=False, indent=2) + "\n"
    xml = (folder / "tracked.xml").read_text()
    assert xml == (folder / "scratch.xml").read_text()
    ElementTree.fromstring(xml.encode())  # well-formed
    assert PAN not in text and PAN not in xml
    assert tracked.finished_results() == scratch.finished_results()
    assert tracked.incomplete_reason() == scratch.incomplete_reason()


def _outcome(summary: RunSummary, nodeid: str, rng: random.Random, step: int) -> None:
    if nodeid not in summary.results:
        summary._entry(nodeid, nodeid.rpartition("::")[2])
    entry = summary.results[nodeid]
    choice = rng.choice(("passed", "failed", "broken", "skipped", "measured"))
    if choice == "passed":
        entry["outcome"] = "passed"
        entry["duration_s"] = round(entry["duration_s"] + 0.25, 3)
    elif choice == "failed":
        entry.update(outcome="failed", blame="terminal", message=f"card {PAN} declined")
        summary.details[nodeid] = f"E   AssertionError: pan={PAN} step {step}"
    elif choice == "broken":
        entry.update(outcome="broken", blame="rig", rig_fault=True, message="reader gone")
        summary.details[nodeid] = "E   RigError: reader gone"
    elif choice == "skipped":
        entry.update(outcome="skipped", message="rig lacks qr_screen")
    else:
        entry["outcome"] = "passed"
        entry["measurements"] = [{"name": "boot_s", "value": 1.5, "unit": "s", "low": None}]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("listed", [True, False])
def test_tracked_reports_say_what_reports_made_from_scratch_say(
    tmp_path: Path, seed: int, listed: bool
) -> None:
    rng = random.Random(seed)
    items = [_Item(f"test_{n}", r) for n in "abc" for r in repeats(2)]
    items += [_Item(f"test_row[{PAN}]", None), _Item("test_d", None)]
    tracked, scratch = _pair(items, listed=listed)
    _same_reports(tracked, scratch, tmp_path)
    order = [item.nodeid for item in items]
    stop_at = rng.randrange(len(order) + 1)
    for step, nodeid in enumerate(order[:stop_at]):
        for summary in (tracked, scratch):
            summary.pytest_runtest_logstart(nodeid)
            _outcome(summary, nodeid, random.Random(seed * 100 + step), step)
        _same_reports(tracked, scratch, tmp_path)
        if step % 3 == 2:  # a run already written changes again (a later repeat's view)
            again = order[rng.randrange(step + 1)]
            for summary in (tracked, scratch):
                summary.results[again]["duration_s"] = 9.5
            _same_reports(tracked, scratch, tmp_path)
    ending = rng.choice(("finished", "interrupted", "stopped"))
    for summary in (tracked, scratch):
        if ending == "interrupted":
            with pytest.raises(KeyboardInterrupt) as ctrl_c:
                raise KeyboardInterrupt
            summary.pytest_keyboard_interrupt(ctrl_c)
        if ending == "finished":
            for nodeid in order[stop_at:]:
                _outcome(summary, nodeid, random.Random(seed), 0)
        summary.pytest_sessionfinish(_Session())  # type: ignore[arg-type]
    _same_reports(tracked, scratch, tmp_path)
    assert tracked.status == scratch.status


class _Session:
    shouldfail = False
    shouldstop = False


def test_an_entry_changed_by_assignment_is_rewritten(tmp_path: Path) -> None:
    """What a test (or a plug-in) assigns to an entry or the details reaches the files."""
    items = [_Item("test_a", None), _Item("test_b", None)]
    summary = RunSummary("run-2")
    summary.begin(items)  # type: ignore[arg-type]
    summary.write(tmp_path / "s.json")
    summary.results[items[0].nodeid]["outcome"] = "failed"
    summary.results[items[0].nodeid].update(message="declined")
    summary.details[items[0].nodeid] = "the traceback"
    summary.write(tmp_path / "s.json")
    summary.write_junit(tmp_path / "j.xml")
    (first, _) = json.loads((tmp_path / "s.json").read_text())["scenarios"]
    assert (first["outcome"], first["message"]) == ("failed", "declined")
    assert "the traceback" in (tmp_path / "j.xml").read_text()


def test_a_write_does_not_remake_scenarios_that_did_not_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hil.summary

    items = [_Item(f"test_{n}", None) for n in range(50)]
    summary = RunSummary("run-3")
    summary.begin(items)  # type: ignore[arg-type]
    summary.write(tmp_path / "s.json")
    summary.write_junit(tmp_path / "j.xml")
    made: list[str] = []
    entry_of = hil.summary.scenario_entry

    def counted(nodeid: str, runs: Any) -> dict[str, Any]:
        made.append(nodeid)
        return entry_of(nodeid, runs)

    monkeypatch.setattr(hil.summary, "scenario_entry", counted)
    for item in items[:10]:
        summary.results[item.nodeid]["outcome"] = "passed"
        summary.write(tmp_path / "s.json")
        summary.write_junit(tmp_path / "j.xml")
    assert made == [item.nodeid for item in items[:10]]
    data = json.loads((tmp_path / "s.json").read_text())
    assert (data["counts"]["passed"], data["counts"]["pending"]) == (10, 40)
