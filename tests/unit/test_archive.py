"""The run archive's pieces (hil.archive): build lines, latest, history, executor."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from hil import archive
from hil.errors import ConfigError


@pytest.mark.parametrize(
    ("environment", "line"),
    [
        ({"rig": "sim", "firmware_version": "1.4.2"}, "sim 1.4"),
        ({"rig": "sim", "firmware_version": "1.4.7-rc1"}, "sim 1.4"),
        ({"rig": "sim", "firmware_version": "v2"}, "sim 2.0"),
        ({"rig": "bench-a", "firmware_version": "1.5.0"}, "bench-a 1.5"),
        ({"rig": "sim"}, "sim unversioned"),
        ({"rig": "sim", "firmware_version": "nightly"}, "sim unversioned"),
    ],
)
def test_build_line_is_rig_and_firmware_major_minor(environment: dict[str, str], line: str) -> None:
    assert archive.build_line(environment) == line


def _summary(folder: Path, run_id: str, started: str, version: str, rig: str = "sim") -> None:
    folder.mkdir(parents=True)
    data = {
        "run_id": run_id,
        "started": started,
        "environment": {"rig": rig, "firmware_version": version},
    }
    (folder / "summary.json").write_text(json.dumps(data))


def _report(folder: Path, history: dict[str, object]) -> None:
    html = folder / "html"
    html.mkdir(parents=True)
    calls = ",".join(
        f"d('history/{name}','{base64.b64encode(json.dumps(value).encode()).decode()}')"
        for name, value in history.items()
    )
    (html / "index.html").write_text(f"<script>{calls},d('data/x.json','e30=')</script>")


def test_previous_run_is_the_newest_of_the_same_build_line_with_a_report(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _summary(runs / "a", "a", "2026-11-01T00:00:00Z", "1.4.1")
    _report(runs / "a", {"history-trend.json": [{"buildOrder": 1}]})
    _summary(runs / "b", "b", "2026-11-02T00:00:00Z", "1.5.0")  # another line
    _report(runs / "b", {"history-trend.json": [{"buildOrder": 9}]})
    _summary(runs / "c", "c", "2026-11-03T00:00:00Z", "1.4.2")  # no report (killed)
    (runs / "d").mkdir()  # no summary at all
    previous = archive.previous_run(tmp_path, "e", {"rig": "sim", "firmware_version": "1.4.9"})
    assert previous is not None and previous.run_id == "a"
    assert (
        archive.previous_run(tmp_path, "e", {"rig": "bench", "firmware_version": "1.4.9"}) is None
    )

    results = tmp_path / "results"
    assert archive.carry_history(results, previous) == 1
    assert json.loads((results / "history" / "history-trend.json").read_text()) == [
        {"buildOrder": 1}
    ]
    assert archive.carry_history(results, None) == 0


def test_executor_from_github_gitlab_jenkins_and_else_the_station(tmp_path: Path) -> None:
    github = archive.ci_executor(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "lab/pos",
            "GITHUB_RUN_ID": "77",
            "GITHUB_RUN_NUMBER": "12",
            "GITHUB_WORKFLOW": "nightly",
        }
    )
    assert github == {
        "name": "GitHub Actions",
        "type": "github",
        "buildName": "nightly #12",
        "buildUrl": "https://github.com/lab/pos/actions/runs/77",
        "buildOrder": 12,
    }
    gitlab = archive.ci_executor(
        {
            "GITLAB_CI": "true",
            "CI_PROJECT_PATH": "lab/pos",
            "CI_PIPELINE_IID": "5",
            "CI_PIPELINE_URL": "https://gitlab.example/lab/pos/-/pipelines/905",
        }
    )
    assert gitlab is not None
    assert (gitlab["type"], gitlab["buildOrder"], gitlab["buildUrl"]) == (
        "gitlab",
        5,
        "https://gitlab.example/lab/pos/-/pipelines/905",
    )
    jenkins = archive.ci_executor(
        {
            "JENKINS_URL": "https://ci.example/",
            "BUILD_NUMBER": "31",
            "BUILD_TAG": "jenkins-pos-31",
            "BUILD_URL": "https://ci.example/job/pos/31/",
        }
    )
    assert jenkins is not None
    assert (jenkins["name"], jenkins["buildName"], jenkins["buildOrder"]) == (
        "Jenkins",
        "jenkins-pos-31",
        31,
    )
    assert archive.ci_executor({"HOME": "/root"}) is None

    # Outside CI the build order follows the previous run of the line.
    results = tmp_path / "r1"
    first = archive.write_executor(results, "run-1", None, env={})
    assert (first["type"], first["buildOrder"]) == ("hil", 1)
    runs = tmp_path / "reports" / "runs"
    _summary(runs / "run-1", "run-1", "2026-11-01T00:00:00Z", "1.4.1")
    (runs / "run-1" / "allure-results").mkdir()
    (runs / "run-1" / "allure-results" / "executor.json").write_text(json.dumps(first))
    previous = archive.ArchivedRun(runs / "run-1", "run-1", "", {})
    second = archive.write_executor(tmp_path / "r2", "run-2", previous, env={})
    assert second["buildOrder"] == 2
    in_ci = archive.write_executor(
        tmp_path / "r3", "run-3", previous, env={"JENKINS_URL": "x", "BUILD_NUMBER": "40"}
    )
    assert in_ci["buildOrder"] == 40
    assert json.loads((tmp_path / "r3" / "executor.json").read_text())["buildOrder"] == 40


def test_latest_links_and_the_flat_layout_follow_the_newest_run(tmp_path: Path) -> None:
    # An earlier pos-hil's flat layout: replaced by links.
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "index.html").write_text("old")
    (tmp_path / "summary.json").write_text("{}")
    for run_id in ("r1", "r2"):
        (tmp_path / "runs" / run_id).mkdir(parents=True)
        (tmp_path / "runs" / run_id / "summary.json").write_text(json.dumps({"run_id": run_id}))
        archive.point_latest(tmp_path, run_id)
        assert archive.latest_run_folder(tmp_path) == (tmp_path / "runs" / run_id).resolve()
        assert json.loads((tmp_path / "summary.json").read_text())["run_id"] == run_id
    assert os.readlink(tmp_path / "latest") == "runs/r2"
    for name in archive.SHORTCUTS:
        assert os.readlink(tmp_path / name) == f"latest/{name}"
    assert not list(tmp_path.glob(".*.link")), "no partial link left behind"


def test_latest_is_a_file_where_symlinks_cannot_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_symlinks(*_: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    archive.point_latest(tmp_path, "r1")
    assert (tmp_path / "latest").read_text() == "runs/r1\n"
    assert archive.latest_run_folder(tmp_path) == (tmp_path / "runs" / "r1").resolve()
    assert archive.resolve_run(Path("latest"), tmp_path) == (tmp_path / "runs" / "r1").resolve()


def test_a_run_is_named_by_folder_run_id_or_latest(tmp_path: Path) -> None:
    (tmp_path / "runs" / "20261130T000000Z-abcdef").mkdir(parents=True)
    by_id = archive.resolve_run(Path("20261130T000000Z-abcdef"), tmp_path)
    assert by_id == tmp_path / "runs" / "20261130T000000Z-abcdef"
    assert archive.resolve_run(tmp_path, tmp_path) == tmp_path
    assert archive.resolve_run(Path("no-such-run"), tmp_path) == Path("no-such-run")
    with pytest.raises(ConfigError, match="latest: no run in"):
        archive.resolve_run(Path("latest"), tmp_path)


def _results(folder: Path, run_id: str, rig: str, history_id: str) -> None:
    results = folder / "allure-results"
    results.mkdir(parents=True)
    (results / "environment.properties").write_text(
        f"run_id={run_id}\nrig={rig}\nfirmware_version=1.4.2\n"
    )
    (results / "categories.json").write_text("[]")
    (results / "executor.json").write_text("{}")
    result = {"uuid": run_id, "name": "Echo", "historyId": history_id, "status": "passed"}
    (results / f"{run_id}-result.json").write_text(json.dumps(result))
    (results / f"{run_id}-attachment.txt").write_text("transcript")


def test_merging_runs_of_several_rigs_keeps_each_rigs_result_apart(tmp_path: Path) -> None:
    _results(tmp_path / "runs" / "a", "a", "sim", "h1")
    _results(tmp_path / "runs" / "b", "b", "bench-a", "h1")
    into = tmp_path / "merged"
    merged = archive.merge_results([Path("a"), tmp_path / "runs" / "b"], into, root=tmp_path)
    assert [(run.run_id, run.rig) for run in merged] == [("a", "sim"), ("b", "bench-a")]
    results = {p.name: json.loads(p.read_text()) for p in into.glob("*-result.json")}
    assert {r["historyId"] for r in results.values()} == {"h1@sim", "h1@bench-a"}
    assert results["b-result.json"]["parameters"] == [{"name": "rig", "value": "bench-a"}]
    assert (into / "a-attachment.txt").read_text() == "transcript"
    assert not (into / "executor.json").exists()
    environment = (into / "environment.properties").read_text().splitlines()
    assert "rig=sim | bench-a" in environment
    assert "firmware_version=1.4.2" in environment
    assert "merged_runs=a, b" in environment


def test_merging_a_rerun_on_one_rig_keeps_history_ids(tmp_path: Path) -> None:
    _results(tmp_path / "runs" / "a", "a", "sim", "h1")
    _results(tmp_path / "runs" / "b", "b", "sim", "h1")
    into = tmp_path / "merged"
    archive.merge_results([Path("a"), Path("b")], into, root=tmp_path)
    results = [json.loads(p.read_text()) for p in into.glob("*-result.json")]
    assert [r["historyId"] for r in results] == ["h1", "h1"]
    with pytest.raises(ConfigError, match="no allure-results"):
        archive.merge_results([tmp_path], tmp_path / "x", root=tmp_path)
    with pytest.raises(ConfigError, match="at least one run"):
        archive.merge_results([], tmp_path / "x", root=tmp_path)
