"""Repeats: each selected scenario run N times (``hil run --repeat N``).

Each repeat is a test of its own: the plugin parametrises every scenario test with
``hil_repeat`` (node ID ``...::test_x[repeat 2/5]``), so the rig is put back after each
repeat exactly as after each scenario, and a Ctrl-C ends the repeat under way and runs
no other. The reports aggregate per scenario (hil.summary): a scenario that failed some
of its repeats failed ("failed 2 of 5"), never passed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from hil.errors import ConfigError

#: The argument every repeated scenario test is parametrised with.
REPEAT_ARG = "hil_repeat"


@dataclass(frozen=True)
class Repeat:
    """Repeat ``index`` (from 1) of ``count``."""

    index: int
    count: int

    @property
    def id(self) -> str:
        """Its part of the test's node ID: ``repeat 2/5``."""
        return f"repeat {self.index}/{self.count}"

    def __repr__(self) -> str:
        # What Allure shows as the parameter's value (and hashes into the history ID).
        return f"{self.index} of {self.count}"

    @property
    def last(self) -> bool:
        return self.index == self.count


def repeat_count(text: str, option: str) -> int:
    """``--repeat``'s value as a number of runs, or a ConfigError naming ``option``."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"{option}: {text!r} is not a whole number of 1 or more")
    return count


def repeats(count: int) -> list[Repeat]:
    return [Repeat(index, count) for index in range(1, count + 1)]


def repeat_of(item: pytest.Item) -> Repeat | None:
    """The repeat a test item runs, or None when the run has no repeats."""
    callspec = getattr(item, "callspec", None)
    value = callspec.params.get(REPEAT_ARG) if callspec is not None else None
    return value if isinstance(value, Repeat) else None


def scenario_nodeid(nodeid: str, repeat: Repeat | None) -> str:
    """The node ID the test would have without repeats: the scenario every repeat of it
    is aggregated under (``x.feature::test_a[repeat 2/5]`` -> ``x.feature::test_a``,
    ``...::test_b[mute-repeat 2/5]`` -> ``...::test_b[mute]``)."""
    if repeat is None:
        return nodeid
    part = re.escape(repeat.id)
    # The repeat's ID is the last of the test's parameter IDs (the plugin parametrises
    # after every other parametrisation), or the only one.
    without = re.sub(rf"\[{part}\]$", "", nodeid)
    return re.sub(rf"-{part}\]$", "]", without)
