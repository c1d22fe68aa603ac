"""Biometric presentation: put a synthetic fingerprint or face on the terminal's sensor.

``BiometricSensor.present(modality, subject, spoof=...)`` presents a sample of a
synthetic subject: a 256-bit template derived from the subject's name and the
modality, with a few bits flipped as a real capture would differ from the last
(``CAPTURE_NOISE_BITS``, far under the documented match threshold), and the liveness
the sensor measures: ``LIVE_LIVENESS`` for a live finger or face, ``SPOOF_LIVENESS``
for a presentation attack (a gummy finger, a printed photo). The sample stays on the
sensor until ``lift`` (and ``put_back`` lifts it after every scenario).

The instrument remembers what it presented (``Presentation``), so steps can judge
the terminal's verdict against it. A template is a secret: it is never logged,
attached or put in an exception; reports show the subject's name and the modality.

Driver ``sim``: the sim terminal's ``biometric`` channel (``biometric=127.0.0.1:PORT``
in HIL_CHANNELS; protocol in docs/test-port-protocol.md).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import Field

from hil import reporting
from hil.contract.security import BIOMETRIC_MODALITIES, TEMPLATE_BITS
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, DutError
from hil.jsonlines.rig_end import RigEndServer

CAPTURE_NOISE_BITS = 12
LIVE_LIVENESS = 0.95
SPOOF_LIVENESS = 0.1


def subject_template(subject: str, modality: str) -> int:
    """The synthetic subject's template for this modality (stable across runs)."""
    digest = hashlib.sha256(f"pos-hil synthetic {modality} of {subject}".encode()).digest()
    return int.from_bytes(digest[: TEMPLATE_BITS // 8], "big")


@dataclass(frozen=True)
class Presentation:
    """What the rig put on a sensor; ``sample`` is secret (never shown)."""

    modality: str
    subject: str
    spoof: bool
    sample: int = field(repr=False)

    def distance_to(self, template: int) -> int:
        return (self.sample ^ template).bit_count()


@runtime_checkable
class BiometricSensor(Protocol):
    name: str

    def present(self, modality: str, subject: str, *, spoof: bool = False) -> Presentation:
        """Put the subject's finger or face on the sensor; returns once the terminal has
        it."""

    def lift(self) -> None:
        """Take everything off the sensors."""

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class SimBiometricSensor:
    """Presents samples on the sim terminal's biometric channel."""

    def __init__(self, *, ack_timeout: float, name: str = "biometrics") -> None:
        self.name = name
        self.ack_timeout = ack_timeout
        self.server = RigEndServer("biometric")
        self._ids = itertools.count(1)
        self._captures = itertools.count(1)
        # Something may lie on the sensor: set before anything is sent, cleared only by
        # a lift the terminal took, so put_back lifts exactly when a scenario touched it.
        self._touched = False

    @property
    def address(self) -> str:
        return self.server.address

    def _send(self, message: dict[str, object], what: str) -> None:
        self._touched = True
        if not self.server.wait_connected(self.ack_timeout):
            raise DutError(
                f"{self.name}: the terminal is not connected to its biometric channel "
                f"({self.server.address})"
            )
        if self.server.request(message, key="id", timeout=self.ack_timeout) is None:
            raise DutError(
                f"{self.name}: the terminal did not take the {what} within {self.ack_timeout} s"
            )

    def present(self, modality: str, subject: str, *, spoof: bool = False) -> Presentation:
        if modality not in BIOMETRIC_MODALITIES:
            raise ConfigError(
                f"unknown biometric modality {modality!r} (known: "
                f"{', '.join(BIOMETRIC_MODALITIES)})"
            )
        # A capture never equals the last one: flip a few bits, reproducibly per run.
        noise = random.Random(f"{subject}/{modality}/{next(self._captures)}")
        sample = subject_template(subject, modality)
        for bit in noise.sample(range(TEMPLATE_BITS), CAPTURE_NOISE_BITS):
            sample ^= 1 << bit
        presentation = Presentation(modality, subject, spoof, sample)
        with reporting.action(f"{self.name}: present {modality}", subject=subject, spoof=spoof):
            self._send(
                {
                    "type": "present",
                    "id": next(self._ids),
                    "modality": modality,
                    "template": f"{sample:0{TEMPLATE_BITS // 4}x}",
                    "liveness": SPOOF_LIVENESS if spoof else LIVE_LIVENESS,
                },
                f"{modality} presentation",
            )
        return presentation

    def lift(self) -> None:
        with reporting.action(f"{self.name}: lift"):
            self._send({"type": "lift", "id": next(self._ids)}, "lift")

    def put_back(self) -> None:
        """Lift whatever a scenario presented; a sensor no scenario touched since the
        last lift is left alone (a round trip to the terminal saved per scenario)."""
        if not self._touched:
            return
        if not self.server.connected:
            return  # no terminal to lift it for now: tried again at the next put-back
        answer = self.server.request(
            {"type": "lift", "id": next(self._ids)}, key="id", timeout=self.ack_timeout
        )
        if answer is not None:
            self._touched = False

    def preflight(self) -> str:
        state = "terminal connected" if self.server.connected else "terminal not connected"
        return f"biometric channel {self.server.address}: {state}"

    def close(self) -> None:
        self.server.close()


class SimBiometricConfig(DriverConfig):
    ack_timeout_s: float = Field(default=5.0, gt=0, le=60)


@register("biometrics", "sim")
class SimBiometricDriver(Driver):
    """Presents synthetic fingerprints and faces on the sim terminal's ``biometric``
    channel."""

    config_model = SimBiometricConfig

    @classmethod
    def build(cls, config: SimBiometricConfig, context: BuildContext) -> Built:
        sensor = SimBiometricSensor(ack_timeout=config.ack_timeout_s)
        return Built(sensor, {"biometric": sensor.address})
