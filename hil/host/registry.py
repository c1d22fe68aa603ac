"""Which terminal ID belongs to which device: the host side of terminal identity.

A TID bound to one serial number is refused to any other (response code 97), which
is how a lab provokes the "terminal ID taken by another device" self-check failure.
An unknown TID is enrolled to the first device that signs on with it, unless
enrolment is off, in which case it is refused like a conflict.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

RC_APPROVED = "00"
RC_TID_NOT_REGISTERED = "97"


@dataclass(frozen=True)
class SignOnVerdict:
    response_code: str
    bound_serial: str  # the serial the TID is bound to after the decision ("" if none)
    enrolled: bool = False

    @property
    def accepted(self) -> bool:
        return self.response_code == RC_APPROVED


class TerminalRegistry:
    """TID -> serial number; thread-safe. ``reset`` returns to the configured entries."""

    def __init__(self, entries: Mapping[str, str] | None = None, *, enrol_unknown: bool = True):
        self._configured = dict(entries or {})
        self._bindings = dict(self._configured)
        self.enrol_unknown = enrol_unknown
        self._lock = threading.Lock()

    def bind(self, terminal_id: str, serial_number: str) -> None:
        """Bind (or rebind) ``terminal_id`` to ``serial_number``."""
        with self._lock:
            self._bindings[terminal_id] = serial_number

    def unbind(self, terminal_id: str) -> None:
        with self._lock:
            self._bindings.pop(terminal_id, None)

    def bound_to(self, terminal_id: str) -> str | None:
        with self._lock:
            return self._bindings.get(terminal_id)

    def bindings(self) -> dict[str, str]:
        with self._lock:
            return dict(self._bindings)

    def sign_on(self, terminal_id: str, serial_number: str) -> SignOnVerdict:
        with self._lock:
            bound = self._bindings.get(terminal_id)
            if bound is None:
                if not self.enrol_unknown or not serial_number:
                    return SignOnVerdict(RC_TID_NOT_REGISTERED, "")
                self._bindings[terminal_id] = serial_number
                return SignOnVerdict(RC_APPROVED, serial_number, enrolled=True)
            if bound != serial_number:
                return SignOnVerdict(RC_TID_NOT_REGISTERED, bound)
            return SignOnVerdict(RC_APPROVED, bound)

    def reset(self) -> None:
        with self._lock:
            self._bindings = dict(self._configured)
