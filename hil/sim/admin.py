"""Admin login on the test port: password policy, password history and login lockout.

Commands (docs/test-port-protocol.md, "Security"):

- ``security.login {"password"}``: check the admin password.
- ``security.set_password {"old_password", "new_password"}``: change it under the policy.
- ``security.reset_admin {}``: the service reset back to the factory default.

The policy, the lockout limit and its period are documented figures; the rig judges
them from its own contract table (``hil.contract.security``), not from these constants.
No password ever reaches a log entry, an answer or an error message: only its length.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil.protocol.endpoint import CommandFailed
from hil.sim.security import (
    FACTORY_DEFAULT_ADMIN_PASSWORD,
    PasswordRecord,
    load_admin_record,
    load_history,
    store_admin_record,
)
from hil.sim.state import (
    FlashLayout,
    atomic_write_json,
    iso_from_ms,
    ms_from_iso,
    now_ms,
    read_json,
    remove_durably,
)

MIN_LENGTH = 10
MAX_LENGTH = 64
#: A new password may not equal the current one nor the ones before it: this many in all.
HISTORY = 3
#: The Nth consecutive wrong password locks the admin login.
MAX_FAILED_LOGINS = 5
#: Nominal lockout; multiplied by HIL_TIME_SCALE like every inherent delay.
LOCKOUT_S = 10.0

SYMBOLS = frozenset(string.punctuation + " ")
CLASSES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("a lower-case letter", lambda c: c in string.ascii_lowercase),
    ("an upper-case letter", lambda c: c in string.ascii_uppercase),
    ("a digit", lambda c: c in string.digits),
    ("a symbol", lambda c: c in SYMBOLS),
)

Log = Callable[[str, str, str], object]


def policy_violation(password: str, history: list[PasswordRecord]) -> tuple[str, str] | None:
    """The first rule ``password`` breaks, as (code, message), or None. Rules in order:
    factory default, length, character classes, reuse of the last ``HISTORY``."""
    if password == FACTORY_DEFAULT_ADMIN_PASSWORD:
        return "E_SEC_PW_DEFAULT", "the factory default password is not allowed"
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        return (
            "E_SEC_PW_LENGTH",
            f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters, this one {len(password)}",
        )
    if any(not (0x20 <= ord(c) <= 0x7E) for c in password):
        return "E_SEC_PW_CLASSES", "a password holds printable ASCII characters only"
    missing = [name for name, member in CLASSES if not any(member(c) for c in password)]
    if missing:
        return "E_SEC_PW_CLASSES", f"a password needs {', '.join(missing)}"
    if any(record.matches(password) for record in history[-HISTORY:]):
        return "E_SEC_PW_REUSED", f"a password may not repeat any of the last {HISTORY}"
    return None


def _text_arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise CommandFailed("E_BAD_ARGS", f"{name} (string) is required")
    return value


class AdminLogin:
    """The admin credential, its failed-login counter and lockout. Thread-safe.

    The counter and the end of a lockout live in ``lockout.json`` (wall-clock time), so
    a reboot does not reopen a locked login.
    """

    def __init__(
        self,
        layout: FlashLayout,
        *,
        log: Log,
        time_scale: float,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._layout = layout
        self._log = log
        self._lockout_ms = round(LOCKOUT_S * time_scale * 1000)
        self._clock_ms = clock_ms
        self._lock = threading.Lock()

    @property
    def _lockout_file(self) -> Path:
        return self._layout.root / "lockout.json"

    def _lockout_state(self) -> tuple[int, int]:
        """(consecutive failures, locked until epoch ms or 0)."""
        try:
            data = read_json(self._lockout_file)
        except ValueError:
            return MAX_FAILED_LOGINS, self._clock_ms() + self._lockout_ms  # corrupt: locked
        if not isinstance(data, dict):
            return 0, 0
        failed = data.get("failed")
        until = data.get("locked_until")
        return (
            failed if isinstance(failed, int) else 0,
            ms_from_iso(until) if isinstance(until, str) else 0,
        )

    def _save_lockout(self, failed: int, until_ms: int) -> None:
        if failed == 0 and until_ms == 0:
            remove_durably(self._lockout_file)
            return
        atomic_write_json(
            self._lockout_file,
            {"failed": failed, "locked_until": iso_from_ms(until_ms) if until_ms else None},
        )

    def _authenticate(self, password: str, action: str) -> None:
        """Raise E_SEC_LOCKED or E_SEC_BAD_PASSWORD unless ``password`` is the admin's
        (caller holds the lock). A lockout is checked before the password is."""
        failed, until = self._lockout_state()
        now = self._clock_ms()
        if until:
            if now < until:
                raise CommandFailed(
                    "E_SEC_LOCKED",
                    f"admin login locked for another {(until - now) / 1000:.1f} s",
                )
            failed, until = 0, 0  # the lockout is over: a fresh count
        try:
            record = load_admin_record(self._layout)
        except (ValueError, OSError) as e:
            raise CommandFailed("E_SEC_NO_PASSWORD", f"admin record unreadable: {e}") from None
        if record is None:
            raise CommandFailed("E_SEC_NO_PASSWORD", "no admin password is set")
        if record.matches(password):
            self._save_lockout(0, 0)
            return
        failed += 1
        if failed >= MAX_FAILED_LOGINS:
            self._save_lockout(failed, now + self._lockout_ms)
            self._log(
                "warn",
                "E_SEC_LOCKED",
                f"{action}: {failed} failed admin logins, locked for "
                f"{self._lockout_ms / 1000:.1f} s",
            )
            raise CommandFailed(
                "E_SEC_LOCKED",
                f"wrong admin password; {failed} failed attempts: admin login locked for "
                f"{self._lockout_ms / 1000:.1f} s",
            )
        self._save_lockout(failed, 0)
        self._log("warn", "E_SEC_BAD_PASSWORD", f"{action}: wrong admin password ({failed})")
        raise CommandFailed(
            "E_SEC_BAD_PASSWORD",
            f"wrong admin password ({failed} of {MAX_FAILED_LOGINS} attempts)",
        )

    # -- commands -------------------------------------------------------------------

    def commands(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "security.login": self.login,
            "security.set_password": self.set_password,
            "security.reset_admin": self.reset_admin,
        }

    @staticmethod
    def _only(args: dict[str, Any], allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(args) - set(allowed))
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS",
                f"unknown argument(s) {', '.join(unknown)}; expected: {', '.join(allowed)}",
            )

    def login(self, args: dict[str, Any]) -> dict[str, Any]:
        self._only(args, ("password",))
        password = _text_arg(args, "password")
        with self._lock:
            self._authenticate(password, "login")
        self._log("info", "I_ADMIN_LOGIN", "admin logged in on the test port")
        return {"role": "admin"}

    def set_password(self, args: dict[str, Any]) -> dict[str, Any]:
        self._only(args, ("old_password", "new_password"))
        old = _text_arg(args, "old_password")
        new = _text_arg(args, "new_password")
        with self._lock:
            self._authenticate(old, "password change")
            history = load_history(self._layout)
            violation = policy_violation(new, history)
            if violation is not None:
                self._log("warn", violation[0], f"password change refused: {violation[1]}")
                raise CommandFailed(*violation)
            store_admin_record(self._layout, PasswordRecord.create(new), keep=HISTORY)
        self._log("info", "I_ADMIN_PASSWORD_SET", f"admin password changed (length {len(new)})")
        return {"length": len(new)}

    def reset_admin(self, args: dict[str, Any]) -> dict[str, Any]:
        self._only(args, ())
        with self._lock:
            store_admin_record(
                self._layout, PasswordRecord.create(FACTORY_DEFAULT_ADMIN_PASSWORD), keep=HISTORY
            )
            self._save_lockout(0, 0)
        self._log("warn", "I_ADMIN_RESET", "admin password reset to the factory default")
        return {}
