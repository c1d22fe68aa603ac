"""Feature files as pytest tests, with no glue module beside them.

pytest-bdd binds scenarios to tests through a Python module that calls ``scenarios()``.
pos-hil collects ``.feature`` files itself: each file becomes a pytest module whose
tests are its scenarios, bound by pytest-bdd's own ``scenario()`` so tags, outlines
and hooks behave exactly as with a glue module. Collection is on when

- the ini option ``hil_features`` is true (``hil run`` sets it; ``hil init`` writes it
  into the lab project's pytest.ini), or
- a ``.feature`` file is named on the command line.

It stays off otherwise, so installing pos-hil never adds tests to another project's
pytest-bdd suite. A scenario that a glue module also binds is collected once (the
glue module's test wins), so an older lab project with a ``test_features.py`` keeps
working.

Mistakes in a feature file stop the run before the rig starts, as one line each:
a Gherkin syntax error names the file and line; a step no definition matches names
the file, the line and the three closest known phrasings.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import types
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import scenario
from pytest_bdd.compat import get_fixture_names, getfixturedefs
from pytest_bdd.exceptions import GherkinParseError
from pytest_bdd.feature import get_features
from pytest_bdd.scenario import scenario_wrapper_template_registry
from pytest_bdd.steps import step_function_context_registry

from hil.drivers import display_path

INI_OPTION = "hil_features"
#: pytest-bdd's step lookup (pytest_bdd.scenario), which StepLookup stands in for
LOOKUP = "find_fixturedefs_for_step"


class FeatureFile(pytest.Module):
    """A ``.feature`` file collected as a module of scenario tests."""

    def _getobj(self) -> types.ModuleType:
        path = self.path
        try:
            (feature,) = get_features([str(path)])
        except GherkinParseError as e:
            raise self.CollectError(
                f"{display_path(Path(e.filename or path))}:{e.line}: Gherkin syntax error: "
                f"{e.message} (line: {e.line_content.strip()!r})"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise self.CollectError(f"{display_path(path)}: cannot read: {e}") from None
        module = types.ModuleType(f"hil_feature_{python_name(path.stem)}")
        module.__file__ = str(path)
        taken: set[str] = set()
        for name in feature.scenarios:
            test = scenario(str(path), name, features_base_dir=str(path.parent))(_scenario_body)
            test_name = unique_test_name(name, taken)
            taken.add(test_name)
            setattr(module, test_name, test)
        return module


def _scenario_body() -> None:
    """What runs after a scenario's steps: nothing, the steps are the test."""


def python_name(text: str) -> str:
    """The Python name pytest-bdd gives a scenario, so node IDs read the same as with a
    glue module: spaces to underscores, other non-word characters dropped, lower case."""
    name = re.sub(r"\W", "", text.replace(" ", "_"))
    return re.sub(r"^\d+_*", "", name).lower()


def unique_test_name(scenario_name: str, taken: set[str]) -> str:
    base = f"test_{python_name(scenario_name)}"
    name, index = base, 0
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    return name


def wants_features(config: pytest.Config, file_path: Path) -> bool:
    """Whether this ``.feature`` file is collected (see the module docstring)."""
    if file_path.suffix != ".feature":
        return False
    if config.getini(INI_OPTION):
        return True
    named = {Path(arg.split("::")[0]).resolve() for arg in config.args}
    return file_path.resolve() in named


def _scenario_of(item: pytest.Item) -> Any:
    """The pytest-bdd scenario template a test item runs, or None for other tests."""
    function = getattr(item, "obj", None)
    if function is None:
        return None
    return scenario_wrapper_template_registry.get(function)


def suite_fingerprint(items: list[pytest.Item]) -> tuple[str, int]:
    """SHA-256 over the feature files the collected scenarios come from (each file's
    name and bytes, in name order), in hex grouped by ':' every 8 digits, and how many
    files: what a certificate names as "the suite that ran". A changed step text or
    Examples row changes it."""
    files = sorted(
        {Path(t.feature.filename) for t in map(_scenario_of, items) if t is not None},
        key=lambda path: (path.name, str(path)),
    )
    digest = hashlib.sha256()
    for path in files:
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    # Grouped by ':' every 8 hex digits: a run of 13+ decimal digits in plain hex can pass
    # the Luhn check, and every report would then mask the fingerprint as a card number.
    text = digest.hexdigest()
    return ":".join(text[i : i + 8] for i in range(0, len(text), 8)), len(files)


def scenario_title(item: pytest.Item) -> tuple[str, str] | None:
    """(feature name, scenario name) of a scenario test, as its Gherkin says them."""
    template = _scenario_of(item)
    if template is None:
        return None
    return str(template.feature.name), str(template.name)


def drop_duplicates(items: list[pytest.Item]) -> list[pytest.Item]:
    """Leave out scenarios this plug-in collected that a glue module binds too."""
    bound_elsewhere = set()
    for item in items:
        template = _scenario_of(item)
        if template is not None and not isinstance(item.parent, FeatureFile):
            bound_elsewhere.add((template.feature.filename, template.name))
    kept = []
    for item in items:
        template = _scenario_of(item)
        ours = isinstance(item.parent, FeatureFile)
        if ours and (template.feature.filename, template.name) in bound_elsewhere:
            continue
        kept.append(item)
    return kept


def known_phrases() -> list[str]:
    """Every step phrasing registered in this session, pos-hil's and the lab's own, as
    a person reads it, with its keyword: ``When the power is cut``."""
    from hil.steps.catalogue import human_phrase

    return sorted(
        {
            f"{(context.type or 'step').capitalize()} {human_phrase(context.parser.name)}"
            for context in list(step_function_context_registry.values())
        }
    )


