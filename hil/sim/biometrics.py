"""The terminal's biometric sensors (fingerprint and face), fed by the rig's
``biometric`` channel, and the enrol/verify commands on the test port.

The rig presents a synthetic sample: ``{"type":"present","id":N,"modality":
"fingerprint"|"face","template":"<64 hex digits>","liveness":0.0-1.0}`` stays on the
sensor until ``{"type":"lift","id":N}`` (both answered ``{"type":"ack","id":N}``).
A template is 256 bits; two samples match when at most ``MATCH_MAX_BITS`` bits differ.
The sensor's liveness measurement must reach ``LIVENESS_MIN``, otherwise the sample is a
spoof (a gummy finger, a printed photo).

Enrolled templates live in flash (``biometrics.json``). A template never reaches the
log, an answer, an event or an error message.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.jsonlines.terminal_end import TerminalEndClient
from hil.protocol.endpoint import CommandFailed
from hil.sim.state import FlashLayout, atomic_write_json, read_json

MODALITIES = ("fingerprint", "face")
TEMPLATE_BITS = 256
MATCH_MAX_BITS = 64  # 25% of the bits may differ between two samples of one subject
LIVENESS_MIN = 0.5
USER_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_TEMPLATE = re.compile(f"[0-9a-f]{{{TEMPLATE_BITS // 4}}}")

Log = Callable[[str, str, str], object]


@dataclass(frozen=True)
class Sample:
    template: int
    liveness: float


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def judge(sample: Sample | None, enrolled: int | None) -> tuple[str, str]:
    """The verification verdict (code, message), checks in the documented order."""
    if enrolled is None:
        return "E_BIO_NOT_ENROLLED", "no enrolment for this user and modality"
    if sample is None:
        return "E_BIO_NO_SAMPLE", "nothing on the sensor"
    if sample.liveness < LIVENESS_MIN:
        return "E_BIO_SPOOF", "liveness check failed: presentation attack suspected"
    distance = hamming(sample.template, enrolled)
    if distance > MATCH_MAX_BITS:
        return "E_BIO_NO_MATCH", "the sample does not match the enrolment"
    return "OK", "the sample matches the enrolment"


class BiometricSensors:
    """The sensors' current samples (from the channel) and the enrolment store."""

    def __init__(self, value: str | None, layout: FlashLayout, *, log: Log) -> None:
        self._lock = threading.Lock()
        self._samples: dict[str, Sample] = {}
        self._layout = layout
        self._log = log
        self._link = (
            TerminalEndClient("biometric", value, self._on_message) if value is not None else None
        )

    @property
    def _store(self) -> Path:
        return self._layout.root / "biometrics.json"

    def start(self) -> None:
        if self._link is not None:
            self._link.start()

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    def _on_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        kind = message.get("type")
        if kind == "lift":
            with self._lock:
                self._samples.clear()
            return {"type": "ack", "id": message.get("id")}
        if kind != "present":
            return None
        modality = message.get("modality")
        template = message.get("template")
        liveness = message.get("liveness")
        if (
            modality not in MODALITIES
            or not isinstance(template, str)
            or not _TEMPLATE.fullmatch(template)
            or isinstance(liveness, bool)
            or not isinstance(liveness, int | float)
        ):
            return {"type": "nak", "id": message.get("id"), "reason": "malformed presentation"}
        with self._lock:
            self._samples[str(modality)] = Sample(int(template, 16), float(liveness))
        return {"type": "ack", "id": message.get("id")}

    def _enrolments(self) -> dict[str, dict[str, str]]:
        try:
            data = read_json(self._store)
        except ValueError:
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("enrolments"), dict):
            return {}
        return {
            str(user): {str(m): str(t) for m, t in by_modality.items()}
            for user, by_modality in data["enrolments"].items()
            if isinstance(by_modality, dict)
        }

    # -- commands -------------------------------------------------------------------

    def commands(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"biometric.enrol": self.enrol, "biometric.verify": self.verify}

    def _args(self, args: dict[str, Any]) -> tuple[str, str]:
        unknown = sorted(set(args) - {"user", "modality"})
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS", f"unknown argument(s) {', '.join(unknown)}; expected: user, modality"
            )
        user, modality = args.get("user"), args.get("modality")
        if not isinstance(user, str) or not USER_PATTERN.fullmatch(user):
            raise CommandFailed("E_BAD_ARGS", "user must be 1-32 of A-Z a-z 0-9 _ . -")
        if modality not in MODALITIES:
            raise CommandFailed("E_BAD_ARGS", f"modality must be one of {', '.join(MODALITIES)}")
        if self._link is None:
            raise CommandFailed("E_BIO_ABSENT", "no biometric sensor connected")
        return user, str(modality)

    def enrol(self, args: dict[str, Any]) -> dict[str, Any]:
        user, modality = self._args(args)
        with self._lock:
            sample = self._samples.get(modality)
            if sample is None:
                raise CommandFailed("E_BIO_NO_SAMPLE", "nothing on the sensor to enrol")
            if sample.liveness < LIVENESS_MIN:
                raise CommandFailed("E_BIO_SPOOF", "liveness check failed: not enrolled")
            enrolments = self._enrolments()
            enrolments.setdefault(user, {})[modality] = f"{sample.template:064x}"
            atomic_write_json(self._store, {"enrolments": enrolments})
        self._log("info", "I_BIO_ENROLLED", f"{modality} enrolled for user {user}")
        return {"user": user, "modality": modality, "enrolled": True}

    def verify(self, args: dict[str, Any]) -> dict[str, Any]:
        user, modality = self._args(args)
        with self._lock:
            stored = self._enrolments().get(user, {}).get(modality)
            enrolled = int(stored, 16) if isinstance(stored, str) else None
            code, message = judge(self._samples.get(modality), enrolled)
        self._log(
            "info" if code == "OK" else "warn",
            "I_BIO_VERIFIED" if code == "OK" else code,
            f"{modality} verification for user {user}: {message}",
        )
        return {"user": user, "modality": modality, "code": code, "message": message}
