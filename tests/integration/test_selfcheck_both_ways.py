"""End to end on the real sim (pty, process, pcscd): the self-check's other truths.

The shipped suite on the bare rig exercises every "missing channel" code and catches a
build whose comm item lies there; an image with a version out of format fails the
firmware item, and the suite says that is the truth; a terminal provisioned with the
factory password warns; a build that leaks card numbers into its events and its log
fails the scenario by the rig's leak scan, with every report still masked.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hil.masking import full_pans
from hil.suite import FEATURES, FIXTURES
from tests.conftest import FIRMWARE, run_features
from tests.integration.test_truthful_reports import HIL, pans_in_files

pytestmark = pytest.mark.integration

RIGS = FEATURES.parent / "rigs"
BARE = RIGS / "sim-bare.toml"
FULL = RIGS / "sim.toml"
PAN = "4761739001010010"  # visa-credit's card number
CHANNEL_FREE = ("boot_self_check.feature", "selfcheck_on_command.feature")


def _scenarios(summary: dict[str, Any], outcome: str) -> dict[str, str]:
    return {
        s["scenario"]: s["message"] or "" for s in summary["scenarios"] if s["outcome"] == outcome
    }


def test_hil_run_on_the_bare_rig_runs_the_missing_channel_checks(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    result = subprocess.run(
        [str(HIL), "run", "--rig", str(BARE), "--reports", str(reports), "--no-html"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads((reports / "summary.json").read_text())
    passed = _scenarios(summary, "passed")
    assert "A full self-check on command tells the truth about every item" in passed
    assert "A healthy build boots and every self-check item tells the truth" in passed
    skipped = _scenarios(summary, "skipped")
    assert skipped and all("lacks" in why for why in skipped.values())
    assert summary["counts"]["failed"] == summary["counts"]["broken"] == 0


def test_the_bare_rig_catches_a_comm_item_that_passes_without_a_host(
    pytester: pytest.Pytester,
) -> None:
    run = run_features(
        pytester,
        ("selfcheck_on_command.feature",),
        f"--firmware={FIRMWARE / 'pos-sim-comm-lies-1.4.2.fw.json'}",
        rig=BARE,
    )
    failed = _scenarios(run.summary(), "failed")
    (message,) = failed.values()
    assert "comm: pass OK" in message and "expected fail E_COMM_NO_HOST" in message


def test_an_image_whose_version_is_out_of_format_fails_the_firmware_item(
    pytester: pytest.Pytester,
) -> None:
    """The rig reads the image's version itself: for this image the truth is
    E_FW_VERSION, which the boot and on-command scenarios then demand."""
    run = run_features(
        pytester,
        CHANNEL_FREE,
        f"--firmware={FIRMWARE / 'pos-sim-bad-version-1.4.2.7.fw.json'}",
        rig=BARE,
    )
    summary = run.summary()
    assert summary["counts"]["failed"] == 0, _scenarios(summary, "failed")
    assert "The firmware item reports the image the rig flashed" in _scenarios(summary, "passed")
    results = [json.loads(p.read_text()) for p in run.results.glob("*-result.json")]
    attachments = [
        (run.results / a["source"]).read_text()
        for r in results
        for step in r.get("steps", [])
        for a in step.get("attachments", [])
        if a["name"] == "self-check firmware"
    ]
    assert attachments and all('"E_FW_VERSION"' in text for text in attachments)


FACTORY_PASSWORD_FEATURE = """\
Feature: A terminal fresh from the factory
  Scenario: The security item warns while the admin password is the factory default
    Given the terminal is idle
    When the terminal runs its "security" self-check
    Then the "security" self-check warns with code "E_SEC_DEFAULT_PASSWORD"
    And the idle screen shows the warning "E_SEC_DEFAULT_PASSWORD" with its documented text
    And the system log holds the code "E_SEC_DEFAULT_PASSWORD" from that self-check
"""


def test_a_terminal_provisioned_with_the_factory_password_warns(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HIL_PROVISION_ADMIN_PASSWORD reaches the terminal through the rig's environment
    (the sim dut driver has no option for it); the first boot stores it."""
    (pytester.path / "features").mkdir()
    (pytester.path / "features" / "factory.feature").write_text(FACTORY_PASSWORD_FEATURE)
    monkeypatch.setenv("HIL_PROVISION_ADMIN_PASSWORD", "00000000")
    run = run_features(pytester, (), rig=BARE)
    run.result.assert_outcomes(passed=1)
    monkeypatch.delenv("HIL_PROVISION_ADMIN_PASSWORD")
    healthy = run_features(pytester, (), rig=BARE)  # a fresh flash, a random password
    healthy.result.assert_outcomes(failed=1)
    (message,) = _scenarios(healthy.summary(), "failed").values()
    assert "security reported pass OK" in message


LEAKY_FEATURE = """\
@requires:cards
Feature: A build that writes card numbers where it must not
  Scenario: A card read by a leaky build
    Given the terminal is idle
    When the test card "visa-credit" is inserted
    Then the terminal reads the card within 2.0 seconds
    When the terminal runs its "logs" self-check
    Then the "logs" self-check fails with code "E_LOG_PAN"
    And the system log holds the code "E_LOG_PAN" from that self-check
"""


def test_a_build_that_leaks_card_numbers_fails_by_the_leak_scan_with_reports_masked(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "features").mkdir()
    (pytester.path / "features" / "leaky.feature").write_text(LEAKY_FEATURE)
    run = run_features(
        pytester, (), f"--firmware={FIRMWARE / 'pos-sim-card-leaks-1.4.2.fw.json'}", rig=FULL
    )
    summary = run.summary()
    (scenario,) = summary["scenarios"]
    assert (scenario["outcome"], scenario["blame"]) == ("failed", "terminal"), scenario
    message = scenario["message"]
    assert "CardDataLeak" in message and "had also failed" not in message  # E_LOG_PAN held
    assert "full PAN 476173******0010 in event 'card.read'" in message
    assert "field data.pan" in message and "log entry seq" in message
    console = run.result.stdout.str() + run.result.stderr.str()
    assert full_pans(console) == []
    features = pytester.path / "features"
    assert pans_in_files(pytester.path, set(features.iterdir())) == {}
    assert PAN not in console


def test_the_healthy_build_reads_the_same_card_without_a_leak(pytester: pytest.Pytester) -> None:
    """The control: the same card on the healthy build leaves nothing for the scan."""
    (pytester.path / "features").mkdir()
    (pytester.path / "features" / "card.feature").write_text(
        LEAKY_FEATURE.replace('fails with code "E_LOG_PAN"', "passes").replace(
            '    And the system log holds the code "E_LOG_PAN" from that self-check\n', ""
        )
    )
    run = run_features(pytester, (), rig=FULL)
    run.result.assert_outcomes(passed=1)
    assert (FIXTURES / "cards" / "visa-credit.yaml").is_file()
