"""End to end on the real sim rig (pty, process, pcscd + vpcd, QR screen, host): the
payments and performance features catch the seeded payment defects.

``pos-sim-payment-defects-1.4.2`` checks only ``interfaces.card`` before a sale (so a QR
or contactless sale on a disabled interface goes on) and keeps 64 KiB per approved sale:
the refusal scenarios and the soak must fail, as terminal failures naming what they saw.
"""

from __future__ import annotations

from typing import Any

import pytest

from hil.suite import FEATURES
from tests.conftest import FIRMWARE, run_features

pytestmark = pytest.mark.integration

FULL = FEATURES.parent / "rigs" / "sim.toml"
DEFECTS = f"--firmware={FIRMWARE / 'pos-sim-payment-defects-1.4.2.fw.json'}"


def _outcomes(summary: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["scenario"]: (s["outcome"], s["message"] or "") for s in summary["scenarios"]}


def test_a_sale_on_a_disabled_interface_that_goes_on_is_caught(pytester: pytest.Pytester) -> None:
    run = run_features(pytester, ("payments.feature",), DEFECTS, "-k", "disabled", rig=FULL)
    outcomes = _outcomes(run.summary())
    assert len(outcomes) == 2, outcomes
    for scenario, (outcome, message) in outcomes.items():
        assert outcome == "failed", (scenario, outcome, message)
        # the terminal prompted instead of refusing, and gave up waiting for the card or code
        assert "expected E_PAY_INTERFACE_DISABLED" in message, message


def test_a_terminal_that_keeps_memory_per_sale_fails_the_soak(pytester: pytest.Pytester) -> None:
    run = run_features(pytester, ("performance.feature",), DEFECTS, "-k", "soak", rig=FULL)
    ((scenario, (outcome, message)),) = _outcomes(run.summary()).items()
    assert outcome == "failed", (scenario, message)
    assert "soak_rss_growth" in message and "a leak?" in message, message
