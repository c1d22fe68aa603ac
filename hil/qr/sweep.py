"""Decode rate over one degradation axis: where does a scanner stop reading?

``run_sweep`` shows the code at each level of one axis, ``frames`` times with a
different seed (glare spot, smudge position, noise), asks the scanner each time, and
counts decoded, failed and *wrong* reads (a payload other than the one shown: the one
outcome a terminal must never produce). The result renders as a text table, CSV and
a PNG plot drawn with OpenCV.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from hil.contract.qr import AxisSpec, axis_spec
from hil.qr.degrade import AXES, Degradation
from hil.qr.render import to_png


@dataclass(frozen=True)
class Attempt:
    """One show + scan: what the scanner answered."""

    payload: str | None  # None: no code read (a clean failure)
    decode_ms: float | None = None


@dataclass(frozen=True)
class SweepLevel:
    level: float
    frames: int
    decoded: int
    wrong: int
    decode_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.decoded / self.frames if self.frames else 0.0

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.decode_ms) if self.decode_ms else None


@dataclass(frozen=True)
class SweepResult:
    axis: str
    base: Degradation
    levels: tuple[SweepLevel, ...]
    spec: AxisSpec | None

    @property
    def wrong(self) -> int:
        return sum(level.wrong for level in self.levels)

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                self.axis: lv.level,
                "frames": lv.frames,
                "decoded": lv.decoded,
                "wrong": lv.wrong,
                "rate": round(lv.rate, 3),
                "median_decode_ms": None if lv.median_ms is None else round(lv.median_ms, 2),
                "in_spec": None if self.spec is None else self.spec.within(lv.level),
            }
            for lv in self.levels
        ]

    def table(self) -> str:
        head = f"{self.axis:>14} | frames | decoded | wrong |  rate | median ms | in spec"
        lines = [head, "-" * len(head)]
        for row in self.rows():
            ms = "-" if row["median_decode_ms"] is None else f"{row['median_decode_ms']:.1f}"
            spec = {None: "-", True: "yes", False: "no"}[row["in_spec"]]
            lines.append(
                f"{row[self.axis]:>14g} | {row['frames']:>6} | {row['decoded']:>7} | "
                f"{row['wrong']:>5} | {row['rate'] * 100:>4.0f}% | {ms:>9} | {spec}"
            )
        return "\n".join(lines)

    def csv(self) -> str:
        rows = self.rows()
        keys = list(rows[0]) if rows else [self.axis]
        out = [",".join(keys)]
        out += [",".join("" if r[k] is None else str(r[k]) for k in keys) for r in rows]
        return "\n".join(out) + "\n"

    def last_full_rate(self) -> float | None:
        """The worst level (in sweep order) up to which every frame decoded."""
        best = None
        for lv in self.levels:
            if lv.decoded != lv.frames:
                break
            best = lv.level
        return best

    def plot_png(self, width: int = 720, height: int = 420) -> bytes:
        return to_png(plot(self, width, height))


def run_sweep(
    axis: str,
    levels: Sequence[float],
    frames: int,
    attempt: Callable[[Degradation], Attempt],
    *,
    expected: str,
    base: Degradation | None = None,
) -> SweepResult:
    """Show ``expected`` at each level of ``axis`` ``frames`` times; count what was read."""
    if axis not in AXES:
        raise ValueError(f"unknown degradation axis {axis!r} (known: {', '.join(AXES)})")
    if frames < 1:
        raise ValueError("frames per level must be at least 1")
    start = base or Degradation()
    results = []
    for level in levels:
        decoded = wrong = 0
        times: list[float] = []
        for seed in range(frames):
            degradation = replace(start, **{axis: float(level)}, seed=seed)
            got = attempt(degradation)
            if got.payload is None:
                continue
            if got.payload == expected:
                decoded += 1
                if got.decode_ms is not None:
                    times.append(got.decode_ms)
            else:
                wrong += 1
        results.append(SweepLevel(float(level), frames, decoded, wrong, times))
    try:
        spec: AxisSpec | None = axis_spec(axis)
    except KeyError:
        spec = None
    return SweepResult(axis, start, tuple(results), spec)


# --- the plot ------------------------------------------------------------------------

_BLACK = (0, 0, 0)
_GREY = (200, 200, 200)
_BLUE = (200, 90, 20)  # BGR
_RED = (40, 40, 220)
_GREEN = (60, 160, 60)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def plot(result: SweepResult, width: int = 720, height: int = 420) -> np.ndarray[Any, Any]:
    """Decode rate (%) against level: a BGR image with axes, grid, spec line and legend."""
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    left, right, top, bottom = 70, 20, 50, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    levels = [lv.level for lv in result.levels] or [0.0, 1.0]
    lo, hi = min(levels), max(levels)
    if hi == lo:
        hi = lo + 1.0

    def px(level: float, rate: float) -> tuple[int, int]:
        x = left + (level - lo) / (hi - lo) * plot_w
        y = top + (1.0 - rate) * plot_h
        return round(x), round(y)

    for pct in range(0, 101, 20):
        y = top + round((1 - pct / 100) * plot_h)
        cv2.line(canvas, (left, y), (left + plot_w, y), _GREY, 1)
        cv2.putText(canvas, f"{pct}%", (left - 48, y + 5), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    for level in levels:
        x, _ = px(level, 0)
        cv2.line(canvas, (x, top + plot_h), (x, top + plot_h + 5), _BLACK, 1)
        cv2.putText(
            canvas, f"{level:g}", (x - 12, top + plot_h + 22), _FONT, 0.42, _BLACK, 1, cv2.LINE_AA
        )
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), _BLACK, 1)

    if result.spec is not None and lo <= result.spec.limit <= hi:
        x, _ = px(result.spec.limit, 0)
        for y in range(top, top + plot_h, 10):
            cv2.line(canvas, (x, y), (x, min(y + 5, top + plot_h)), _GREEN, 2)
        cv2.putText(canvas, "spec limit", (x + 4, top + 14), _FONT, 0.45, _GREEN, 1, cv2.LINE_AA)

    points = [px(lv.level, lv.rate) for lv in result.levels]
    if len(points) > 1:
        cv2.polylines(canvas, [np.array(points, dtype=np.int32)], False, _BLUE, 2, cv2.LINE_AA)
    for lv, point in zip(result.levels, points, strict=True):
        cv2.circle(canvas, point, 5, _RED if lv.wrong else _BLUE, -1, cv2.LINE_AA)

    frames = result.levels[0].frames if result.levels else 0
    title = f"decode rate vs {result.axis} ({frames} frames a level)"
    cv2.putText(canvas, title, (left, 30), _FONT, 0.6, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(
        canvas,
        result.axis + ("" if result.spec is None else f" [{result.spec.unit}]"),
        (left + plot_w // 2 - 60, height - 15),
        _FONT,
        0.5,
        _BLACK,
        1,
        cv2.LINE_AA,
    )
    if result.wrong:
        cv2.putText(
            canvas,
            f"WRONG PAYLOADS: {result.wrong}",
            (left + 10, top + plot_h - 10),
            _FONT,
            0.55,
            _RED,
            2,
            cv2.LINE_AA,
        )
    return canvas
