"""The step vocabulary: one definition per phrase used, typed parameters, a current
catalogue in docs/steps.md."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.features import known_phrases
from hil.qr.degrade import Degradation
from hil.steps.catalogue import (
    catalogue,
    feature_steps,
    human_phrase,
    matches,
    render_markdown,
    step_contexts,
)
from hil.steps.phrases import STEP_TYPES, Duration, StepValueError, phrase
from tests.conftest import REPO

STEPS_PAGE = REPO / "docs" / "steps.md"


def test_docs_steps_md_is_the_generated_catalogue() -> None:
    assert STEPS_PAGE.read_text(encoding="utf-8") == render_markdown(catalogue()), (
        "docs/steps.md is stale: regenerate it with `hil steps --write docs/steps.md`"
    )


def test_every_step_of_the_shipped_features_has_exactly_one_definition() -> None:
    contexts = [context for _, context in step_contexts()]
    lines = feature_steps()
    assert len(lines) > 300  # the whole suite, outlines rendered
    wrong = []
    for line in lines:
        found = [c.step_func.__qualname__ for c in contexts if matches(c, line)]
        if len(found) != 1:
            wrong.append(f"{line.where} {line.type} {line.text!r}: {found}")
    assert not wrong, "\n".join(wrong)


def test_every_step_is_documented_and_every_area_summarised() -> None:
    entries = catalogue()
    assert len({(e.phrase, e.keywords) for e in entries}) == len(entries)
    undocumented = [e.phrase for e in entries if not e.summary.endswith((".", ")"))]
    assert not undocumented, f"steps without a one-sentence docstring: {undocumented}"
    for area in {e.area for e in entries}:
        module = __import__(f"hil.steps.{area}", fromlist=["_"])
        first = (inspect.getdoc(module) or "").split("\n")[0]
        assert first.endswith("."), f"hil/steps/{area}.py: docstring's first line {first!r}"


def test_examples_come_from_the_features_or_the_phrase() -> None:
    by_phrase = {e.phrase: e for e in catalogue()}
    used = by_phrase['the terminal runs its "{item}" self-check']
    assert used.keywords == ("Given", "When")
    assert used.example == 'When the terminal runs its "card_reader" self-check'
    assert [p.type for p in used.parameters] == ["Item"]
    # no shipped feature checks a passing item as a Given: the example is built
    assert by_phrase['the "{item}" self-check passes'].example.startswith("Then ")


def test_known_phrases_are_the_human_form_of_every_step() -> None:
    phrases = known_phrases()
    assert phrases == sorted(set(phrases))
    assert 'Then the "{item}" self-check fails with code "{code}"' in phrases
    assert "When the terminal makes a sale of {amount} over the host" in phrases
    assert 'Given the terminal runs its "{item}" self-check' in phrases
    assert 'When the terminal runs its "{item}" self-check' in phrases
    assert not any(":" in p.split("{", 1)[-1].split("}", 1)[0] for p in phrases if "{" in p)


def test_human_phrase_reads_formats_and_regular_expressions() -> None:
    assert human_phrase('the card "{name:Card}" is inserted') == 'the card "{name}" is inserted'
    assert human_phrase(r'^the card "(?P<name>[^"]+)" is swiped$') == 'the card "{name}" is swiped'
    assert human_phrase(r"^(?P<count>\d{1,3}) swipes$") == "{count} swipes"


def test_hil_steps_prints_the_catalogue(tmp_path: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["steps"])
    assert text.exit_code == 0, text.output
    assert 'Given/When the terminal runs its "{item}" self-check' in text.output
    markdown = runner.invoke(app, ["steps", "--markdown"])
    assert markdown.output == render_markdown(catalogue())
    written = runner.invoke(app, ["steps", "--write", str(tmp_path / "steps.md")])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "steps.md").read_text(encoding="utf-8") == markdown.output


# --- parameter types ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minor_units"), [("12.34", 1234), ("5.00", 500), ("5", 500), ("0.5", 50)]
)
def test_amounts_are_read_in_minor_units(text: str, minor_units: int) -> None:
    parser = phrase("a sale of {amount:Amount}")
    assert parser.parse_arguments(f"a sale of {text}") == {"amount": minor_units}


@pytest.mark.parametrize(
    ("text", "ms"),
    [("250 ms", 250.0), ("2.0 seconds", 2000.0), ("1 second", 1000.0), ("1.5 s", 1500.0)],
)
def test_durations(text: str, ms: float) -> None:
    parsed = phrase("within {limit:Duration}").parse_arguments(f"within {text}")
    assert parsed == {"limit": Duration(ms)}
    assert parsed["limit"].seconds == ms / 1000


def test_retries_swipes_and_config_values() -> None:
    retries = phrase("with {retries:Retries}")
    assert retries.parse_arguments("with 1 retry") == {"retries": 1}
    assert retries.parse_arguments("with 3 retries") == {"retries": 3}
    swipe = phrase('the card "{name:CardName}" is swiped{manner:SwipeManner}')
    assert swipe.parse_arguments('the card "x" is swiped')["manner"] == "none"
    assert swipe.parse_arguments('the card "x" is swiped partially')["manner"] == "partial"
    assert swipe.parse_arguments('the card "x" is swiped with a bad LRC')["manner"] == "bad_lrc"
    assert not swipe.is_matching('the card "x" is swiped sideways')
    value = phrase('set to "{value:ConfigValue}"')
    assert value.parse_arguments('set to "45000"') == {"value": 45000}
    assert value.parse_arguments('set to "true"') == {"value": True}
    assert value.parse_arguments('set to "127.0.0.1"') == {"value": "127.0.0.1"}


def test_degradations_and_sweep_levels_are_typed_values() -> None:
    shown = phrase('degraded by "{degradation:Degradation}"')
    parsed = shown.parse_arguments('degraded by "blur_sigma=1, contrast=0.4"')
    assert parsed == {"degradation": Degradation(blur_sigma=1.0, contrast=0.4)}
    levels = phrase('over "{levels:Levels}"').parse_arguments('over "0, 1, 1.5"')
    assert levels == {"levels": (0.0, 1.0, 1.5)}


@pytest.mark.parametrize(
    ("format", "text", "why"),
    [
        ('shows "{d:Degradation}"', 'shows "blur_sigma=fuzzy"', "is not a number"),
        ('shows "{d:Degradation}"', 'shows "tilt_deg=89"', "out of range"),
        ('runs its "{item:Item}" self-check', 'runs its "comms" self-check', "unknown"),
        ('over "{levels:Levels}"', 'over "1, two"', "numbers separated by commas"),
        ('fails with "{code:Code}"', 'fails with "timeout"', "E_"),
    ],
)
def test_a_bad_value_is_a_clear_error_quoting_the_step(format: str, text: str, why: str) -> None:
    parser = phrase(format)
    with pytest.raises(StepValueError) as e:
        parser.is_matching(text)
    assert f'step "{text}"' in str(e.value) and why in str(e.value)


def test_a_bad_value_in_a_feature_stops_its_scenario_quoting_the_step(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".feature",
        bad="""Feature: bad values
  Scenario: a degradation that is not a number
    Given the QR screen shows the merchant QR code "dynamic_cny" degraded by "blur=fuzzy"
""",
    )
    pytester.makepyfile('from pytest_bdd import scenarios\n\nscenarios("bad.feature")\n')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*StepValueError: step *degraded by "blur=fuzzy"*'])


def test_a_phrase_must_type_every_parameter() -> None:
    with pytest.raises(TypeError, match=r"\{name\} needs a type"):
        phrase('the test card "{name}" is inserted')
    with pytest.raises(TypeError, match="needs a type"):
        phrase("within {ms:d} ms")


def test_phrases_match_case_and_all_of_the_line() -> None:
    idle = phrase("the terminal is idle")
    assert idle.is_matching("the terminal is idle")
    assert not idle.is_matching("The terminal is idle")
    assert not idle.is_matching("the terminal is idle again")


def test_every_type_has_an_example_it_accepts() -> None:
    for name, step_type in STEP_TYPES.items():
        parser = phrase(f"value <{{v:{name}}}>")
        assert parser.is_matching(f"value <{step_type.example}>"), name
