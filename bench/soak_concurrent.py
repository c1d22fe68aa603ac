"""Soak: consecutive full-suite runs while a second suite runs on the same host.

Runs ``hil run`` (the whole self-check suite on the default sim rig) ``--runs`` times in
a row while a second ``hil run`` loops beside it, both sharing the host's one pcscd and
its reader pool, the CPU and the loopback. The measure is how many scenarios change
outcome: every run is compared with the first, scenario by scenario (the second
suite's runs too). Afterwards it checks that no process of any of these runs is left
(recognised by its run ID) and no work folder of theirs remains in the runtime folder.

Not a CI test: it takes about a minute a run. Exit 0 when no scenario changed outcome
and nothing was left behind, else 1.

Run: ``.venv/bin/python bench/soak_concurrent.py [--runs 10] [--reports DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hil.runtime import OWNER_FILE, WORK_PREFIX, processes_of_run, runtime_root

#: scenario (node ID) -> (outcome, message)
Outcomes = dict[str, tuple[str, str]]


def run_suite(reports: Path, run: str) -> tuple[int, Outcomes, float]:
    """One ``hil run`` of the whole suite: exit code, scenario -> outcome, seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "hil", "run", "--no-html", "--reports", str(reports)],
        env={**os.environ, "HIL_RUN_ID": run},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    try:
        summary = json.loads((reports / "summary.json").read_text())
    except (OSError, ValueError):
        print(f"{run}: no summary (exit {result.returncode}): {result.stderr[-500:]}")
        return result.returncode, {}, elapsed
    outcomes = {s["nodeid"]: (s["outcome"], s["message"][:160]) for s in summary["scenarios"]}
    return result.returncode, outcomes, elapsed


def processes_of(runs: list[str]) -> list[str]:
    """Processes still carrying one of these run IDs, as 'pid run-id'."""
    return [f"{pid} {run}" for run in runs for pid in processes_of_run(run)]


def work_folders_of(runs: list[str]) -> list[Path]:
    left = []
    for folder in runtime_root().glob(f"{WORK_PREFIX}*"):
        try:
            if json.loads((folder / OWNER_FILE).read_text())["run_id"] in runs:
                left.append(folder)
        except (OSError, ValueError, KeyError):
            continue
    return left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="consecutive measured runs")
    parser.add_argument("--reports", type=Path, default=None, help="folder for the reports")
    args = parser.parse_args()
    reports = args.reports or Path(tempfile.mkdtemp(prefix="hil-soak-"))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    measured = [f"soak-{stamp}-{n + 1}" for n in range(args.runs)]
    beside: list[str] = []
    beside_results: list[tuple[str, int, Outcomes, float]] = []
    stop = threading.Event()

    def second_suite() -> None:
        while not stop.is_set():
            run = f"soak-{stamp}-beside-{len(beside) + 1}"
            beside.append(run)
            beside_results.append((run, *run_suite(reports / run, run)))

    companion = threading.Thread(target=second_suite, name="second-suite")
    companion.start()
    time.sleep(5)  # let the second suite's rig come up first, so every run overlaps it
    results: list[tuple[str, int, Outcomes, float]] = []
    try:
        for run in measured:
            code, outcomes, elapsed = run_suite(reports / run, run)
            results.append((run, code, outcomes, elapsed))
            counts: dict[str, int] = {}
            for outcome, _message in outcomes.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            print(f"{run}: exit {code}, {elapsed:.0f} s, {counts}", flush=True)
    finally:
        stop.set()
        companion.join()

    baseline = results[0][2]
    changed: dict[str, list[str]] = {}
    for run, _code, outcomes, _elapsed in results[1:] + beside_results:
        for scenario in sorted(baseline.keys() | outcomes.keys()):
            first = baseline.get(scenario, ("missing", ""))
            now = outcomes.get(scenario, ("missing", ""))
            if now[0] != first[0]:
                changed.setdefault(scenario, []).append(
                    f"{run}: {now[0]} {now[1]} (first run: {first[0]} {first[1]})"
                )
    for scenario, differences in sorted(changed.items()):
        print(f"changed: {scenario}")
        for line in differences:
            print(f"    {line}")
    time.sleep(5)  # what the runs left must be gone within 5 s of their end
    left = processes_of(measured + beside)
    folders = work_folders_of(measured + beside)
    print(
        f"{len(changed)} of {len(baseline)} scenarios changed outcome over {len(results)} "
        f"runs with {len(beside_results)} runs of a second suite beside them; "
        f"processes left: {left or 'none'}; work folders left: {folders or 'none'}; "
        f"reports in {reports}"
    )
    return 0 if not changed and not left and not folders else 1


if __name__ == "__main__":
    raise SystemExit(main())
