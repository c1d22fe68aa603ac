"""Framework cost per scenario against the pytest-bdd + allure-pytest-bdd floor, one run.

Two temporary projects, each a Scenario Outline whose rows are the scenarios:

- floor: plain pytest with pytest-bdd and allure-pytest-bdd (results written), one
  step that does nothing;
- hil: `hil run --features` on the sim rig (the hil plugin, live progress, Allure,
  summary.json, junit, the rig's per-scenario checks and put-backs), one step that
  reads the terminal's device info over the test port.

Each project runs with few rows and with many, the two sides alternating round by
round. A small plugin clocks each run from the end of collection to the end of the
session, and the cost per scenario is the slope: (time with many - time with few) /
(many - few), so interpreter start-up, collection and the rig's boot cancel out.
Prints the median slope of each and the ratio, then the same for the pytest process's
CPU time (steadier on a shared machine; the sim terminal's process is not in it); run with
`.venv/bin/python bench/bench_scenario.py` (`--few 20 --many 220 --rounds 3`).
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

BIN = Path(sys.executable).parent

FLOOR_CONFTEST = textwrap.dedent(
    """
    from pytest_bdd import given, parsers, scenarios

    scenarios("features")


    @given(parsers.parse("nothing happens to row {row:d}"))
    def nothing(row: int) -> None:
        pass
    """
)


def _outline(step: str, rows: int, tags: str) -> str:
    examples = "\n".join(f"      | {row} |" for row in range(rows))
    return (
        f"{tags}\nFeature: Per-scenario cost\n\n"
        f"  Scenario Outline: Row <row>\n    {step}\n\n"
        f"    Examples:\n      | row |\n{examples}\n"
    )


def _write_floor(folder: Path, rows: int) -> None:
    (folder / "features").mkdir(parents=True, exist_ok=True)
    (folder / "test_floor.py").write_text(FLOOR_CONFTEST)
    (folder / "features" / "cost.feature").write_text(
        _outline("Given nothing happens to row <row>", rows, "")
    )


def _write_hil(folder: Path, rows: int) -> None:
    (folder / "features").mkdir(parents=True, exist_ok=True)
    (folder / "features" / "cost.feature").write_text(
        _outline(
            "When the rig reads the terminal's device info",
            rows,
            "@epic:bench @severity:minor",
        )
    )


CLOCK_PLUGIN = textwrap.dedent(
    """
    import os
    import time

    _started = []


    def pytest_collection_finish(session):
        _started.append((time.perf_counter(), time.process_time()))


    def pytest_sessionfinish(session, exitstatus):
        wall, cpu = _started[0]
        with open(os.environ["BENCH_CLOCK_FILE"], "w") as out:
            out.write(repr((time.perf_counter() - wall, time.process_time() - cpu)))
    """
)


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Seconds from the end of collection to the end of the session: wall clock, and
    the pytest process's CPU time (less moved by other work on a shared machine; the
    sim terminal's own process is not in it)."""
    clock = cwd / "clock.txt"
    clock.unlink(missing_ok=True)
    path = os.pathsep.join(p for p in (str(cwd.parent), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, BENCH_CLOCK_FILE=str(clock), PYTHONPATH=path)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not clock.exists():
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    wall, cpu = ast.literal_eval(clock.read_text())
    return float(wall), float(cpu)


def _floor(folder: Path) -> tuple[float, float]:
    command = [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-p", "no:hil", "-p", "benchclock", "--alluredir", str(folder / "allure")]
    return _timed(command, folder)


def _hil(folder: Path) -> tuple[float, float]:
    command = [str(BIN / "hil"), "run", "--features", "features", "--reports", "reports"]
    return _timed([*command, "--no-html", "--", "-p", "benchclock"], folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--few", type=int, default=20, help="scenarios in the short run")
    parser.add_argument("--many", type=int, default=220, help="scenarios in the long run")
    parser.add_argument("--rounds", type=int, default=3, help="slope measurements per side")
    options = parser.parse_args()
    extra = options.many - options.few
    floor_slopes: list[float] = []
    hil_slopes: list[float] = []
    floor_cpu: list[float] = []
    hil_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-scenario-") as temp:
        root = Path(temp)
        (root / "benchclock.py").write_text(CLOCK_PLUGIN)
        projects = {}
        for side, write in (("floor", _write_floor), ("hil", _write_hil)):
            for size in (options.few, options.many):
                folder = root / f"{side}-{size}"
                write(folder, size)
                projects[side, size] = folder
        env_note = os.environ.get("HIL_RIG", "the shipped sim rig")
        for _ in range(options.rounds):
            few = _floor(projects["floor", options.few])
            many = _floor(projects["floor", options.many])
            floor_slopes.append((many[0] - few[0]) / extra)
            floor_cpu.append((many[1] - few[1]) / extra)
            few = _hil(projects["hil", options.few])
            many = _hil(projects["hil", options.many])
            hil_slopes.append((many[0] - few[0]) / extra)
            hil_cpu.append((many[1] - few[1]) / extra)
    floor_ms = statistics.median(floor_slopes) * 1000
    hil_ms = statistics.median(hil_slopes) * 1000
    print(f"scenarios per run:         {options.few} and {options.many}, {options.rounds} rounds")
    print(f"pytest-bdd + allure floor: {floor_ms:.2f} ms per scenario (empty step)")
    print(f"hil run on {env_note}: {hil_ms:.2f} ms per scenario (device-info step)")
    print(f"ratio hil / floor:         {hil_ms / floor_ms:.1f}x")
    floor_cpu_ms = statistics.median(floor_cpu) * 1000
    hil_cpu_ms = statistics.median(hil_cpu) * 1000
    print(
        f"CPU of the pytest process:  floor {floor_cpu_ms:.2f} ms, hil {hil_cpu_ms:.2f} ms "
        f"per scenario, {hil_cpu_ms / floor_cpu_ms:.1f}x"
    )


if __name__ == "__main__":
    main()
