"""Host simulator logic without sockets: registry, downloads, behaviours."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.host import Behaviour, TerminalRegistry, load_parameter_set
from hil.host.downloads import (
    SIM_TEST_TMK,
    KeyCheckError,
    KeySet,
    canonical_bytes,
    default_key_set,
    digest_of,
    load_key_set,
    unwrap_keys,
    wrap_keys,
)
from hil.suite import FIXTURES

HOST_FIXTURES = FIXTURES / "host"


def test_registry_refuses_a_tid_bound_to_another_device() -> None:
    registry = TerminalRegistry({"T0000001": "SN-A"})
    assert registry.sign_on("T0000001", "SN-A").accepted
    refused = registry.sign_on("T0000001", "SN-B")
    assert (refused.response_code, refused.bound_serial) == ("97", "SN-A")
    enrolled = registry.sign_on("T0000002", "SN-C")
    assert enrolled.accepted and enrolled.enrolled
    assert registry.sign_on("T0000002", "SN-D").response_code == "97"
    registry.bind("T0000001", "SN-B")
    assert registry.sign_on("T0000001", "SN-A").response_code == "97"
    registry.reset()
    assert registry.bindings() == {"T0000001": "SN-A"}
    closed = TerminalRegistry(enrol_unknown=False)
    assert closed.sign_on("T0000009", "SN-X").response_code == "97"


def test_parameter_sets_digest_and_blocks() -> None:
    v1 = load_parameter_set(HOST_FIXTURES / "params-v1.json")
    v2 = load_parameter_set(HOST_FIXTURES / "params-v2.json")
    assert v1.digest != v2.digest
    assert v1.digest == digest_of(
        canonical_bytes({"version": v1.version, "parameters": v1.parameters})
    )
    blocks = v1.blocks()
    assert len(blocks) > 2 and b"".join(blocks) == v1.data
    assert all(len(b) == 256 for b in blocks[:-1])


def test_parameter_set_errors_name_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.json"
    bad.write_text('{"version": "", "parameters": {}}')
    with pytest.raises(ConfigError, match=r"p\.json: version: expected a non-empty string"):
        load_parameter_set(bad)
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match="not a readable JSON parameter set"):
        load_parameter_set(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_parameter_set(tmp_path / "missing.json")
    bad.write_text('{"version": "1", "parameters": {}, "extra": 1}')
    with pytest.raises(ConfigError, match="extra: unknown key"):
        load_parameter_set(bad)


def test_keys_wrap_and_unwrap_with_check_values() -> None:
    keys = load_key_set(HOST_FIXTURES / "keys-test.json")
    assert keys == default_key_set()
    block = wrap_keys(keys)
    assert len(block) == 2 * 21
    assert unwrap_keys(block, SIM_TEST_TMK) == keys.keys
    for key in keys.keys.values():
        assert key.hex().upper() not in block.hex().upper()  # never in clear on the wire
    wrong = load_key_set(HOST_FIXTURES / "keys-wrong-tmk.json")
    with pytest.raises(KeyCheckError, match="TPK check value mismatch"):
        unwrap_keys(wrap_keys(wrong), SIM_TEST_TMK)
    with pytest.raises(KeyCheckError, match="not a multiple"):
        unwrap_keys(block[:-1], SIM_TEST_TMK)
    assert isinstance(keys, KeySet)


def test_behaviour_constructors_check_their_input() -> None:
    assert Behaviour.decline("51").describe() == "decline 51"
    assert Behaviour.delay(0.5).describe() == "normal after 0.5 s"
    with pytest.raises(ValueError, match="2 alphanumeric"):
        Behaviour.decline("5")
    with pytest.raises(ValueError, match=">= 0"):
        Behaviour.delay(-1)
