"""pos-hil as a lab gets it: a wheel installed outside this checkout.

The wheel is built from the checkout and installed into a fresh virtual environment
under a temporary folder; its third-party dependencies are borrowed from the project's
environment through a path entry (so the test needs no network and no compiler, and
no pos-hil code comes from there: the environment's own editable install is not
activated by a path entry). Then, from folders that hold nothing of this checkout:

- ``hil run`` in an empty folder runs the embedded default: the shipped suite on the
  shipped sim rig, all green, with the HTML report;
- ``hil init lab`` writes a lab project, and ``hil run`` inside it is green as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

FULL_RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv with pos-hil installed from its wheel."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(dist),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        env=_environment(),
    )
    (wheel,) = dist.glob("pos_hil-*.whl")
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=_environment()
    )
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            env=_environment(),
        ).stdout.strip()
    )
    (site / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        env=_environment(),
    )
    where = subprocess.run(
        [str(python), "-c", "import hil, hil.suite; print(hil.__file__, hil.suite.DEFAULT_RIG)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=base,
        env=_environment(),
    ).stdout
    assert str(REPO) not in where, f"pos-hil imported from the checkout: {where}"
    assert str(site) in where
    return venv / "bin"


def _environment() -> dict[str, str]:
    # Nothing of the checkout may reach the installed package's processes.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # The report generator a lab installs once with `hil report --install-tools`;
    # here the one this checkout's set-up installed.
    env["HIL_TOOLS_DIR"] = str(REPO / ".tools")
    return env


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "hil"), *args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=FULL_RUN_TIMEOUT_S,
        check=False,
    )


def _all_green(result: subprocess.CompletedProcess[str], reports: Path) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary: dict[str, Any] = json.loads((reports / "summary.json").read_text())
    counts = summary["counts"]
    assert counts["passed"] == summary["collected"] >= 60, counts
    assert counts["failed"] == counts["broken"] == counts["skipped"] == 0, counts
    return summary


def test_hil_run_in_an_empty_folder_runs_the_shipped_suite(installed: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(installed, "run", cwd=empty)
    summary = _all_green(result, empty / "reports")
    assert "/site-packages/hil/suite/rigs/sim.toml" in summary["environment"]["rig_file"]
    assert (empty / "reports" / "html" / "index.html").is_file(), result.stderr


def test_hil_init_makes_a_project_that_runs_as_it_is(installed: Path, tmp_path: Path) -> None:
    made = _run(installed, "init", "lab", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    lab = tmp_path / "lab"
    assert (lab / "rigs" / "sim.toml").is_file()
    assert sorted(p.name for p in (lab / "features").glob("*.feature"))
    assert not list(lab.rglob("*.pem")), "the test signing key stays in pos-hil"
    result = _run(installed, "run", "--no-html", cwd=lab)
    summary = _all_green(result, lab / "reports")
    assert summary["environment"]["rig_file"] == str(lab / "rigs" / "sim.toml")
    again = _run(installed, "init", "lab", cwd=tmp_path)
    assert again.returncode == 2
    assert "lab: exists and is not an empty folder" in again.stderr
