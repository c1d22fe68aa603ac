"""The catalogue of hil's step phrases, generated from the step library itself.

Every step of ``hil.steps`` is found the way pytest-bdd finds it (its registry of step
functions), with its keyword(s), phrase, typed parameters, docstring and an example:
the first line of the shipped features that uses it, else the phrase filled with each
type's example value. ``hil steps`` prints it; ``hil steps --write docs/steps.md``
writes the Markdown page, which a test keeps current.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

from pytest_bdd import parsers
from pytest_bdd.feature import get_features
from pytest_bdd.steps import StepFunctionContext, step_function_context_registry

from hil.steps.phrases import STEP_TYPES, Phrase, parameters

#: Areas in the order a reader meets them; a new module is listed after these.
AREA_ORDER = ("common", "boot", "selfcheck", "faultlines", "cards", "host", "network", "qr")
#: Modules of hil.steps that define no steps.
NOT_AREAS = frozenset({"catalogue", "phrases"})
KEYWORDS = ("given", "when", "then")


@dataclass(frozen=True)
class StepParameter:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class StepEntry:
    """One step phrase of the library."""

    #: the module of hil.steps that defines it
    area: str
    #: Given, When, Then (a step registered for several)
    keywords: tuple[str, ...]
    #: the phrase as a person reads it: parameters as {name}
    phrase: str
    #: the phrase as declared: parameters as {name:Type}
    format: str
    parameters: tuple[StepParameter, ...]
    #: first paragraph of the step function's docstring
    summary: str
    #: a Gherkin line that uses it
    example: str


@dataclass(frozen=True)
class FeatureStep:
    """A step line of a shipped feature, outlines rendered with each example row."""

    type: str
    text: str
    where: str


def _area_modules() -> list[str]:
    import hil.steps

    found = [m.name for m in pkgutil.iter_modules(hil.steps.__path__) if m.name not in NOT_AREAS]
    known = [a for a in AREA_ORDER if a in found]
    return known + sorted(set(found) - set(known))


def step_contexts() -> list[tuple[str, StepFunctionContext]]:
    """(area, pytest-bdd's context) of every step of hil.steps, in catalogue order."""
    areas = _area_modules()
    for area in areas:
        importlib.import_module(f"hil.steps.{area}")
    found: list[tuple[int, int, int, str, StepFunctionContext]] = []
    for registered, context in enumerate(step_function_context_registry.values()):
        module = context.step_func.__module__
        area = module.removeprefix("hil.steps.")
        if module.startswith("hil.steps.") and area in areas:
            line = inspect.getsourcelines(context.step_func)[1]
            # decorators register bottom-up: the top one (registered last) comes first
            found.append((areas.index(area), line, -registered, area, context))
    found.sort(key=lambda entry: entry[:3])
    return [(area, context) for *_, area, context in found]


def human_phrase(pattern: str) -> str:
    """A step parser's pattern as a person reads it: ``{name}`` for each parameter,
    with its type left out; a regular expression's named groups become ``{name}``."""
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern).removeprefix("^").removesuffix("$")
    try:
        return "".join(
            literal + ("" if field is None else f"{{{field}}}")
            for literal, field, _, _ in Formatter().parse(text)
        )
    except ValueError:  # braces of a regular expression, not a format
        return text


def _filled(format: str) -> str:
    return "".join(
        literal + ("" if spec is None else STEP_TYPES[spec].example)
        for literal, _, spec, _ in Formatter().parse(format)
    )


def feature_steps(folder: Path | None = None) -> list[FeatureStep]:
    """Every step line of the features in ``folder`` (default: the shipped suite)."""
    if folder is None:
        from hil.suite import FEATURES

        folder = FEATURES
    steps = []
    for feature in sorted(get_features([str(folder)]), key=lambda f: f.rel_filename):
        for template in feature.scenarios.values():
            contexts = [c for examples in template.examples for c in examples.as_contexts()]
            for context in contexts or [{}]:
                for step in template.render(context).steps:
                    where = f"{Path(feature.filename).name}:{step.line_number}"
                    steps.append(FeatureStep(step.type, step.name, where))
    return steps


def matches(context: StepFunctionContext, step: FeatureStep) -> bool:
    """Whether pytest-bdd would take this step definition for this line."""
    return context.type in (None, step.type) and context.parser.is_matching(step.text)


