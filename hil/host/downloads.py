"""What the host downloads to a terminal: parameter sets and working keys.

Both ends of the link use these rules (documented in docs/host.md), so the terminal's
parameter digest can be compared with the host's:

- A parameter set is a JSON file ``{"version": str, "parameters": {...}}``. Its
  *canonical bytes* are ``json.dumps(set, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)`` in UTF-8; its *digest* is the SHA-256 of those bytes (hex).
  The host sends the canonical bytes in blocks of ``BLOCK_SIZE``.
- Working keys (TPK, TAK) travel wrapped under the terminal master key (TMK):
  ``wrapped = key XOR SHA-256(TMK || key_id)[:16]``, followed by a 4-byte check value
  ``SHA-256(key)[:4]``. (A lab host would use 3DES/AES key blocks; the sim keeps the
  shape - wrapped key plus check value - without pretending to be secure.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import ConfigError

BLOCK_SIZE = 256
KEY_LEN = 16
KCV_LEN = 4
KEY_IDS = {"tpk": 1, "tak": 2}
#: The TMK injected into the simulated terminal at the factory (test value, not secret).
SIM_TEST_TMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


def canonical_bytes(parameter_set: dict[str, Any]) -> bytes:
    text = json.dumps(parameter_set, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ParameterSet:
    version: str
    parameters: dict[str, Any]
    source: str = "<memory>"

    @property
    def data(self) -> bytes:
        return canonical_bytes({"version": self.version, "parameters": self.parameters})

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    def blocks(self, size: int = BLOCK_SIZE) -> list[bytes]:
        data = self.data
        return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


def parse_parameter_set(raw: Any, source: str) -> ParameterSet:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a parameter set must be a JSON object")
    unknown = sorted(set(raw) - {"version", "parameters"})
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key")
    version = raw.get("version")
    parameters = raw.get("parameters")
    if not isinstance(version, str) or not version:
        raise ConfigError(f"{source}: version: expected a non-empty string")
    if not isinstance(parameters, dict):
        raise ConfigError(f"{source}: parameters: expected an object")
    return ParameterSet(version, parameters, source)


def load_parameter_set(path: Path) -> ParameterSet:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: parameter set file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON parameter set: {e}") from None
    return parse_parameter_set(raw, str(path))


@dataclass(frozen=True)
class KeySet:
    tmk: bytes
    keys: dict[str, bytes]  # "tpk"/"tak" -> 16-byte clear key


def _hex_key(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a hex string")
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"{where}: not hex") from None
    if len(key) != KEY_LEN:
        raise ConfigError(f"{where}: expected {KEY_LEN} bytes, got {len(key)}")
    return key


def load_key_set(path: Path) -> KeySet:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: key set file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON key set: {e}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), dict):
        raise ConfigError(f"{path}: expected {{'tmk': hex, 'keys': {{'tpk': hex, 'tak': hex}}}}")
    keys = {}
    for name, value in raw["keys"].items():
        if name not in KEY_IDS:
            raise ConfigError(f"{path}: keys.{name}: unknown key (known: tpk, tak)")
        keys[name] = _hex_key(value, f"{path}: keys.{name}")
    return KeySet(_hex_key(raw.get("tmk"), f"{path}: tmk"), keys)


def default_key_set() -> KeySet:
    return KeySet(
        SIM_TEST_TMK,
        {
            "tpk": bytes.fromhex("11111111111111112222222222222222"),
            "tak": bytes.fromhex("33333333333333334444444444444444"),
        },
    )


def _pad(tmk: bytes, key_id: int) -> bytes:
    return hashlib.sha256(tmk + bytes([key_id])).digest()[:KEY_LEN]


def check_value(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:KCV_LEN]


def wrap_keys(key_set: KeySet) -> bytes:
    """Field 62 of a key-download answer: per key, id (1) + wrapped key (16) + KCV (4)."""
    out = bytearray()
    for name, key in sorted(key_set.keys.items(), key=lambda kv: KEY_IDS[kv[0]]):
        key_id = KEY_IDS[name]
        wrapped = bytes(a ^ b for a, b in zip(key, _pad(key_set.tmk, key_id), strict=True))
        out += bytes([key_id]) + wrapped + check_value(key)
    return bytes(out)


class KeyCheckError(ValueError):
    """A downloaded key failed its check value (wrong TMK or corrupted in transit)."""


def unwrap_keys(data: bytes, tmk: bytes) -> dict[str, bytes]:
    """Inverse of ``wrap_keys``; raises KeyCheckError naming the key at fault."""
    names = {v: k for k, v in KEY_IDS.items()}
    item = 1 + KEY_LEN + KCV_LEN
    if not data or len(data) % item:
        raise KeyCheckError(f"key block of {len(data)} bytes is not a multiple of {item}")
    keys: dict[str, bytes] = {}
    for offset in range(0, len(data), item):
        key_id = data[offset]
        name = names.get(key_id)
        if name is None:
            raise KeyCheckError(f"unknown key id {key_id}")
        wrapped = data[offset + 1 : offset + 1 + KEY_LEN]
        kcv = data[offset + 1 + KEY_LEN : offset + item]
        key = bytes(a ^ b for a, b in zip(wrapped, _pad(tmk, key_id), strict=True))
        if check_value(key) != kcv:
            raise KeyCheckError(f"{name.upper()} check value mismatch")
        keys[name] = key
    return keys
