"""``hil compare A B``: what build B broke or fixed against run A, scenario by scenario.

The rules (docs/compare.md):

- a scenario is *judged* in a run when it passed or the terminal failed it; a rig
  fault, configuration error, framework bug or skip judges nothing, so a scenario that
  was not judged in either run is listed as "not comparable", never as a change;
- a scenario that failed some of its repeats but not all (intermittent) in either run is
  listed apart and never counted as a regression or a fix: one more run would flip it;
- newly failing = passed in A, failed by the terminal in B: a **regression**;
- a measurement present in both runs that moved by more than the tolerance (relative,
  default 20%) *towards its limit* (up for a ceiling, down for a floor) is a regression
  too; one that moved as far the other way is listed as improved. A measurement with no
  limit is listed as moved, never as a regression: nothing says which way is worse.

Exit 1 when there is a regression (B's terminal does worse), else 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hil.runrecord import Measured, RunRecord, ScenarioRecord

DEFAULT_TOLERANCE = 0.20


@dataclass(frozen=True)
class MovedMeasurement:
    scenario: str
    name: str
    unit: str
    before: float
    after: float
    limit: str  # "high 10.0", "low 0.5" or "none"
    verdict: str  # "regressed", "improved" or "moved" (no limit)

    @property
    def change(self) -> float:
        return (self.after - self.before) / abs(self.before) if self.before else float("inf")


@dataclass
class Comparison:
    before: str  # run IDs
    after: str
    tolerance: float
    newly_failing: list[str] = field(default_factory=list)
    newly_passing: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    intermittent: list[str] = field(default_factory=list)
    not_comparable: list[str] = field(default_factory=list)
    measurements: list[MovedMeasurement] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        moved_worse = sum(1 for m in self.measurements if m.verdict == "regressed")
        return len(self.newly_failing) + moved_worse

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["regressions"] = self.regressions
        return data


def compare(a: RunRecord, b: RunRecord, tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    result = Comparison(a.run_id, b.run_id, tolerance)
    for nodeid in sorted(set(a.scenarios) | set(b.scenarios)):
        before, after = a.scenarios.get(nodeid), b.scenarios.get(nodeid)
        if before is None or after is None:
            present = after if before is None else before
            assert present is not None
            (result.added if before is None else result.removed).append(present.title)
            continue
        title = after.title
        if before.intermittent or after.intermittent:
            result.intermittent.append(title)
            continue
        if not (before.judged and after.judged):
            result.not_comparable.append(
                f"{title} ({_why_unjudged(before, 'A')}{_why_unjudged(after, 'B')})".replace(
                    "(; ", "("
                )
            )
            continue
        if before.outcome == "passed" and after.terminal_failed:
            result.newly_failing.append(title)
        elif before.terminal_failed and after.outcome == "passed":
            result.newly_passing.append(title)
        elif before.terminal_failed and after.terminal_failed:
            result.still_failing.append(title)
        if before.outcome == "passed" and after.outcome == "passed":
            result.measurements.extend(_moved(title, before, after, tolerance))
    return result


def _why_unjudged(record: ScenarioRecord, run: str) -> str:
    if record.judged:
        return ""
    what = record.outcome if record.blame in (None, "terminal") else f"{record.blame} fault"
    return f"; {what} in {run}"


def _by_name(measurements: tuple[Measured, ...]) -> dict[str, list[Measured]]:
    grouped: dict[str, list[Measured]] = {}
    for m in measurements:
        grouped.setdefault(m.name, []).append(m)
    return grouped


def _moved(
    title: str, before: ScenarioRecord, after: ScenarioRecord, tolerance: float
) -> list[MovedMeasurement]:
    moved = []
    old, new = _by_name(before.measurements), _by_name(after.measurements)
    for name in sorted(set(old) & set(new)):
        first = old[name][0]
        was = sum(m.value for m in old[name]) / len(old[name])
        now = sum(m.value for m in new[name]) / len(new[name])
        change = abs(now - was) / abs(was) if was else (0.0 if now == was else float("inf"))
        if change <= tolerance:
            continue
        if first.high is not None and first.low is None:
            limit, verdict = f"high {first.high:g}", "regressed" if now > was else "improved"
        elif first.low is not None and first.high is None:
            limit, verdict = f"low {first.low:g}", "regressed" if now < was else "improved"
        elif first.low is not None and first.high is not None:
            # A window: worse is whichever way leaves less room to the nearer edge.
            room_was = min(was - first.low, first.high - was)
            room_now = min(now - first.low, first.high - now)
            limit = f"within {first.low:g}..{first.high:g}"
            verdict = "regressed" if room_now < room_was else "improved"
        else:
            limit, verdict = "none", "moved"
        moved.append(MovedMeasurement(title, name, first.unit, was, now, limit, verdict))
    return moved