def _summary(function: object) -> str:
    """The first paragraph of a docstring, on one line."""
    paragraph = (inspect.getdoc(function) or "").split("\n\n")[0]
    return " ".join(paragraph.split())


def _keywords(contexts: list[StepFunctionContext]) -> tuple[str, ...]:
    types = {c.type for c in contexts}
    if None in types:
        return tuple(k.capitalize() for k in KEYWORDS)
    return tuple(k.capitalize() for k in KEYWORDS if k in types)


def _grouped(
    pairs: list[tuple[str, StepFunctionContext]],
) -> Iterator[tuple[str, list[StepFunctionContext]]]:
    """One group per step function and phrase (a phrase registered as Given and When)."""
    groups: dict[tuple[object, str], tuple[str, list[StepFunctionContext]]] = {}
    for area, context in pairs:
        key = (context.step_func, context.parser.name)
        groups.setdefault(key, (area, []))[1].append(context)
    yield from groups.values()


def catalogue(folder: Path | None = None) -> list[StepEntry]:
    """Every step phrase of hil's step library, with an example from ``folder``'s features."""
    lines = feature_steps(folder)
    entries = []
    for area, contexts in _grouped(step_contexts()):
        first = contexts[0]
        if not isinstance(first.parser, Phrase | parsers.string):
            raise TypeError(
                f"{first.step_func.__module__}.{first.step_func.__name__}: declare the step "
                "with hil.steps.phrases.phrase(...)"
            )
        format = first.parser.name
        keywords = _keywords(contexts)
        used = next((line for line in lines if any(matches(c, line) for c in contexts)), None)
        example = (
            f"{used.type.capitalize()} {used.text}"
            if used is not None
            else f"{keywords[0]} {_filled(format)}"
        )
        entries.append(
            StepEntry(
                area=area,
                keywords=keywords,
                phrase=human_phrase(format),
                format=format,
                parameters=tuple(
                    StepParameter(name, step_type.name, step_type.description)
                    for name, step_type in parameters(format)
                ),
                summary=_summary(first.step_func),
                example=example,
            )
        )
    return entries


def _area_title(area: str) -> str:
    module = importlib.import_module(f"hil.steps.{area}")
    return (inspect.getdoc(module) or "").split("\n")[0]


def render_text(entries: list[StepEntry]) -> str:
    """The catalogue for a terminal: areas, then each phrase with its parameters."""
    out: list[str] = []
    area = ""
    for entry in entries:
        if entry.area != area:
            area = entry.area
            out += [*([""] if out else []), f"{area}: {_area_title(area)}"]
        out.append(f"  {'/'.join(entry.keywords)} {entry.phrase}")
        if entry.summary:
            out.append(f"      {entry.summary}")
        for parameter in entry.parameters:
            out.append(f"      {{{parameter.name}}}: {parameter.type}, {parameter.description}")
        out.append(f"      e.g. {entry.example}")
    return "\n".join(out) + "\n"


def render_markdown(entries: list[StepEntry]) -> str:
    """docs/steps.md: the catalogue grouped by area, then the parameter types."""
    out = [
        "# Step catalogue",
        "",
        "Every step phrase of hil's step library (`hil/steps/`), generated from the code:",
        "run `hil steps --write docs/steps.md` after changing a step (a test fails while",
        "this page is stale); `hil steps` prints the same in a terminal. Parameters are",
        "written `{name}`; their types are listed at the end. Each example is the first",
        "line of the shipped features that uses the step, else one built from the phrase.",
    ]
    area = ""
    for entry in entries:
        if entry.area != area:
            area = entry.area
            out += ["", f"## {area}", "", f"`hil/steps/{area}.py`: {_area_title(area)}"]
        out += ["", f"### `{entry.phrase}`", ""]
        out.append(f"**{'/'.join(entry.keywords)}**. {entry.summary}".rstrip())
        if entry.parameters:
            out.append("")
            out += [f"- `{p.name}`: {p.type}" for p in entry.parameters]
        out += ["", f"Example: `{entry.example}`"]
    out += ["", "## Parameter types", "", "| type | meaning | example |", "| --- | --- | --- |"]
    for step_type in STEP_TYPES.values():
        out.append(f"| {step_type.name} | {step_type.description} | `{step_type.example}` |")
    return "\n".join(out) + "\n"
