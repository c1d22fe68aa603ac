"""hil.rigset: which rigs ``--rigs`` names, and the run's summary merged from the
workers' own (their summary.json files, as a worker writes them)."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from hil.errors import ConfigError
from hil.reporting import write_atomically
from hil.rigset import (
    AllureMerge,
    RigSetSummary,
    RigSlot,
    decode_slots,
    encode_slots,
    rig_slots,
    slot_folder,
    slot_of_worker,
)
from hil.summary import exit_code_for


def test_a_number_is_copies_of_the_default_rig_each_labelled(tmp_path: Path) -> None:
    rig = tmp_path / "sim.toml"
    slots = rig_slots("3", rig)
    assert [(s.index, s.label, s.path) for s in slots] == [
        (0, "sim-1", rig),
        (1, "sim-2", rig),
        (2, "sim-3", rig),
    ]
    assert [s.label for s in rig_slots("1", rig)] == ["sim"]


def test_globs_and_files_are_expanded_in_order(tmp_path: Path) -> None:
    for name in ("b.toml", "a.toml", "notes.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    extra = tmp_path / "other" / "a.toml"
    slots = rig_slots(f"{tmp_path}/*.toml, {extra}", tmp_path / "sim.toml")
    assert [s.path.name for s in slots] == ["a.toml", "b.toml", "a.toml"]
    # two rig files with one stem: numbered, so each rig's reports have a folder of their own
    assert [s.label for s in slots] == ["a-1", "b", "a-2"]


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("{dir}/*.yaml", "matches no rig file"),
        (" , ", "names no rig"),
        ("0", "names no rig"),
        ("33", "at most 32"),
    ],
)
def test_a_spec_naming_no_rig_is_a_one_line_error(tmp_path: Path, spec: str, said: str) -> None:
    with pytest.raises(ConfigError, match=said) as caught:
        rig_slots(spec.format(dir=tmp_path), tmp_path / "sim.toml")
    assert str(caught.value).startswith("--rigs: ")
    assert "\n" not in str(caught.value)


def test_slots_travel_to_the_workers_and_worker_k_takes_rig_k(tmp_path: Path) -> None:
    slots = rig_slots("2", tmp_path / "sim.toml")
    assert decode_slots(encode_slots(slots)) == slots
    assert slot_of_worker(slots, "gw1") == slots[1]
    with pytest.raises(ConfigError, match="worker gw2 has no rig"):
        slot_of_worker(slots, "gw2")
    with pytest.raises(ConfigError, match="--hil-rigs"):
        decode_slots("{not json")


# --- the merged summary -------------------------------------------------------------


def _run(nodeid: str, outcome: str, blame: str | None = None, message: str = "") -> dict[str, Any]:
    return {
        "repeat": 1,
        "nodeid": nodeid,
        "outcome": outcome,
        "blame": blame,
        "message": message,
        "duration_s": 0.5,
        "measurements": [],
    }


def _scenario(nodeid: str, *runs: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "feature": "Boot",
        "scenario": nodeid.rpartition("::")[2],
        "requirements": ["SC-BOOT-01"],
        "tags": ["smoke"],
        "repeats": list(runs),
    }


def _worker_summary(
    folder: Path, status: str, scenarios: list[dict[str, Any]], **extra: Any
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "status": status,
        "errors": [],
        "deselected": 0,
        "counts": {},
        "environment": {"rig": "sim", "terminal_serial": folder.name},
        "scenarios": scenarios,
        **extra,
    }
    (folder / "summary.json").write_text(json.dumps(data), encoding="utf-8")


A, B, C = (f"f.feature::test_{name}" for name in "abc")


def _summary(tmp_path: Path, *, each: bool = False) -> RigSetSummary:
    slots = [RigSlot(0, "r1", tmp_path / "r1.toml"), RigSlot(1, "r2", tmp_path / "r2.toml")]
    summary = RigSetSummary("RUN1", slots, tmp_path, each=each)
    summary.pytest_xdist_node_collection_finished(node=None, ids=[A, B, C])
    summary.start()
    return summary


def test_shards_merge_into_one_entry_per_scenario_saying_which_rig_ran_it(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    r1, r2 = (slot_folder(tmp_path, slot) for slot in summary.slots)
    _worker_summary(r1, "finished", [_scenario(A, _run(A, "passed"))])
    _worker_summary(r2, "running", [_scenario(C, _run(C, "passed"))])
    summary.refresh()
    data = summary.as_dict()
    assert [(e["nodeid"], e["outcome"], e["rig"]) for e in data["scenarios"]] == [
        (A, "passed", "r1"),
        (B, "pending", ""),  # no rig has reported it: the run is not over
        (C, "passed", "r2"),
    ]
    assert data["runs"] == 3 and data["complete"] is False
    assert data["environment"]["terminal_serial"] == "r1 | r2"
    assert data["environment"]["rigs"] == "r1, r2"

    _worker_summary(
        r2,
        "finished",
        [_scenario(C, _run(C, "passed")), _scenario(B, _run(B, "failed", "terminal", "E_X"))],
    )
    summary.pytest_sessionfinish(session=None)  # type: ignore[arg-type]
    data = summary.as_dict()
    assert data["status"] == "finished" and data["complete"] is True
    assert data["counts"]["failed"] == 1 and data["counts"]["passed"] == 2
    assert exit_code_for(data) == 1
    assert [r["status"] for r in data["rigs"]] == ["finished", "finished"]


def test_with_each_every_rig_has_its_own_entry_of_every_scenario(tmp_path: Path) -> None:
    summary = _summary(tmp_path, each=True)
    r1, r2 = (slot_folder(tmp_path, slot) for slot in summary.slots)
    every = [A, B, C]
    _worker_summary(r1, "finished", [_scenario(n, _run(n, "passed")) for n in every])
    _worker_summary(
        r2,
        "finished",
        [
            _scenario(n, _run(n, "broken" if n == B else "passed", "rig" if n == B else None))
            for n in every
        ],
    )
    summary.pytest_sessionfinish(session=None)  # type: ignore[arg-type]
    data = summary.as_dict()
    assert data["runs"] == 6 and data["collected"] == 6
    assert [(e["nodeid"], e["rig"]) for e in data["scenarios"]] == [
        (A, "r1"),
        (A, "r2"),
        (B, "r1"),
        (B, "r2"),
        (C, "r1"),
        (C, "r2"),
    ]
    assert exit_code_for(data) == 3  # a rig fault on one rig: rig, never the terminal
    junit = tmp_path / "junit.xml"
    summary.write_junit(junit)
    text = junit.read_text(encoding="utf-8")
    assert 'classname="Boot @ r2"' in text and '<property name="rig" value="r2" />' in text


def test_a_rig_that_stopped_stops_the_run_with_its_reason_and_config_error(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    r1, r2 = (slot_folder(tmp_path, slot) for slot in summary.slots)
    _worker_summary(r1, "finished", [_scenario(n, _run(n, "passed")) for n in (A, B)])
    _worker_summary(
        r2,
        "stopped",
        [],
        errors=["configuration error: r2.toml: dut.model: field required"],
        ended_by="stopped: configuration error: r2.toml: dut.model: field required",
    )
    summary.pytest_sessionfinish(session=None)  # type: ignore[arg-type]
    data = summary.as_dict()
    assert data["status"] == "stopped"
    assert data["errors"] == ["rig r2: configuration error: r2.toml: dut.model: field required"]
    assert "rig r2: stopped: configuration error" in data["ended_by"]
    assert exit_code_for(data) == 2


def test_a_worker_that_died_is_a_framework_bug_never_the_terminal(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    r1 = slot_folder(tmp_path, summary.slots[0])
    _worker_summary(r1, "finished", [_scenario(n, _run(n, "passed")) for n in (A, B, C)])

    class Node:
        class gateway:
            id = "gw1"

    summary.pytest_testnodedown(node=Node(), error="Not properly terminated")
    summary.pytest_sessionfinish(session=None)  # type: ignore[arg-type]
    data = summary.as_dict()
    assert data["status"] == "stopped"
    assert data["ended_by"] == "stopped: rig r2: its worker process died: Not properly terminated"
    assert data["framework_errors"] == 1 and data["errors"] == []
    assert exit_code_for(data) == 70


def test_allure_results_are_merged_with_the_rig_as_label(tmp_path: Path) -> None:
    summary = _summary(tmp_path, each=True)
    for slot in summary.slots:
        results = slot_folder(tmp_path, slot) / "allure-results"
        results.mkdir(parents=True)
        result = {
            "uuid": slot.label,
            "historyId": "h1",
            "labels": [{"name": "thread", "value": "1"}],
        }
        (results / f"{slot.label}-result.json").write_text(json.dumps(result), encoding="utf-8")
        (results / "environment.properties").write_text("rig=sim\n", encoding="utf-8")
        (results / f"{slot.label}-attachment.txt").write_text("x", encoding="utf-8")
    into = tmp_path / "allure-results"
    assert AllureMerge(summary, into).sweep(final=True) == 2
    assert sorted(p.name for p in into.iterdir()) == [
        "r1-attachment.txt",
        "r1-result.json",
        "r2-attachment.txt",
        "r2-result.json",
    ]
    merged = json.loads((into / "r2-result.json").read_text(encoding="utf-8"))
    assert {"name": "rig", "value": "r2"} in merged["labels"]
    assert {"name": "thread", "value": "r2"} in merged["labels"]
    assert merged["parameters"] == [{"name": "rig", "value": "r2"}]
    assert merged["historyId"] == "h1@r2"


def test_a_sweep_skips_files_being_written_and_files_gone_since_it_listed_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker writes each file under a temporary dot-name and renames it; a sweep that
    listed the temporary name, or a file replaced since, must not end the run (it did:
    FileNotFoundError, exit 70, with a 4-rig run a third done)."""
    summary = _summary(tmp_path)
    r1 = slot_folder(tmp_path, summary.slots[0]) / "allure-results"
    r1.mkdir(parents=True)
    into = tmp_path / "allure-results"
    merge = AllureMerge(summary, into)
    (r1 / ".a-attachment.txt.123.partial").write_text("half", encoding="utf-8")
    (r1 / "b-attachment.txt").write_text("transcript", encoding="utf-8")
    real_link = os.link

    def gone_before_the_link(source: Any, target: Any) -> None:
        Path(source).unlink()  # its worker replaced it after the sweep listed it
        raise FileNotFoundError(source)

    monkeypatch.setattr(os, "link", gone_before_the_link)
    assert merge.sweep() == 0
    assert list(into.iterdir()) == []
    monkeypatch.setattr(os, "link", real_link)
    (r1 / "b-attachment.txt").write_text("transcript", encoding="utf-8")
    merge.sweep()
    assert sorted(p.name for p in into.iterdir()) == ["b-attachment.txt"]


