"""The detection matrix's judgement (hil.matrix): a pure function over per-build results,
and the shipped builds file against the images, the sim and docs/defects.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hil import matrix as mx
from hil.errors import ConfigError
from hil.firmware import load_image
from hil.sim.selfcheck import KNOWN_DEFECTS

REPO = Path(__file__).resolve().parents[2]

HEALTHY = mx.BuildSpec(name="healthy", image=Path("healthy.fw.json"), healthy=True)
MEMORY = mx.BuildSpec(
    name="memory-lies",
    image=Path("memory-lies.fw.json"),
    defect="memory_item_fixed_figures",
    defect_class="stub figures",
    area="power_on_self_check",
    requirements=("SC-MEM",),
    wrong="fixed figures",
    caught_by="flash_full",
)
COMM = mx.BuildSpec(
    name="comm-lies",
    image=Path("comm-lies.fw.json"),
    defect="comm_selfcheck_lies",
    defect_class="lies",
    area="communication",
    wrong="no dial",
    caught_by="blackhole",
)


def scenario(
    name: str,
    areas: list[str],
    outcome: str = "passed",
    *,
    blame: str | None = None,
    requirements: list[str] | None = None,
) -> dict[str, Any]:
    if outcome == "failed" and blame is None:
        blame = "terminal"
    return {
        "nodeid": f"x.feature::{name}",
        "scenario": name,
        "feature": "f",
        "outcome": outcome,
        "blame": blame,
        "message": f"{name} went wrong" if outcome != "passed" else "",
        "tags": [f"area_{a}" for a in areas] + ["certification"],
        "requirements": requirements or [],
    }


def run(code: int, *scenarios: dict[str, Any], rig_faults: int = 0) -> mx.BuildRun:
    return mx.BuildRun(
        code, {"scenarios": list(scenarios), "rig_faults": rig_faults}, reports="r/x"
    )


def test_healthy_clean_and_every_defect_caught_is_exit_0() -> None:
    runs = {
        "healthy": run(0, scenario("boot", ["power_on_self_check"])),
        "memory-lies": run(
            1,
            scenario("flash full", ["power_on_self_check"], "failed", requirements=["SC-MEM-02"]),
        ),
        "comm-lies": run(
            1,
            scenario("blackhole", ["communication"], "failed"),
            scenario("sale", ["communication", "payments"], "failed"),
        ),
    }
    verdict = mx.evaluate([HEALTHY, MEMORY, COMM], runs)
    assert verdict.exit_code == 0
    assert [b.verdict for b in verdict.builds] == ["clean", "caught", "caught"]
    assert verdict.problems == []
    assert verdict.areas == ["communication", "payments", "power_on_self_check"]
    comm = verdict.builds[2]
    assert comm.failures_per_area == {"communication": 2, "payments": 1}
    assert comm.outcomes_per_area == {"communication": {"failed": 2}, "payments": {"failed": 1}}


def test_a_defect_failing_only_elsewhere_is_missed_with_an_actionable_line() -> None:
    runs = {
        "healthy": run(0, scenario("boot", ["power_on_self_check"])),
        "memory-lies": run(1, scenario("comm", ["communication"], "failed")),
    }
    verdict = mx.evaluate([HEALTHY, MEMORY], runs)
    assert verdict.exit_code == 1
    assert verdict.builds[1].verdict == "missed"
    assert verdict.problems == [
        "memory-lies: no failure in area power_on_self_check (requirements SC-MEM) — the "
        "suite did not catch memory_item_fixed_figures; it failed only in communication 1"
    ]


def test_a_failure_in_the_area_but_not_the_requirement_does_not_count() -> None:
    failed_elsewhere = scenario(
        "tamper", ["power_on_self_check"], "failed", requirements=["SC-TAMPER-02"]
    )
    verdict = mx.evaluate(
        [HEALTHY, MEMORY], {"healthy": run(0), "memory-lies": run(1, failed_elsewhere)}
    )
    assert verdict.builds[1].verdict == "missed"
    # SC-MEM must not match SC-MEMORY-01 either: a prefix is a whole ID part
    near_miss = scenario("x", ["power_on_self_check"], "failed", requirements=["SC-MEMORY-01"])
    verdict = mx.evaluate([HEALTHY, MEMORY], {"healthy": run(0), "memory-lies": run(1, near_miss)})
    assert verdict.builds[1].verdict == "missed"


def test_a_failure_the_healthy_build_shares_is_no_evidence_of_the_defect() -> None:
    flaky = scenario("cpu load", ["power_on_self_check"], "failed", requirements=["SC-MEM-01"])
    runs = {"healthy": run(1, flaky), "memory-lies": run(1, flaky)}
    verdict = mx.evaluate([HEALTHY, MEMORY], runs)
    assert [b.verdict for b in verdict.builds] == ["false failures", "missed"]
    assert verdict.problems[1] == (
        "memory-lies: no failure in area power_on_self_check (requirements SC-MEM) — the "
        "suite did not catch memory_item_fixed_figures; its 1 failures there failed on the "
        "healthy build too, so they are no evidence of the defect"
    )
    # one more failure of its own is a catch
    own = scenario("flash full", ["power_on_self_check"], "failed", requirements=["SC-MEM-02"])
    runs["memory-lies"] = run(1, flaky, own)
    assert mx.evaluate([HEALTHY, MEMORY], runs).builds[1].verdict == "caught"


def test_a_defect_build_that_passes_everything_is_missed() -> None:
    runs = {"healthy": run(0), "comm-lies": run(0, scenario("echo", ["communication"]))}
    verdict = mx.evaluate([HEALTHY, COMM], runs)
    assert verdict.exit_code == 1
    assert verdict.problems == [
        "comm-lies: no failure in area communication — the suite did not catch comm_selfcheck_lies"
    ]


def test_a_failure_of_the_healthy_build_is_a_false_failure() -> None:
    runs = {
        "healthy": run(1, scenario("echo", ["communication"], "failed")),
        "comm-lies": run(1, scenario("echo", ["communication"], "failed")),
    }
    verdict = mx.evaluate([HEALTHY, COMM], runs)
    assert verdict.exit_code == 1
    assert verdict.builds[0].verdict == "false failures"
    assert verdict.problems[0].startswith(
        "healthy: the healthy build failed 1 scenarios (communication 1); first: 'echo'"
    )


def test_a_rig_fault_is_exit_3_and_never_counts_as_caught() -> None:
    broken = scenario("echo", ["communication"], "broken", blame="rig")
    runs = {
        "healthy": run(0),
        "comm-lies": run(3, broken, scenario("x", ["communication"], "failed"), rig_faults=1),
    }
    verdict = mx.evaluate([HEALTHY, COMM], runs)
    assert verdict.exit_code == 3
    assert verdict.builds[1].verdict == "rig fault"
    assert "rig fault in its run (1 scenarios; see r/x)" in verdict.problems[0]
    assert "says nothing about the firmware" in verdict.problems[0]
    # a broken scenario is not a failure of the terminal
    assert mx.failures_per_area({"scenarios": [broken]}) == {}


def test_exit_codes_follow_hil_runs_precedence() -> None:
    def code_of(*codes: int) -> int:
        specs = [HEALTHY, COMM, MEMORY]
        runs = {
            s.name: mx.BuildRun(c, {"scenarios": []}) for s, c in zip(specs, codes, strict=True)
        }
        return mx.evaluate(specs, runs).exit_code

    assert code_of(0, 3, 2) == 2  # a configuration error before a rig fault
    assert code_of(0, 70, 3) == 70
    assert code_of(0, 1, 130) == 130
    assert code_of(0, 3, 1) == 3
    # a run that left no summary says nothing: a bug of ours, not a miss
    runs = {"healthy": mx.BuildRun(0, {"scenarios": []}), "comm-lies": mx.BuildRun(1, None)}
    verdict = mx.evaluate([HEALTHY, COMM], runs)
    assert verdict.exit_code == 70
    assert "left no summary.json" in verdict.problems[0]


def test_table_rows_star_the_expected_area() -> None:
    runs = {
        "healthy": run(0, scenario("boot", ["power_on_self_check"])),
        "comm-lies": run(1, scenario("echo", ["communication"], "failed")),
    }
    verdict = mx.evaluate([HEALTHY, COMM], runs)
    assert mx.table_rows([HEALTHY, COMM], verdict) == [
        ("healthy", [".", "."], "clean"),
        ("comm-lies", ["1*", "."], "caught"),
    ]
    assert mx.format_table(mx.table_rows([HEALTHY, COMM], verdict), verdict.areas) == [
        "build      comm  boot  verdict",
        "------------------------------",
        "healthy       .     .  clean",
        "comm-lies    1*     .  caught",
        "failed scenarios per area; * the area that must catch the defect; "
        "comm = communication, boot = power_on_self_check",
    ]


def test_svg_is_one_self_contained_document(tmp_path: Path) -> None:
    runs = {"healthy": run(0), "comm-lies": run(1, scenario("e", ["communication"], "failed"))}
    verdict = mx.evaluate([HEALTHY, COMM], runs)
    path = tmp_path / "m.svg"
    mx.write_svg([HEALTHY, COMM], verdict, path)
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = path.read_text()
    assert "comm-lies" in text and "caught" in text and "href" not in text


def test_default_jobs() -> None:
    assert mx.default_jobs(2, 4) == 2
    assert mx.default_jobs(16, 4) == 4
    assert mx.default_jobs(None, None) == 1


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no [[build]] tables"),
        (
            '[[build]]\nimage = "a.fw.json"\ndefect = "d"\nclass = "c"\narea = "a"\n'
            'wrong = "w"\ncaught_by = "s"\n',
            "exactly one build must say healthy = true (0 do)",
        ),
        (
            '[[build]]\nimage = "a.fw.json"\nhealthy = true\n[[build]]\nimage = "b.fw.json"\n',
            "build[1].defect: required for a defect build",
        ),
        (
            "[[build]]\nimage = 'a.fw.json'\nhealthy = true\ncolour = 1\n",
            "build[0].colour: unknown",
        ),
        ('[[build]]\nimage = "a.fw.json"\nhealthy = "yes"\n', "build[0].healthy: must be true"),
        ("[[build]\n", "cannot read the builds file"),
    ],
)
def test_bad_builds_files_name_the_field(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "builds.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(error)) as e:
        mx.load_builds(path)
    assert str(e.value).startswith(str(path))


def test_select_builds_keeps_the_healthy_one_and_refuses_unknown_names() -> None:
    assert mx.select_builds([HEALTHY, COMM, MEMORY], ["memory-lies"]) == [HEALTHY, MEMORY]
    with pytest.raises(ConfigError, match="--build: unknown build 'nope'"):
        mx.select_builds([HEALTHY, COMM], ["nope"])


def test_run_command_passes_the_selection_through() -> None:
    options = mx.RunOptions(tags="smoke", keyword="echo", repeat="3")
    command = mx.run_command(Path("x.fw.json"), Path("r/x"), options)
    assert command[1:] == [
        "-m", "hil", "run", "--firmware", "x.fw.json", "--reports", "r/x",
        "--tags", "smoke", "--repeat", "3", "--no-html", "--", "-k", "echo",
    ]  # fmt: skip


# --- the shipped builds file -------------------------------------------------------------


def test_shipped_builds_match_their_signed_images_and_the_sim() -> None:
    builds = mx.load_builds(mx.BUILDS_FILE)
    defects = [b.defect for b in builds if not b.healthy]
    assert len(defects) >= 20
    assert len(set(defects)) == len(defects), "one build per defect"
    assert len({b.defect_class for b in builds if not b.healthy}) == len(defects), (
        "every defect build in a class of its own"
    )
    for spec in builds:
        facts = mx.image_facts(spec)
        mx.check_declared(spec, facts)  # the signed manifest names exactly that defect
        assert load_image(spec.image).manifest.seeded_defects == (
            () if spec.healthy else (spec.defect,)
        )
    assert set(defects) <= set(KNOWN_DEFECTS), "every defect is implemented by the sim"


def test_docs_defects_has_one_row_per_build() -> None:
    doc = (REPO / "docs" / "defects.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| `pos-sim-")]
    for spec in mx.load_builds(mx.BUILDS_FILE):
        if spec.healthy:
            continue
        row = [r for r in rows if r.startswith(f"| `{spec.image.name}`")]
        assert len(row) == 1, f"docs/defects.md: no single row for {spec.image.name}"
        assert f"`{spec.defect}`" in row[0] and f"`{spec.area}`" in row[0], row[0]
