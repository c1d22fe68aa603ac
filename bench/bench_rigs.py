"""The same suite on 1, 2 and 4 sim rigs, one run: how much faster several rigs are.

Each round runs, in turn: plain `hil run` (one rig, no xdist: what a lab with one rig
runs), then `hil run --rigs 2` and `hil run --rigs 4` (one pytest-xdist worker per
rig, the scenarios shared out, one merged report). Every run must exit 0 with a complete
summary that lists every scenario once: a run that lost scenarios is not faster, it is
wrong, and the bench stops. Prints each side's median wall time and the speed-up over
one rig, with the CPU seconds each used and how busy that kept the machine's cores: the sim
rigs (terminals included) share them, and more rigs than the CPU can carry cannot go
faster.

    .venv/bin/python bench/bench_rigs.py                # the whole shipped suite
    .venv/bin/python bench/bench_rigs.py --tags smoke --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _run(rigs: int, reports: Path, tags: str | None) -> tuple[float, float, int]:
    """One `hil run`: wall seconds, CPU seconds of it and its children, scenarios."""
    command = [str(BIN / "hil"), "run", "--no-html", "--reports", str(reports)]
    if rigs > 1:
        command += ["--rigs", str(rigs)]
    if tags:
        command += ["--tags", tags]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = json.loads((reports / "latest" / "summary.json").read_text())
    scenarios = summary["scenarios"]
    ran_once = len({entry["nodeid"] for entry in scenarios}) == len(scenarios)
    if done.returncode != 0 or not summary["complete"] or not ran_once:
        # The reports stay for whoever looks into it; the bench's other runs' do not.
        kept = Path(tempfile.mkdtemp(prefix=f"bench-rigs-failed-{rigs}-"))
        shutil.copytree(reports, kept, dirs_exist_ok=True, symlinks=True)
        not_passed = [
            f"  {entry.get('rig', '')} {entry['nodeid']}: {entry['outcome']} "
            f"({entry.get('blame')}): {entry.get('message', '')[:300]}"
            for entry in scenarios
            if entry["outcome"] != "passed"
        ]
        sys.exit(
            f"bench_rigs: {rigs} rig(s): exit {done.returncode}, status {summary['status']}: "
            f"not a clean run, no figure; its reports are kept in {kept}\n"
            + "\n".join(not_passed)
            + f"\n{done.stdout[-2000:]}{done.stderr}"
        )
    return wall, cpu, summary["counts"]["passed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rigs", default="1,2,4", help="rig counts to compare (first: baseline)")
    parser.add_argument("--tags", default=None, help="a tag expression (default: every scenario)")
    args = parser.parse_args()
    counts = [int(n) for n in args.rigs.split(",")]
    walls: dict[int, list[float]] = {n: [] for n in counts}
    cpus: dict[int, list[float]] = {n: [] for n in counts}
    scenarios = 0
    with tempfile.TemporaryDirectory(prefix="bench-rigs-") as work:
        for round_number in range(args.rounds):
            for n in counts:
                wall, cpu, scenarios = _run(n, Path(work) / f"r{n}", args.tags)
                walls[n].append(wall)
                cpus[n].append(cpu)
                print(f"round {round_number + 1}: {n} rig(s): {wall:.1f} s wall, {cpu:.1f} s CPU")
    base = statistics.median(walls[counts[0]])
    cores = os.cpu_count() or 1
    print(f"\n{scenarios} scenarios, {cores} CPUs, {args.rounds} round(s), medians:")
    for n in counts:
        wall = statistics.median(walls[n])
        cpu = statistics.median(cpus[n])
        print(
            f"  {n} rig(s): {wall:6.1f} s  ({cpu:.1f} s CPU, the {cores} cores "
            f"{cpu / (wall * cores):.0%} busy)  speed-up over {counts[0]} rig: {base / wall:.2f}x"
        )


if __name__ == "__main__":
    main()
