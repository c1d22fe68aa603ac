"""How a scenario reads in the Allure report: organised like the self-check.

- **Suites**: ``parentSuite`` / ``suite`` / ``subSuite`` = the area (the feature's
  ``@epic:`` tag) / the feature / the scenario, so the Suites tab is the self-check's
  tree and not a flat list.
- **Step parameters**: the values a person typed in the Gherkin step (the step
  phrase's parsed arguments, as written; a password as ``<secret, N chars>``),
  never the fixtures the step function also takes: allure-pytest-bdd would show every
  argument, ``terminal <hil.terminal... object at 0x...>`` and a multi-kilobyte
  ``BootRecord(...)`` among them.
- **Measurements**: each one a test parameter ``value unit (limit ...): PASS`` (left out
  of the history ID: a measured value changes every run) and all of a scenario's in
  one table attachment (CSV: name, value, unit, low, high, verdict).
- **Links**: ``@issue:ID`` and ``@tms:ID`` tags (and ``@req:ID``) become links through
  URL patterns (hil.plugin reads them from the rig file's ``[report] links``, the
  environment and ``--req-url``).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from hil import reporting
from hil.masking import mask_text
from hil.secrets import SECRET_FIELDS, Secret, shown_secret

SUITE_LABELS = ("parentSuite", "suite", "subSuite")
#: The area of a feature with no ``@epic:`` tag.
NO_AREA = "(no area)"
MEASUREMENTS_ATTACHMENT = "measurements"


def organise_suites(result: dict[str, Any], feature: str | None = None) -> None:
    """Set ``result``'s suite labels to area / feature / scenario (in place)."""
    labels = [label for label in result.get("labels", []) if label.get("name") not in SUITE_LABELS]

    def first(name: str) -> str | None:
        return next((str(label["value"]) for label in labels if label.get("name") == name), None)

    area = first("epic") or NO_AREA
    title = feature or first("feature") or "(no feature)"
    scenario = str(result.get("name", "")) or "(no scenario)"
    labels += [
        {"name": "parentSuite", "value": area},
        {"name": "suite", "value": title},
        {"name": "subSuite", "value": scenario},
    ]
    result["labels"] = labels


def measurement_parameter(measurement: reporting.Measurement) -> dict[str, Any]:
    """A measurement as an Allure parameter, excluded from the history ID."""
    shown = measurement.describe().removeprefix(f"{measurement.name} = ")
    return {"name": measurement.name, "value": shown, "excluded": True}


def measurement_table(measurements: Sequence[reporting.Measurement]) -> bytes:
    """The scenario's measurements as CSV, which Allure shows as a table."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["measurement", "value", "unit", "low limit", "high limit", "verdict"])
    for m in measurements:
        writer.writerow(
            [
                m.name,
                f"{m.value:.6g}",
                m.unit,
                "" if m.low is None else f"{m.low:g}",
                "" if m.high is None else f"{m.high:g}",
                "PASS" if m.passed else "FAIL",
            ]
        )
    return buffer.getvalue().encode("utf-8")


def add_measurements(
    result: dict[str, Any], measurements: Sequence[reporting.Measurement], alluredir: Path
) -> None:
    """Measurements as parameters and one table attachment of ``result`` (in place)."""
    if not measurements:
        return
    named = {m.name for m in measurements}
    parameters = [p for p in result.get("parameters", []) if p.get("name") not in named]
    result["parameters"] = [*parameters, *(measurement_parameter(m) for m in measurements)]
    source = f"{uuid.uuid4()}-attachment.csv"
    reporting.write_atomically(alluredir / source, measurement_table(measurements))
    attachment = {"name": MEASUREMENTS_ATTACHMENT, "source": source, "type": "text/csv"}
    result["attachments"] = [*result.get("attachments", []), attachment]


# --- step parameters: what the person typed --------------------------------------------


def typed_arguments(step: Any, step_func: Any) -> dict[str, str]:
    """The arguments the step's phrase parses out of the Gherkin text, as typed (before
    any converter): the step function's fixtures are not among them."""
    text = str(step.name)
    for context in _step_contexts.of(step_func):
        parser = context.parser
        if not parser.is_matching(text):
            continue
        typed = _as_typed(parser, text)
        converted = parser.parse_arguments(text) or {}
        # A password typed in a step is shown as the rest of pos-hil shows secrets.
        return {
            name: shown_secret(value)
            if name in SECRET_FIELDS or isinstance(converted.get(name), Secret)
            else value
            for name, value in typed.items()
        }
    return {}


class _StepContexts:
    """Step function -> its pytest-bdd step contexts (one per phrase): looked up for
    every Gherkin step, among hundreds of steps; indexed again when steps are
    registered or go."""

    def __init__(self) -> None:
        self._size = -1
        self._by_function: dict[int, list[Any]] = {}

    def of(self, step_func: Any) -> list[Any]:
        from pytest_bdd.steps import step_function_context_registry as registry

        if len(registry) != self._size:
            by_function: dict[int, list[Any]] = {}
            for context in list(registry.values()):
                by_function.setdefault(id(context.step_func), []).append(context)
            self._by_function, self._size = by_function, len(registry)
        known = self._by_function.get(id(step_func), [])
        return [context for context in known if context.step_func is step_func]


_step_contexts = _StepContexts()


def _as_typed(parser: Any, text: str) -> dict[str, str]:
    """Each argument as the slice of ``text`` it was parsed from (``1000 ms``, not the
    ``Duration`` a custom type made of it); the parsed value's text when no slice is
    known."""
    matcher = getattr(parser, "parser", None)  # parse / cfparse: a parse.Parser
    if matcher is not None and hasattr(matcher, "parse"):
        result = matcher.parse(text)
        spans = getattr(result, "spans", None)
        if isinstance(spans, dict):
            return {
                str(name): text[start:end]
                for name, (start, end) in spans.items()
                if isinstance(name, str)
            }
    regex = getattr(parser, "regex", None)  # re
    if regex is not None:
        match = regex.fullmatch(text)
        if match is not None:
            return {str(k): str(v) for k, v in match.groupdict().items() if v is not None}
    parsed = parser.parse_arguments(text) or {}
    return {str(name): str(value) for name, value in parsed.items()}


class StepParameters:
    """Replaces the parameters allure-pytest-bdd gives each Gherkin step (every argument
    of the step function) with what the person typed in the step."""

    def __init__(self, lifecycle: Any) -> None:
        self.lifecycle = lifecycle

    @classmethod
    def for_session(cls, config: pytest.Config) -> StepParameters | None:
        """The plug-in for the allure-pytest-bdd listener of this session, if any."""
        try:
            from allure_pytest_bdd.pytest_bdd_listener import PytestBDDListener
        except ImportError:  # pragma: no cover - allure-pytest-bdd is a dependency
            return None
        for plugin in config.pluginmanager.get_plugins():
            if isinstance(plugin, PytestBDDListener):
                return cls(plugin.lifecycle)
        return None

    # After allure-pytest-bdd's own hook, which sets the parameters this replaces.
    @pytest.hookimpl(trylast=True)
    def pytest_bdd_before_step_call(
        self, step: Any, step_func: Any, step_func_args: Mapping[str, Any]
    ) -> None:
        from allure_commons.model2 import Parameter
        from allure_pytest_bdd.steps import get_step_uuid

        typed = typed_arguments(step, step_func)
        with self.lifecycle.update_step(uuid=get_step_uuid(step)) as step_result:
            if step_result is None:
                return
            step_result.parameters = [
                Parameter(name=name, value=mask_text(value)) for name, value in typed.items()
            ]
