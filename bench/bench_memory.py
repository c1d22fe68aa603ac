"""Memory growth over 1,000 scenarios: `hil run` against plain pytest-bdd + allure, one run.

Two temporary projects, each one Scenario Outline of ``--warmup`` + ``--scenarios``
rows (the same two projects as bench/bench_scenario.py):

- floor: plain pytest with pytest-bdd and allure-pytest-bdd (results written), one
  step that does nothing;
- hil: `hil run --features` on the sim rig (the hil plugin, live progress, Allure,
  summary.json, junit, the rig's per-scenario checks and put-backs), one step that
  reads the terminal's device info over the test port.

A small plugin reads the pytest process's resident set size (VmRSS, after a garbage
collection) when the warm-up rows are over and again after the last row; the growth
is the difference, so start-up, imports and the rig's boot are not counted, and what
the first scenarios allocate once (caches, pools) is in the warm-up. Prints both
growths; run with `.venv/bin/python bench/bench_memory.py` (`--warmup 100
--scenarios 1000`). The issue's budget: hil's growth under 20 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench_scenario import BIN, _write_floor, _write_hil

MEMORY_PLUGIN = textwrap.dedent(
    """
    import gc
    import json
    import os

    _done = []
    _marks = {}


    def _rss_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc/self/status")


    def pytest_runtest_logfinish(nodeid, location):
        _done.append(nodeid)
        if len(_done) in (int(os.environ["BENCH_WARMUP"]), int(os.environ["BENCH_LAST"])):
            gc.collect()
            _marks[len(_done)] = _rss_kib()


    def pytest_sessionfinish(session, exitstatus):
        with open(os.environ["BENCH_MEMORY_FILE"], "w") as out:
            json.dump({"marks": _marks, "ran": len(_done)}, out)
    """
)


def _measured(command: list[str], cwd: Path, warmup: int, last: int) -> tuple[float, int, int]:
    """Growth in MiB between the two marks, and the RSS at each (KiB)."""
    record = cwd / "memory.json"
    record.unlink(missing_ok=True)
    path = os.pathsep.join(p for p in (str(cwd.parent), os.environ.get("PYTHONPATH")) if p)
    env = dict(
        os.environ,
        BENCH_MEMORY_FILE=str(record),
        BENCH_WARMUP=str(warmup),
        BENCH_LAST=str(last),
        PYTHONPATH=path,
    )
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not record.exists():
        sys.exit(
            f"{' '.join(command)} failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    marks = {int(k): v for k, v in json.loads(record.read_text())["marks"].items()}
    if set(marks) != {warmup, last}:
        sys.exit(f"{' '.join(command)}: ran {sorted(marks)} marks, wanted {warmup} and {last}")
    return (marks[last] - marks[warmup]) / 1024, marks[warmup], marks[last]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=int, default=100, help="rows before the first mark")
    parser.add_argument("--scenarios", type=int, default=1000, help="rows between the marks")
    options = parser.parse_args()
    rows = options.warmup + options.scenarios
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as temp:
        root = Path(temp)
        (root / "benchmemory.py").write_text(MEMORY_PLUGIN)
        # Not named "hil": the temporary root is on PYTHONPATH (for the plugin).
        floor, hil = root / "floor-project", root / "hil-project"
        _write_floor(floor, rows)
        _write_hil(hil, rows)
        floor_command = [str(BIN / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        floor_command += ["-p", "no:hil", "-p", "benchmemory", "--alluredir", str(floor / "a")]
        hil_command = [str(BIN / "hil"), "run", "--features", "features", "--reports", "reports"]
        hil_command += ["--no-html", "--", "-p", "benchmemory"]
        floor_mib, floor_at, _ = _measured(floor_command, floor, options.warmup, rows)
        hil_mib, hil_at, hil_end = _measured(hil_command, hil, options.warmup, rows)
    print(f"scenarios measured:        {options.scenarios} (after {options.warmup} to warm up)")
    print(f"pytest-bdd + allure floor: {floor_mib:+.1f} MiB (RSS {floor_at / 1024:.1f} MiB before)")
    print(
        f"hil run on the sim rig:    {hil_mib:+.1f} MiB "
        f"(RSS {hil_at / 1024:.1f} -> {hil_end / 1024:.1f} MiB)"
    )
    print(f"budget:                    < 20 MiB growth: {'met' if hil_mib < 20 else 'NOT met'}")


if __name__ == "__main__":
    main()
