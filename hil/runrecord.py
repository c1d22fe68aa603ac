"""A finished run as the tools after it read it: ``hil compare`` and ``hil certify``.

A run is named by its folder (the one holding ``summary.json``), by the
``summary.json`` itself, by its run ID (``reports/runs/<run id>``, hil.archive) or as
``latest``. Reading is strict: a file that is missing, not strict JSON, or
lacks what a run summary has is a one-line ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.strictjson import StrictJsonError, loads_object

SUMMARY_NAME = "summary.json"


@dataclass(frozen=True)
class Measured:
    name: str
    value: float
    unit: str
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ScenarioRecord:
    """One scenario of a run, aggregated over its repeats."""

    nodeid: str
    feature: str
    scenario: str
    outcome: str  # passed, failed, broken, skipped, pending
    blame: str | None
    repeat_count: int
    failed_repeats: int
    message: str
    measurements: tuple[Measured, ...]

    @property
    def title(self) -> str:
        """Feature and scenario as the Gherkin says them, with an outline row's values."""
        params = self.nodeid.partition("[")[2].rpartition("]")[0]
        return f"{self.feature}: {self.scenario}" + (f" [{params}]" if params else "")

    @property
    def intermittent(self) -> bool:
        """Failed some of its repeats, not all: a flaky terminal, never a clean verdict."""
        return 0 < self.failed_repeats < self.repeat_count

    @property
    def terminal_failed(self) -> bool:
        return self.outcome == "failed" and self.blame in (None, "terminal")

    @property
    def judged(self) -> bool:
        """The scenario ran to a verdict on the terminal: passed, or failed by it (not a
        rig fault, configuration error or framework bug, not skipped)."""
        return self.outcome == "passed" or self.terminal_failed


@dataclass(frozen=True)
class RunRecord:
    path: Path  # the summary.json
    data: dict[str, Any]
    scenarios: dict[str, ScenarioRecord]

    @property
    def run_id(self) -> str:
        return str(self.data.get("run_id", ""))

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def environment(self) -> dict[str, str]:
        env = self.data.get("environment")
        return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}

    @property
    def complete(self) -> bool:
        return self.data.get("complete") is True and self.data.get("interrupted") is not True


def summary_path(run: Path) -> Path:
    return run / SUMMARY_NAME if run.is_dir() else run


def load_run(run: Path, root: Path = Path("reports")) -> RunRecord:
    """The run whose folder (or summary.json) is ``run``, or whose run ID is ``run``
    under ``root/runs``, or the latest run in ``root``."""
    from hil.archive import resolve_run

    run = resolve_run(run, root)
    path = summary_path(run)
    if not path.is_file():
        where = (
            f"{run}: no {SUMMARY_NAME} in this folder" if run.is_dir() else f"{run}: no such run"
        )
        raise ConfigError(
            f"{where} (name a run's folder, its {SUMMARY_NAME}, its run ID under "
            f"{root / 'runs'}, or latest)"
        )
    try:
        data = loads_object(path.read_bytes())
    except StrictJsonError as e:
        raise ConfigError(f"{path}: not a run summary: {e}") from None
    raw = data.get("scenarios")
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: scenarios: missing or not a list")
    scenarios: dict[str, ScenarioRecord] = {}
    for index, entry in enumerate(raw):
        record = _scenario(entry, f"{path}: scenarios[{index}]")
        scenarios[record.nodeid] = record
    return RunRecord(path, data, scenarios)


def _scenario(entry: Any, where: str) -> ScenarioRecord:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: not an object")

    def text(key: str, default: str | None = None) -> str:
        value = entry.get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{where}.{key}: missing or not a string")
        return value

    def count(key: str) -> int:
        value = entry.get(key, 1 if key == "repeat_count" else 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: not a count")
        return value

    blame = entry.get("blame")
    if blame is not None and not isinstance(blame, str):
        raise ConfigError(f"{where}.blame: not a string")
    measurements = []
    for k, m in enumerate(entry.get("measurements") or []):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            raise ConfigError(f"{where}.measurements[{k}]: not a measurement")
        value = m.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # a measurement that could not be taken has nothing to compare
        measurements.append(
            Measured(
                m["name"],
                float(value),
                str(m.get("unit", "")),
                _limit(m.get("low")),
                _limit(m.get("high")),
            )
        )
    return ScenarioRecord(
        nodeid=text("nodeid"),
        feature=text("feature", ""),
        scenario=text("scenario", ""),
        outcome=text("outcome"),
        blame=blame,
        repeat_count=max(count("repeat_count"), 1),
        failed_repeats=count("failed_repeats"),
        message=text("message", ""),
        measurements=tuple(measurements),
    )


def _limit(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
