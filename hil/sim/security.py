"""Admin password records: PBKDF2 hashes in ``security.json``; never the password."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from hil.sim.state import FlashLayout, atomic_write_json, read_json

# The password every terminal leaves the factory with; the security self-check warns
# while it is still set. Documented so a test can provision it on purpose.
FACTORY_DEFAULT_ADMIN_PASSWORD = "00000000"

SCHEME = "pbkdf2-sha256"
ITERATIONS = 100_000  # a sim: enough to be real PBKDF2, cheap enough for every self-check


@dataclass(frozen=True)
class PasswordRecord:
    scheme: str
    iterations: int
    salt: bytes
    digest: bytes

    @classmethod
    def create(cls, password: str, *, iterations: int = ITERATIONS) -> PasswordRecord:
        salt = secrets.token_bytes(16)
        return cls(SCHEME, iterations, salt, _derive(password, salt, iterations))

    def matches(self, password: str) -> bool:
        if self.scheme != SCHEME:
            return False
        return hmac.compare_digest(_derive(password, self.salt, self.iterations), self.digest)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "iterations": self.iterations,
            "salt": self.salt.hex(),
            "hash": self.digest.hex(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> PasswordRecord:
        if not isinstance(data, dict):
            raise ValueError("password record is not an object")
        try:
            return cls(
                scheme=str(data["scheme"]),
                iterations=int(data["iterations"]),
                salt=bytes.fromhex(data["salt"]),
                digest=bytes.fromhex(data["hash"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"password record malformed: {e}") from e


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def load_admin_record(layout: FlashLayout) -> PasswordRecord | None:
    """The stored admin record, or None when absent. Raises ValueError when corrupt."""
    data = read_json(layout.security)
    if data is None:
        return None
    if not isinstance(data, dict) or "admin" not in data:
        raise ValueError("security.json has no admin record")
    return PasswordRecord.from_dict(data["admin"])


def store_admin_password(layout: FlashLayout, password: str) -> PasswordRecord:
    record = PasswordRecord.create(password)
    store_admin_record(layout, record)
    return record


def load_history(layout: FlashLayout) -> list[PasswordRecord]:
    """The records of the last passwords, oldest first, the current one last (a file
    written before history was kept: the current record alone)."""
    data = read_json(layout.security)
    if not isinstance(data, dict):
        return []
    history = data.get("history")
    if isinstance(history, list):
        return [PasswordRecord.from_dict(item) for item in history]
    return [PasswordRecord.from_dict(data["admin"])] if "admin" in data else []


def store_admin_record(layout: FlashLayout, record: PasswordRecord, *, keep: int = 1) -> None:
    """Make ``record`` the admin's, keeping the last ``keep`` records (this one included)
    for the reuse rule. Hashes only, like the admin record."""
    try:
        history = load_history(layout)
    except ValueError:
        history = []
    kept = [*history, record][-max(keep, 1) :]
    atomic_write_json(
        layout.security,
        {"admin": record.as_dict(), "history": [r.as_dict() for r in kept]},
    )


def provision_admin_password(layout: FlashLayout, password: str | None) -> bool:
    """Store an admin password on the first boot only. ``None`` stores a random one that
    nobody knows (a provisioned, non-default terminal). True when something was written."""
    if layout.security.exists():
        return False
    store_admin_password(layout, password if password else secrets.token_urlsafe(18))
    return True