def _step_definitions_seen_by(fixturemanager: Any, node: pytest.Item) -> list[tuple[Any, Any]]:
    """The step definitions visible to ``node``, each as (its fixture definition, its
    pytest-bdd step context): the same fixtures pytest-bdd's ``find_fixturedefs_for_step``
    goes through, by pytest's own visibility rules, listed once."""
    return [
        (fixturedef, context)
        for name in get_fixture_names(fixturemanager)
        for fixturedef in getfixturedefs(fixturemanager, name, node) or []
        if (context := step_function_context_registry.get(fixturedef.func)) is not None
    ]


def _defines(context: Any, step: Any) -> bool:
    """Whether the step definition (its pytest-bdd context) matches ``step``."""
    return (context.type is None or context.type == step.type) and bool(
        context.parser.is_matching(step.name)
    )


class StepLookup:
    """pytest-bdd's ``find_fixturedefs_for_step`` with its work done once where it can be.

    pytest-bdd finds the definitions of each step of each scenario it runs by walking
    every fixture name in the session (hundreds: each step definition is one) and
    asking pytest which of them the scenario sees, then trying every parser: about
    1.4 ms a step, 1.2-1.4 s of a run of the shipped suite, on the run's critical path.
    The answer depends only on the step (its type and text), on where the scenario is
    (which definitions it sees: conftest.py files, a glue module's own steps) and on
    which fixtures exist. So the definitions a place sees are listed once per place
    (as ``unknown_steps`` does), and each step's answer is kept; both start again when a
    fixture is registered. Same definitions, in the same order, as pytest-bdd's own
    (a test compares them)."""

    def __init__(self, original: Any) -> None:
        self.original = original
        # Per fixture manager (one per session; weak, so a finished session's goes).
        self._known: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], list[Any]]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, step: Any, fixturemanager: Any, node: pytest.Item) -> Iterator[Any]:
        names = get_fixture_names(fixturemanager)
        # A registration adds a name at the end (pytest-bdd's own injection is undone
        # before the next step is looked up): the count and the last name tell it.
        fixtures = (len(names), names[-1] if names else "")
        place = node.parent.nodeid if node.parent is not None else node.nodeid
        known = self._known.setdefault(fixturemanager, {})
        answer = known.get((fixtures, place, step.type, step.name))
        if answer is None:
            seen = known.get((fixtures, place))
            if seen is None:
                seen = known[(fixtures, place)] = _step_definitions_seen_by(fixturemanager, node)
            answer = known[(fixtures, place, step.type, step.name)] = [
                fixturedef for fixturedef, context in seen if _defines(context, step)
            ]
        return iter(answer)


def install_step_lookup(config: pytest.Config) -> None:
    """Put ``StepLookup`` in place of pytest-bdd's step lookup for this session; the
    original is back when the session ends. A pytest-bdd without that function (a
    version that finds steps another way) is left as it is."""
    import importlib

    module = importlib.import_module("pytest_bdd.scenario")
    original = getattr(module, LOOKUP, None)
    if original is None or isinstance(original, StepLookup):
        return
    setattr(module, LOOKUP, StepLookup(original))

    def restore() -> None:
        setattr(module, LOOKUP, original)

    config.add_cleanup(restore)


def unknown_steps(items: Iterable[pytest.Item]) -> list[str]:
    """One line per scenario step that no step definition matches, with the three
    closest known phrasings; each step reported once however many items run it."""
    problems: dict[tuple[str, int], str] = {}
    phrases: list[str] | None = None
    # Which definitions a node sees depends on where it is (conftest.py files, a glue
    # module's own steps): they are listed once per file of scenarios, and each step
    # text is matched once per file; pytest-bdd's own lookup walks every fixture name
    # for every step (most of the collection's time on the shipped suite).
    visible: dict[Path, tuple[int, list[tuple[Any, Any]]]] = {}
    # Files that see the same definitions (most: a suite's step library is seen by all
    # of its features) share one place, so a step used in every file is matched once.
    places: dict[tuple[int, ...], int] = {}
    defined: dict[tuple[str, str, int], bool] = {}
    for item in items:
        template = _scenario_of(item)
        if template is None:
            continue
        callspec = getattr(item, "callspec", None)
        example = callspec.params.get("_pytest_bdd_example", {}) if callspec is not None else {}
        rendered = template.render(example)
        if item.path not in visible:
            seen = _step_definitions_seen_by(item.session._fixturemanager, item)
            place = places.setdefault(tuple(id(fixturedef) for fixturedef, _ in seen), len(places))
            visible[item.path] = (place, seen)
        place, seen = visible[item.path]
        for step in rendered.steps:
            key = (rendered.feature.filename, step.line_number)
            seen_as = (step.type, step.name, place)
            if seen_as not in defined:
                defined[seen_as] = any(_defines(context, step) for _, context in seen)
            if key in problems or defined[seen_as]:
                continue
            if phrases is None:
                phrases = known_phrases()
            wanted = f"{step.type.capitalize()} {step.name}"
            same_kind = [p for p in phrases if p.split(" ", 1)[0] == wanted.split(" ", 1)[0]]
            closest = difflib.get_close_matches(wanted, same_kind or phrases, n=3, cutoff=0.0)
            shown = "; ".join(f'"{c}"' for c in closest) or "none known"
            problems[key] = (
                f"{display_path(Path(rendered.feature.filename))}:{step.line_number}: unknown "
                f'step "{step.keyword} {step.name}"; closest known: {shown}'
            )
    return [problems[key] for key in sorted(problems)]
