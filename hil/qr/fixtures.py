"""Named QR payloads from ``fixtures/qr/payloads.json`` (format ``pos-hil-qr-payloads/1``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hil.errors import ConfigError
from hil.qr.payloads import PayloadError, build_mpm, parse_mpm
from hil.suite import FIXTURES

PAYLOADS_FILE = FIXTURES / "qr" / "payloads.json"
FORMAT = "pos-hil-qr-payloads/1"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: QR payload file not found") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read QR payloads: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path}: format: expected {FORMAT!r}")
    merchant = data.get("merchant")
    if not isinstance(merchant, dict):
        raise ConfigError(f"{path}: merchant: expected an object of named payloads")
    return merchant


def merchant_names(path: Path = PAYLOADS_FILE) -> list[str]:
    return sorted(_load(path))


def merchant_payload(name: str, path: Path = PAYLOADS_FILE) -> str:
    """The MPM payload named ``name``, CRC computed or checked; ConfigError names the entry."""
    merchant = _load(path)
    entry = merchant.get(name)
    if not isinstance(entry, dict):
        raise ConfigError(
            f"{path}: merchant.{name}: no such payload (known: {', '.join(sorted(merchant))})"
        )
    try:
        if "payload" in entry:
            payload = entry["payload"]
            if not isinstance(payload, str):
                raise ConfigError(f"{path}: merchant.{name}.payload: expected string")
            parse_mpm(payload)
            return payload
        fields = entry.get("fields")
        if not isinstance(fields, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
        ):
            raise ConfigError(f"{path}: merchant.{name}.fields: expected tag -> string values")
        payload = build_mpm(fields)
        parse_mpm(payload)  # templates must be well-formed too
        return payload
    except PayloadError as e:
        raise ConfigError(f"{path}: merchant.{name}: {e}") from e
