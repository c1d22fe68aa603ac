"""hil compare and hil certify / verify on run summaries written by the test."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hil.certify import VerificationFailed, certify, verify_bundle
from hil.cli import app
from hil.compare import compare
from hil.errors import ConfigError
from hil.firmware import generate_private_key_pem, public_key_pem
from hil.runrecord import load_run

ENV = {
    "run_id": "R",
    "rig": "sim",
    "terminal_model": "POS-SIM-A8",
    "terminal_serial": "SIM8A0000001",
    "terminal_id": "T0000001",
    "firmware_version": "1.4.2",
    "firmware_sha256": "ab" * 32,
    "firmware_image": "x.fw.json",
    "instrument.dut": "sim",
    "pos_hil_version": "0.1.0",
    "suite_sha256": "cd" * 32,
}


def scenario(
    name: str,
    outcome: str = "passed",
    *,
    blame: str | None = None,
    repeats: int = 1,
    failed_repeats: int = 0,
    measurements: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if outcome == "failed" and blame is None:
        blame = "terminal"
    return {
        "nodeid": f"f.feature::test_{name}",
        "feature": "F",
        "scenario": name,
        "outcome": outcome,
        "blame": blame,
        "message": "" if outcome == "passed" else "it broke",
        "measurements": measurements or [],
        "requirements": ["SC-X-01"],
        "repeat_count": repeats,
        "failed_repeats": failed_repeats,
    }


def write_run(folder: Path, run_id: str, scenarios: list[dict[str, Any]], **top: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "run_id": run_id,
        "status": "finished",
        "complete": True,
        "interrupted": False,
        "started": "2026-11-30T00:00:00Z",
        "updated": "2026-11-30T00:01:00Z",
        "duration_s": 60.0,
        "counts": {},
        "environment": {**ENV, "run_id": run_id},
        "scenarios": scenarios,
        **top,
    }
    (folder / "summary.json").write_text(json.dumps(data))
    (folder / "junit.xml").write_text("<testsuites/>")
    return folder


def boot(value: float, high: float | None = 10.0, low: float | None = None) -> dict[str, Any]:
    return {"name": "boot", "value": value, "unit": "s", "low": low, "high": high}


# --- compare ------------------------------------------------------------------------------


def test_compare_sorts_every_scenario_into_one_list(tmp_path: Path) -> None:
    a = write_run(
        tmp_path / "a",
        "A",
        [
            scenario("broken_by_b"),
            scenario("fixed_by_b", "failed"),
            scenario("still_bad", "failed"),
            scenario("flaky_in_a", "failed", repeats=3, failed_repeats=1),
            scenario("rig_fault_in_b"),
            scenario("only_in_a"),
            scenario("steady"),
        ],
    )
    b = write_run(
        tmp_path / "b",
        "B",
        [
            scenario("broken_by_b", "failed"),
            scenario("fixed_by_b"),
            scenario("still_bad", "failed"),
            scenario("flaky_in_a", "failed", repeats=3, failed_repeats=3),
            scenario("rig_fault_in_b", "broken", blame="rig"),
            scenario("only_in_b"),
            scenario("steady"),
        ],
    )
    result = compare(load_run(a), load_run(b))
    assert result.newly_failing == ["F: broken_by_b"]
    assert result.newly_passing == ["F: fixed_by_b"]
    assert result.still_failing == ["F: still_bad"]
    assert result.intermittent == ["F: flaky_in_a"]  # never a regression or a fix
    assert result.not_comparable == ["F: rig_fault_in_b (rig fault in B)"]
    assert (result.added, result.removed) == (["F: only_in_b"], ["F: only_in_a"])
    assert result.regressions == 1


@pytest.mark.parametrize(
    ("before", "after", "verdict"),
    [
        (boot(1.0), boot(1.25), "regressed"),  # a ceiling: up is worse
        (boot(1.0), boot(0.7), "improved"),
        (boot(1.0, high=None, low=0.5), boot(0.75, high=None, low=0.5), "regressed"),  # a floor
        (boot(1.0, high=None), boot(2.0, high=None), "moved"),  # no limit: no direction
        (boot(5.0, low=0.0), boot(8.0, low=0.0), "regressed"),  # closer to the ceiling
        (boot(1.0), boot(1.2), None),  # exactly the tolerance: not beyond it
    ],
)
def test_measurements_count_only_when_they_move_towards_their_limit(
    tmp_path: Path, before: dict[str, Any], after: dict[str, Any], verdict: str | None
) -> None:
    a = write_run(tmp_path / "a", "A", [scenario("s", measurements=[before])])
    b = write_run(tmp_path / "b", "B", [scenario("s", measurements=[after])])
    result = compare(load_run(a), load_run(b), tolerance=0.2)
    assert [m.verdict for m in result.measurements] == ([verdict] if verdict else [])
    assert result.regressions == (1 if verdict == "regressed" else 0)


def test_compare_cli_exits_1_on_a_regression_and_writes_json(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", "A", [scenario("s"), scenario("t")])
    b = write_run(tmp_path / "b", "B", [scenario("s", "failed"), scenario("t")])
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(a), str(b), "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 1, result.output
    assert "newly failing (regressions): 1" in result.output
    assert json.loads((tmp_path / "c.json").read_text())["newly_failing"] == ["F: s"]
    assert runner.invoke(app, ["compare", str(a), str(a)]).exit_code == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no summary.json in this folder"),
        ("{not json", "not a run summary: invalid JSON"),
        ('{"run_id": "x"}', "scenarios: missing or not a list"),
        ('{"scenarios": [{"nodeid": 3}]}', "scenarios[0].nodeid: missing or not a string"),
        ('{"scenarios": [], "scenarios": []}', "not a run summary"),  # duplicate key
    ],
)
def test_an_unreadable_run_is_one_line_naming_the_file(
    tmp_path: Path, content: str | None, message: str
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    if content is not None:
        (folder / "summary.json").write_text(content)
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_run(folder)
    assert "\n" not in str(raised.value) and str(folder) in str(raised.value)


# --- certify / verify ---------------------------------------------------------------------


@pytest.fixture
def lab_key(tmp_path: Path) -> Path:
    key = tmp_path / "lab.pem"
    key.write_bytes(generate_private_key_pem())
    return key


def _certified(tmp_path: Path, lab_key: Path) -> tuple[Path, Path]:
    run = write_run(
        tmp_path / "run", "R1", [scenario("s", measurements=[boot(1.5)]), scenario("t", "failed")]
    )
    certify(load_run(run), lab_key.read_bytes(), tmp_path / "bundle")
    return run, tmp_path / "bundle"


def test_a_certified_run_verifies_with_the_labs_key_and_its_files(
    tmp_path: Path, lab_key: Path
) -> None:
    run, bundle = _certified(tmp_path, lab_key)
    checked = verify_bundle(
        bundle, public_key_pem=public_key_pem(lab_key.read_bytes()), run_folder=run
    )
    assert (checked.run_id, checked.verdict) == ("R1", "failed")  # failures are certifiable
    document = json.loads((bundle / "certificate.json").read_text())
    assert document["payload"]["firmware"]["sha256"] == "ab" * 32
    assert document["payload"]["suite_sha256"] == "cd" * 32
    page = (bundle / "certificate.html").read_text()
    assert "POS-SIM-A8" in page and "<script" not in page and "http" not in page
    assert lab_key.read_text() not in (bundle / "certificate.json").read_text()


def test_every_single_byte_edit_fails_verification(tmp_path: Path, lab_key: Path) -> None:
    _, bundle = _certified(tmp_path, lab_key)
    for name in ("certificate.json", "certificate.html"):
        original = (bundle / name).read_bytes()
        for position in range(0, len(original), max(len(original) // 97, 1)):
            edited = bytearray(original)
            edited[position] ^= 0x01
            (bundle / name).write_bytes(bytes(edited))
            with pytest.raises((VerificationFailed, ConfigError)):
                verify_bundle(bundle)
        (bundle / name).write_bytes(original)
    verify_bundle(bundle)


def test_a_payload_resigned_with_another_key_fails_against_the_labs_key(
    tmp_path: Path, lab_key: Path
) -> None:
    run, bundle = _certified(tmp_path, lab_key)
    forger = tmp_path / "forger.pem"
    forger.write_bytes(generate_private_key_pem())
    certify(load_run(run), forger.read_bytes(), bundle)
    verify_bundle(bundle)  # self-consistent...
    with pytest.raises(VerificationFailed, match="not by the lab's key"):
        verify_bundle(bundle, public_key_pem=public_key_pem(lab_key.read_bytes()))


def test_a_run_file_changed_after_certifying_fails(tmp_path: Path, lab_key: Path) -> None:
    run, bundle = _certified(tmp_path, lab_key)
    (run / "junit.xml").write_text("<testsuites></testsuites>")
    with pytest.raises(VerificationFailed, match=r"junit.xml: changed since"):
        verify_bundle(bundle, run_folder=run)


@pytest.mark.parametrize(
    ("top", "scenarios", "message"),
    [
        ({"status": "interrupted", "interrupted": True, "complete": False}, None, "interrupted"),
        ({"status": "running", "complete": False}, None, "did not finish"),
        ({}, [scenario("s", "broken", blame="rig")], "not judged"),
        ({}, [], "judged no scenario"),
    ],
)
def test_an_incomplete_run_cannot_be_certified(
    tmp_path: Path,
    lab_key: Path,
    top: dict[str, Any],
    scenarios: list[dict[str, Any]] | None,
    message: str,
) -> None:
    run = write_run(
        tmp_path / "run", "R", scenarios if scenarios is not None else [scenario("s")], **top
    )
    with pytest.raises(ConfigError, match=message):
        certify(load_run(run), lab_key.read_bytes(), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_certify_cli_takes_the_key_from_the_environment_and_names_a_missing_one(
    tmp_path: Path, lab_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = write_run(tmp_path / "run", "R", [scenario("s")])
    runner = CliRunner()
    monkeypatch.delenv("HIL_CERT_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"no signing key \(--key PATH or HIL_CERT_KEY=PATH\)"):
        runner.invoke(app, ["certify", str(run)], catch_exceptions=False)
    monkeypatch.setenv("HIL_CERT_KEY", str(lab_key))
    result = runner.invoke(app, ["certify", str(run)])
    assert result.exit_code == 0, result.output
    verified = runner.invoke(app, ["verify", str(run / "certificate"), "--run", str(run)])
    assert verified.exit_code == 0 and "verdict passed" in verified.output
    (run / "certificate" / "certificate.json").write_text("{}")
    refused = runner.invoke(app, ["verify", str(run / "certificate")])
    assert refused.exit_code == 2


def test_hil_version_prints_the_package_version() -> None:
    from hil import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"pos-hil {__version__}"