def test_allure_results_are_merged_as_the_run_goes(tmp_path: Path) -> None:
    """What has ended is in the run's folder after each sweep (a killed run keeps it);
    a result not readable yet waits for a later sweep; one restated by its worker is
    taken again at the end; attachments are links to the worker's (masked) file."""
    summary = _summary(tmp_path)
    r1 = slot_folder(tmp_path, summary.slots[0]) / "allure-results"
    r1.mkdir(parents=True)
    into = tmp_path / "allure-results"
    merge = AllureMerge(summary, into)
    assert merge.sweep() == 0  # nothing yet, and r2 has no folder at all

    def result(name: str, status: str) -> None:
        text = json.dumps({"uuid": name, "status": status, "labels": []})
        write_atomically(r1 / f"{name}-result.json", text.encode())  # as the worker's gate

    result("a", "passed")
    (r1 / "a-attachment.txt").write_text("transcript", encoding="utf-8")
    (r1 / "b-result.json").write_text('{"uuid": "b", "sta', encoding="utf-8")  # being written
    assert merge.sweep() == 1
    assert sorted(p.name for p in into.iterdir()) == ["a-attachment.txt", "a-result.json"]
    assert (into / "a-attachment.txt").stat().st_ino == (r1 / "a-attachment.txt").stat().st_ino

    result("b", "failed")
    result("a", "broken")  # restated after it was taken
    assert merge.sweep() == 2
    assert json.loads((into / "b-result.json").read_text())["status"] == "failed"
    assert json.loads((into / "a-result.json").read_text())["status"] == "passed"
    assert merge.sweep(final=True) == 2
    merged = json.loads((into / "a-result.json").read_text(encoding="utf-8"))
    assert merged["status"] == "broken"
    assert {"name": "rig", "value": "r1"} in merged["labels"]


