"""Sweeps: counting decoded / failed / wrong reads per level, table, CSV and PNG plot."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hil.contract.qr import IN_SPEC, axis_spec, within_spec
from hil.qr.degrade import Degradation
from hil.qr.sweep import Attempt, run_sweep

PAYLOAD = "PAYLOAD"


def fake_scanner(limit: float, *, wrong_at: float | None = None):  # type: ignore[no-untyped-def]
    """Reads the payload while blur <= limit; a chosen level reads garbage once."""
    seen: list[Degradation] = []

    def attempt(d: Degradation) -> Attempt:
        seen.append(d)
        if wrong_at is not None and d.blur_sigma == wrong_at and d.seed == 0:
            return Attempt("GARBAGE", 3.0)
        if d.blur_sigma <= limit:
            return Attempt(PAYLOAD, 10.0 + d.seed)
        return Attempt(None)

    return attempt, seen


def test_sweep_counts_and_varies_the_seed() -> None:
    attempt, seen = fake_scanner(1.5)
    result = run_sweep(
        "blur_sigma",
        [0, 1, 2, 3],
        3,
        attempt,
        expected=PAYLOAD,
        base=Degradation(contrast=0.5),
    )
    assert [lv.decoded for lv in result.levels] == [3, 3, 0, 0]
    assert [lv.rate for lv in result.levels] == [1.0, 1.0, 0.0, 0.0]
    assert result.levels[0].median_ms == 11.0
    assert result.levels[2].median_ms is None
    assert result.wrong == 0
    assert result.last_full_rate() == 1.0
    assert {d.seed for d in seen} == {0, 1, 2}
    assert all(d.contrast == 0.5 for d in seen)  # the base degradation is kept
    rows = result.rows()
    assert rows[1] == {
        "blur_sigma": 1.0,
        "frames": 3,
        "decoded": 3,
        "wrong": 0,
        "rate": 1.0,
        "median_decode_ms": 11.0,
        "in_spec": True,
    }
    assert rows[2]["in_spec"] is False
    table = result.table()
    assert "blur_sigma" in table.splitlines()[0] and "100%" in table and "  0%" in table
    csv = result.csv().splitlines()
    assert csv[0] == "blur_sigma,frames,decoded,wrong,rate,median_decode_ms,in_spec"
    assert csv[3] == "2.0,3,0,0,0.0,,False"


def test_sweep_counts_wrong_payloads_apart_from_failures() -> None:
    attempt, _ = fake_scanner(5, wrong_at=1.0)
    result = run_sweep("blur_sigma", [0, 1], 2, attempt, expected=PAYLOAD)
    assert [(lv.decoded, lv.wrong) for lv in result.levels] == [(2, 0), (1, 1)]
    assert result.wrong == 1


def test_plot_is_a_png_with_the_curve() -> None:
    attempt, _ = fake_scanner(1.5)
    result = run_sweep("blur_sigma", [0, 0.5, 1, 1.5, 2, 3], 2, attempt, expected=PAYLOAD)
    png = result.plot_png(720, 420)
    image = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (420, 720, 3)
    # the curve is drawn in blue (BGR 200, 90, 20) and the spec line in green
    blue = np.all(np.abs(image.astype(int) - [200, 90, 20]) < 40, axis=2)
    green = np.all(np.abs(image.astype(int) - [60, 160, 60]) < 40, axis=2)
    assert blue.sum() > 300 and green.sum() > 50
    # 100% points sit high on the plot, 0% points low
    ys, _ = np.nonzero(blue)
    assert ys.min() < 80 and ys.max() > 330


def test_sweep_refuses_bad_input() -> None:
    attempt, _ = fake_scanner(1)
    with pytest.raises(ValueError, match="unknown degradation axis"):
        run_sweep("sharpness", [1], 1, attempt, expected=PAYLOAD)
    with pytest.raises(ValueError, match="at least 1"):
        run_sweep("blur_sigma", [1], 0, attempt, expected=PAYLOAD)


def test_spec_directions() -> None:
    assert axis_spec("contrast").within(0.3) and not axis_spec("contrast").within(0.1)
    assert axis_spec("blur_sigma").within(1.5) and not axis_spec("blur_sigma").within(1.6)
    assert within_spec(Degradation(blur_sigma=1, contrast=0.5))
    assert not within_spec(Degradation(blur_sigma=1, contrast=0.1))
    assert len(IN_SPEC) == 8
    with pytest.raises(KeyError):
        axis_spec("seed")
