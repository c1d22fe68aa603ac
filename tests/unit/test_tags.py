"""Gherkin tags: what each becomes, and ``--tags`` over them (hil.tags)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.tags import (
    VOCABULARY,
    MarkerLookup,
    TagMeaning,
    TagSelection,
    check_requirement_url,
    meaning,
    requirement_url,
)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("smoke", TagMeaning("smoke", "smoke")),
        (
            "epic:communication",
            TagMeaning("epic:communication", "area_communication", (("epic", "communication"),)),
        ),
        (
            "req:SC-COMM-01",
            TagMeaning(
                "req:SC-COMM-01",
                "req_SC-COMM-01",
                (("requirement", "SC-COMM-01"),),
                requirement="SC-COMM-01",
            ),
        ),
        ("severity:critical", TagMeaning("severity:critical", labels=(("severity", "critical"),))),
        ("story:refunds", TagMeaning("story:refunds", labels=(("story", "refunds"),))),
        (
            "requires:cards, faultlines",
            TagMeaning("requires:cards, faultlines", requires=("cards", "faultlines")),
        ),
        # anything else: selectable by its own name, a marker name pytest can register
        ("owner:alice", TagMeaning("owner:alice", "owner_alice")),
        ("long-run", TagMeaning("long-run", "long-run")),
        ("epic:", TagMeaning("epic:", "epic_")),
    ],
)
def test_what_each_tag_becomes(tag: str, expected: TagMeaning) -> None:
    assert meaning(tag) == expected


#: marker -> tag as written, as the plugin knows them after collecting features
KNOWN: dict[str, str] = {
    **{tag: tag for tag in VOCABULARY},
    "area_communication": "epic:communication",
    "area_card_reader": "epic:card_reader",
    "req_SC-COMM-01": "req:SC-COMM-01",
    "req_SC-COMM-02": "req:SC-COMM-02",
}


def _lookup(*markers: str) -> MarkerLookup:
    def has_marker(name: str, kwargs: Mapping[str, object]) -> bool:
        return name in markers and not kwargs

    return has_marker


@pytest.mark.parametrize(
    ("expression", "markers", "selected"),
    [
        ("smoke and not slow", ("smoke",), True),
        ("smoke and not slow", ("smoke", "slow"), False),
        ("smoke and not slow", ("slow",), False),
        ("area_communication", ("area_communication", "smoke"), True),
        # a tag may be written as it stands in the feature, without its @
        ("epic:communication", ("area_communication",), True),
        ("epic:communication", ("area_card_reader",), False),
        ("req:SC-COMM-01 or req_SC-COMM-02", ("req_SC-COMM-02",), True),
        ("not (nightly or slow)", ("certification",), True),
    ],
)
def test_a_tag_expression_selects_by_the_markers_of_a_scenario(
    expression: str, markers: tuple[str, ...], selected: bool
) -> None:
    selection = TagSelection.parse(expression)
    assert selection.unknown(KNOWN) is None
    assert selection.matches(_lookup(*markers), KNOWN) is selected


def test_every_name_of_an_expression_is_checked_even_where_evaluation_stops_early() -> None:
    selection = TagSelection.parse("(smoke and smoek) or (slow and nigthly)")
    assert selection.names() == {"smoke", "smoek", "slow", "nigthly"}
    problem = selection.unknown(KNOWN)
    assert problem is not None and "\n" not in problem
    assert problem.startswith("--tags: unknown tags 'nigthly', 'smoek' (")
    assert "'smoek': did you mean 'smoke'?" in problem
    assert "'nigthly': did you mean 'nightly'?" in problem


def test_an_unknown_tag_lists_the_known_tags_and_counts_the_requirements() -> None:
    problem = TagSelection.parse("bogus", "--hil-tags").unknown(KNOWN)
    assert problem == (
        "--hil-tags: unknown tag 'bogus'; known tags: area_card_reader, area_communication, "
        "certification, nightly, slow, smoke, and 2 requirement tags req_<ID>"
    )


def test_markers_the_project_registers_are_accepted_but_not_listed() -> None:
    selection = TagSelection.parse("integration or smoke")
    assert selection.unknown(KNOWN, accepted=["integration"]) is None
    problem = selection.unknown(KNOWN)
    assert problem is not None and "integration" not in problem.split("known tags:")[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "--tags: empty expression"),
        ("   ", "--tags: empty expression"),
        ("smoke and", "--tags: 'smoke and' is not a tag expression: expected not OR left "),
        ("(smoke", "--tags: '(smoke' is not a tag expression: expected right parenthesis"),
    ],
)
def test_an_expression_that_does_not_parse_is_one_line_naming_the_option(
    text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        TagSelection.parse(text)
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)


def test_a_requirement_link_puts_the_quoted_id_where_the_pattern_says() -> None:
    assert requirement_url("https://lab/req/{}", "SC-COMM-01") == "https://lab/req/SC-COMM-01"
    assert requirement_url("https://lab/q?id={}&v=1", "A/B 1") == "https://lab/q?id=A%2FB%201&v=1"


def test_a_requirement_url_pattern_without_a_placeholder_is_refused() -> None:
    assert check_requirement_url("https://lab/{}", "--req-url") == "https://lab/{}"
    with pytest.raises(ConfigError, match=r"^HIL_REQ_URL: 'https://lab/req' has no \{\}"):
        check_requirement_url("https://lab/req", "HIL_REQ_URL")


# --- the shipped suite's tags agree with docs/tags.md and docs/requirements.md -------------

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _shipped_scenarios() -> list[tuple[str, set[str]]]:
    from pytest_bdd.feature import get_features

    from hil.suite import FEATURES

    features = get_features([str(path) for path in sorted(FEATURES.glob("*.feature"))])
    return [
        (f"{Path(feature.filename).name}: {name}", set(scenario.tags) | set(feature.tags))
        for feature in features
        for name, scenario in feature.scenarios.items()
    ]


def test_every_shipped_scenario_carries_documented_requirements_and_tags() -> None:
    documented = set(
        re.findall(r"^\| (SC-[A-Z]+-\d{2}) \|", (DOCS / "requirements.md").read_text(), re.M)
    )
    tags_doc = (DOCS / "tags.md").read_text()
    scenarios = _shipped_scenarios()
    assert len(scenarios) >= 30
    for name, tags in scenarios:
        requirements = {meaning(tag).requirement for tag in tags} - {None}
        assert requirements, f"{name}: no @req:"
        assert requirements <= documented, (
            f"{name}: {requirements - documented} not in requirements.md"
        )
        assert "certification" in tags, name
        areas = [meaning(tag).marker for tag in tags if tag.startswith("epic:")]
        assert areas and all(f"`{area}`" in tags_doc for area in areas), (name, areas)
        plain = {tag for tag in tags if ":" not in tag}
        assert plain <= set(VOCABULARY), f"{name}: {plain - set(VOCABULARY)} not in the vocabulary"
        assert not {"smoke", "slow"} <= tags, f"{name}: smoke scenarios are fast"
    assert sum("smoke" in tags for _, tags in scenarios) >= 5
    for tag in VOCABULARY:
        assert f"`@{tag}`" in tags_doc


def test_requirements_doc_names_the_features_that_verify_each_requirement() -> None:
    """The "shipped scenarios" column is written by hand: it must name exactly the
    feature files whose scenarios carry the ID, and a dash only where none does."""
    carried: dict[str, set[str]] = {}
    for name, tags in _shipped_scenarios():
        feature = name.split(": ", 1)[0].removesuffix(".feature")
        for tag in tags:
            requirement = meaning(tag).requirement
            if requirement:
                carried.setdefault(requirement, set()).add(feature)
    rows = re.findall(
        r"^\| (SC-[A-Z]+-\d{2}) \| .* \| (.*) \|$", (DOCS / "requirements.md").read_text(), re.M
    )
    assert rows
    for requirement, cell in rows:
        named = set() if cell == "-" else set(re.findall(r"(?:^|; )([a-z_]+): ", cell))
        assert named == carried.get(requirement, set()), (requirement, cell)
