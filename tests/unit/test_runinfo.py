"""The run ID: taken from HIL_RUN_ID or made once and exported; a malformed one is refused."""

from __future__ import annotations

import re

import pytest

from hil.errors import ConfigError
from hil.runinfo import RUN_ID_ENV, new_run_id, run_id


def test_a_new_run_id_is_exported_for_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    first = run_id()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", first)
    assert run_id() == first
    import os

    assert os.environ[RUN_ID_ENV] == first


def test_the_callers_run_id_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "nightly-1234")
    assert run_id() == "nightly-1234"


def test_a_malformed_run_id_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_ENV, "../../etc")
    with pytest.raises(ConfigError, match=r"^HIL_RUN_ID: '\.\./\.\./etc' is not a run ID"):
        run_id()


def test_new_run_ids_differ() -> None:
    assert new_run_id() != new_run_id()