@pytest.mark.parametrize("each", [False, True])
def test_a_summary_kept_up_as_the_workers_report_says_what_one_made_afresh_says(
    tmp_path: Path, each: bool
) -> None:
    """The controller keeps what it made of a worker's runs while that worker's files are
    unchanged, and each scenario's entry while its runs are the same objects: after each
    step of a run, its reports are byte for byte those of a summary that reads the same
    files for the first time."""
    kept = _summary(tmp_path, each=each)
    r1, r2 = (slot_folder(tmp_path, slot) for slot in kept.slots)
    steps = [
        (r1, "running", [_scenario(A, _run(A, "pending"))]),
        (r1, "running", [_scenario(A, _run(A, "passed"))]),
        (r2, "running", [_scenario(B, _run(B, "failed", "terminal", "E_X"))]),
        (r1, "running", [_scenario(A, _run(A, "passed")), _scenario(C, _run(C, "pending"))]),
        (r1, "finished", [_scenario(A, _run(A, "passed")), _scenario(C, _run(C, "broken", "rig"))]),
        (r2, "finished", [_scenario(B, _run(B, "failed", "terminal", "E_X"))]),
    ]
    for number, (folder, status, scenarios) in enumerate(steps):
        _worker_summary(folder, status, scenarios)
        # a new mtime even on a coarse clock, as a worker's next write has
        stamp = time.time_ns() + number * 1_000_000_000
        os.utime(folder / "summary.json", ns=(stamp, stamp))
        kept.refresh()
        afresh = RigSetSummary("RUN1", kept.slots, tmp_path, each=each)
        afresh.pytest_xdist_node_collection_finished(node=None, ids=[A, B, C])
        afresh.start()
        afresh.started = kept.started
        afresh.refresh()
        for summary, name in ((kept, "kept"), (afresh, "afresh")):
            summary.write(tmp_path / f"{name}.json")
            summary.write_junit(tmp_path / f"{name}.xml")
        for suffix in ("json", "xml"):
            said = [
                (tmp_path / f"{name}.{suffix}").read_text(encoding="utf-8")
                for name in ("kept", "afresh")
            ]
            # the moment each was written differs; nothing else may
            said = [_without_times(text) for text in said]
            assert said[0] == said[1], (number, suffix)


def _without_times(text: str) -> str:
    return re.sub(r'("updated": |"duration_s": |time=|timestamp=)"?[^",\n]*', r"\1", text)
