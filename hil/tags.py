"""Gherkin tags: what each one becomes, and the ``--tags`` selection over them.

A tag on a feature or scenario line means one of four things (docs/tags.md):

- a **marker to select runs by**: ``@smoke`` -> ``smoke``; ``@epic:communication`` (the
  self-check area, also Allure's epic) -> ``area_communication``; ``@req:SC-COMM-01``
  -> ``req_SC-COMM-01``; any other tag -> its own name with ``:`` (and anything else a
  marker name cannot hold) turned into ``_``;
- an **Allure label** for the report only: ``@story:x``, ``@severity:x``, ``@feature:x``
  (and the epic);
- a **requirement** the scenario verifies: ``@req:ID`` becomes an Allure label
  ``requirement``, a link when a URL pattern is given (``--req-url``), and the
  scenario's ``requirements`` in summary.json;
- a **link** in the report: ``@issue:ID`` and ``@tms:ID`` (and ``@req:ID``) through
  the URL patterns of the rig file's ``[report] links`` (or $HIL_ISSUE_URL,
  $HIL_TMS_URL, ``--req-url``); each is also a marker to select by;
- a **capability** the rig must have: ``@requires:cards,faultlines`` skips a scenario on
  a rig without those instruments.

``--tags EXPR`` is a pytest marker expression (``and``, ``or``, ``not``, parentheses)
over those markers. Each name may be written as the marker (``area_communication``) or
as the tag appears in the feature without its ``@`` (``epic:communication``). A name
that is no known tag is a usage error naming it: a typo must not select nothing and
read as a green run.

Plain Python, no pytest session needed: the plugin turns these meanings into marks.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

# pytest's own -m/-k expression language: its grammar, its errors, its evaluation.
from _pytest.mark.expression import Expression

from hil.errors import ConfigError

#: Tags with one meaning in every suite, always known to ``--tags`` (docs/tags.md).
VOCABULARY: dict[str, str] = {
    "smoke": "fast core scenario: the build boots, says who it is, reaches the host, "
    "reads a card and a QR code; seconds on the sim rig, run on every build",
    "nightly": "for the nightly regression, not every change: sweeps, soaks, scenarios "
    "that power-cycle or wait out host timeouts",
    "certification": "evidence for certifying a build: verifies documented requirements "
    "(@req:) and belongs in the run a lab signs",
    "slow": "takes more than about 2 s on the sim rig, or grows with a sweep's levels",
}

#: ``@name:value`` tags that are Allure labels only: for the report, not for selection.
LABEL_TAGS = ("story", "severity", "feature")
#: ``@name:ID`` tags that are report links (through a URL pattern) and markers to select by.
LINK_TAGS = ("issue", "tms")
#: The marker that carries a scenario's links (``@issue:ID``, ``@tms:ID``): kind, ID.
LINK_MARKER = "hil_link"
AREA_PREFIX = "area_"
REQUIREMENT_PREFIX = "req_"
#: The marker that carries a scenario's requirement ID (``@req:ID``) as its argument.
REQUIREMENT_MARKER = "hil_requirement"
#: Marker names are registered as ``name: description`` ini lines, so they cannot hold
#: ``:`` or ``(``; these characters are also what pytest's expressions read as one name.
_NOT_IN_MARKER_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
#: What the requirement URL pattern stands for the requirement ID with.
REQUIREMENT_PLACEHOLDER = "{}"


@dataclass(frozen=True)
class TagMeaning:
    """What one Gherkin tag (without its ``@``) means to pos-hil."""

    tag: str
    #: the marker ``--tags`` selects by, if the tag is one to select by
    marker: str | None = None
    #: Allure labels: (label type, value)
    labels: tuple[tuple[str, str], ...] = ()
    #: the requirement ID this scenario verifies
    requirement: str | None = None
    #: instruments or channels the rig must have, else the scenario is skipped
    requires: tuple[str, ...] = ()
    #: report links: (kind, ID), a link once a URL pattern for the kind is set
    links: tuple[tuple[str, str], ...] = ()


def marker_name(text: str) -> str:
    """``text`` as a marker name: what a marker name cannot hold becomes ``_``."""
    return _NOT_IN_MARKER_NAME.sub("_", text)


def meaning(tag: str) -> TagMeaning:
    """What a Gherkin tag means (see the module docstring)."""
    name, separator, value = tag.partition(":")
    if separator and value:
        if name == "epic":
            return TagMeaning(tag, AREA_PREFIX + marker_name(value), labels=(("epic", value),))
        if name in LABEL_TAGS:
            return TagMeaning(tag, labels=((name, value),))
        if name == "requires":
            kinds = tuple(kind.strip() for kind in value.split(",") if kind.strip())
            return TagMeaning(tag, requires=kinds)
        if name in LINK_TAGS:
            return TagMeaning(tag, marker_name(tag), links=((name, value),))
        if name == "req":
            marker = REQUIREMENT_PREFIX + marker_name(value)
            return TagMeaning(tag, marker, labels=(("requirement", value),), requirement=value)
    return TagMeaning(tag, marker_name(tag))


def requirement_url(pattern: str, requirement: str) -> str:
    """The link to a requirement: ``pattern`` with ``{}`` replaced by the (URL-quoted) ID."""
    return pattern.replace(REQUIREMENT_PLACEHOLDER, quote(requirement, safe=""))


def check_requirement_url(pattern: str, where: str) -> str:
    """``pattern`` if it is a usable requirement URL pattern, else a ConfigError naming
    ``where`` it came from (the option or the environment variable)."""
    if REQUIREMENT_PLACEHOLDER not in pattern:
        raise ConfigError(
            f"{where}: {pattern!r} has no {REQUIREMENT_PLACEHOLDER} where the requirement "
            "ID goes (e.g. 'https://lab.example/req/{}')"
        )
    return pattern


#: How a marker a scenario carries is matched: by name, and by keyword arguments when
#: the expression gives some (``name(key=value)``, pytest >= 8.3).
MarkerLookup = Callable[[str, Mapping[str, object]], bool]


@dataclass(frozen=True)
class TagSelection:
    """A ``--tags`` expression, compiled once and evaluated per scenario."""

    text: str
    expression: Expression
    #: the option it was given with, named in every error
    option: str = "--tags"

    @classmethod
    def parse(cls, text: str, option: str = "--tags") -> TagSelection:
        """The compiled expression; a ConfigError in one line if it does not parse."""
        if not text.strip():
            raise ConfigError(f"{option}: empty expression (give tags, e.g. 'smoke and not slow')")
        try:
            return cls(text, Expression.compile(text), option)
        except SyntaxError as e:
            raise ConfigError(
                f"{option}: {text!r} is not a tag expression: {e.msg} at column {e.offset}"
            ) from None

    def names(self) -> frozenset[str]:
        """Every tag name the expression mentions, whatever the outcome of the others."""
        idents = getattr(self.expression, "idents", None)
        if idents is not None:  # pytest >= 9
            return frozenset(idents())
        # pytest 8 compiles each name to a Python name prefixed with "$".
        code = self.expression.code  # type: ignore[attr-defined]
        return frozenset(str(name).removeprefix("$") for name in code.co_names)

    def unknown(self, known: Mapping[str, str], accepted: Iterable[str] = ()) -> str | None:
        """One line naming the names that are no known tag, with the known tags; None
        when every name is known. ``known`` maps marker names to the tag as written;
        ``accepted`` are other registered markers (a lab's own), accepted but not listed."""
        spellings = tag_spellings(known)
        allowed = set(known) | set(spellings) | set(accepted)
        unknown = sorted(name for name in self.names() if name not in allowed)
        if not unknown:
            return None
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            if close:
                hints.append(f"{name!r}: did you mean {close[0]!r}?")
        listed = sorted(m for m in known if not m.startswith(REQUIREMENT_PREFIX))
        requirements = len(known) - len(listed)
        shown = ", ".join(listed) or "none"
        if requirements:
            shown += f", and {requirements} requirement tags req_<ID>"
        quoted = ", ".join(repr(name) for name in unknown)
        return (
            f"{self.option}: unknown tag{'s' if len(unknown) > 1 else ''} {quoted}"
            f"{' (' + '; '.join(hints) + ')' if hints else ''}; known tags: {shown}"
        )

    def matches(self, has_marker: MarkerLookup, known: Mapping[str, str]) -> bool:
        """Whether a scenario whose markers ``has_marker`` looks up is selected."""
        spellings = tag_spellings(known)

        def matcher(name: str, /, **kwargs: object) -> bool:
            return has_marker(spellings.get(name, name), kwargs)

        return self.expression.evaluate(matcher)


def tag_spellings(known: Mapping[str, str]) -> dict[str, str]:
    """Tags as written in features (without ``@``) -> their marker names, for the tags
    whose marker name differs (``epic:communication`` -> ``area_communication``)."""
    return {tag: marker for marker, tag in known.items() if tag != marker}
