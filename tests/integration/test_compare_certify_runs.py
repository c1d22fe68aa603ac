"""End to end on the sim rig: a healthy run, then a seeded-defect run; ``hil compare``
names exactly what the defect broke and exits 1; ``hil certify`` signs the healthy run,
``hil verify`` accepts it and refuses it after a one-byte edit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hil.firmware import generate_private_key_pem, public_key_pem
from hil.suite import FIXTURES

pytestmark = [pytest.mark.integration]

HIL = Path(sys.executable).parent / "hil"
SMOKE = ("--tags", "smoke and not slow")


def _hil(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HIL), *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("runs")
    healthy = _hil("run", "--no-html", "--reports", "healthy", *SMOKE, cwd=work)
    assert healthy.returncode == 0, healthy.stdout[-3000:] + healthy.stderr
    defect = _hil(
        "run",
        "--no-html",
        "--reports",
        "defect",
        "--firmware",
        str(FIXTURES / "firmware" / "pos-sim-comm-lies-1.4.2.fw.json"),
        *SMOKE,
        cwd=work,
    )
    assert defect.returncode == 1, defect.stdout[-3000:] + defect.stderr
    return work / "healthy", work / "defect"


def test_compare_names_exactly_what_the_defect_broke(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    healthy, defect = two_runs
    result = _hil("compare", str(healthy), str(defect), "--json", "cmp.json", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = {
        f"{s['feature']}: {s['scenario']}"
        for s in json.loads((defect / "summary.json").read_text())["scenarios"]
        if s["outcome"] == "failed"
    }
    assert broken, "the seeded defect broke nothing in the smoke selection"
    comparison = json.loads((tmp_path / "cmp.json").read_text())
    assert set(comparison["newly_failing"]) == broken
    assert comparison["newly_passing"] == comparison["still_failing"] == []
    assert "regression(s)" in result.stderr
    same = _hil("compare", str(healthy), str(healthy), cwd=tmp_path)
    assert same.returncode == 0 and "no regression" in same.stdout


def test_a_certified_run_verifies_and_a_one_byte_edit_does_not(
    two_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    healthy, _ = two_runs
    key = tmp_path / "lab.pem"
    key.write_bytes(generate_private_key_pem())
    public = tmp_path / "lab.pub"
    public.write_bytes(public_key_pem(key.read_bytes()))
    bundle = tmp_path / "bundle"
    made = _hil("certify", str(healthy), "--key", str(key), "--out", str(bundle), cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    payload = json.loads((bundle / "certificate.json").read_text())["payload"]
    assert payload["firmware"]["version"] == "1.4.2" and len(payload["suite_sha256"]) == 64
    assert payload["verdict"] == "passed" and payload["scenarios"]
    args = ("verify", str(bundle), "--public-key", str(public), "--run", str(healthy))
    good = _hil(*args, cwd=tmp_path)
    assert good.returncode == 0 and "verified" in good.stdout, good.stdout + good.stderr
    data = bytearray((bundle / "certificate.json").read_bytes())
    at = data.index(b'"passed"')
    data[at + 1 : at + 2] = b"P"  # one byte: passed -> Passed
    (bundle / "certificate.json").write_bytes(bytes(data))
    bad = _hil(*args, cwd=tmp_path)
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "NOT VERIFIED" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_an_interrupted_run_cannot_be_certified(tmp_path: Path) -> None:
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "summary.json").write_text(
        json.dumps(
            {
                "run_id": "x",
                "status": "interrupted",
                "complete": False,
                "interrupted": True,
                "scenarios": [],
            }
        )
    )
    key = tmp_path / "lab.pem"
    key.write_bytes(generate_private_key_pem())
    result = _hil("certify", str(folder), "--key", str(key), cwd=tmp_path)
    assert result.returncode == 2 and "interrupted" in result.stderr
    assert not (folder / "certificate").exists()
