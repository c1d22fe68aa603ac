"""Typed results of the terminal's admin login, biometric and log-mark operations.

Refusals that are the answer under test (a weak password, a wrong one, a lockout, a
biometric no-match) come back as results with the terminal's code; anything else the
terminal refuses stays a ``TerminalCommandError``. No result holds a password or a
template: the rig keeps those itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

OK = "OK"


@dataclass(frozen=True)
class AdminAnswer:
    """The terminal's answer to an admin login or password change."""

    code: str  # OK or the terminal's E_SEC_... code
    message: str

    @property
    def accepted(self) -> bool:
        return self.code == OK


@dataclass(frozen=True)
class BiometricVerdict:
    user: str
    modality: str
    code: str  # OK (match) or E_BIO_...
    message: str


@dataclass(frozen=True)
class LogMarks:
    """Where the marker entries of one ``log.mark`` went."""

    first_seq: int
    last_seq: int


@runtime_checkable
class AdminPort(Protocol):
    """Admin login, biometric and log-mark operations of a terminal adapter (kept apart
    from ``TerminalPort`` so adapters without them still are one)."""

    def admin_login(self, password: str) -> AdminAnswer: ...

    def admin_set_password(self, old: str, new: str) -> AdminAnswer: ...

    def admin_reset(self) -> None:
        """Service reset of the admin password to the factory default."""

    def biometric_enrol(self, user: str, modality: str) -> None:
        """Enrol what is on the sensor now; a refusal is a ``TerminalCommandError``."""

    def biometric_verify(self, user: str, modality: str) -> BiometricVerdict: ...

    def log_mark(self, count: int, note: str) -> LogMarks:
        """Write ``count`` marker entries to the system log in one go."""
