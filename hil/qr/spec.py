"""Moved to ``hil.contract.qr`` (the rig's contract tables live in ``hil.contract``).

This alias keeps the modules outside the contract's owner importing from the old
place (``hil.sim.scanner``, ``hil.sim.selfcheck``, ``hil.instruments.qrscreen``,
``hil.qr.sweep`` and their tests) until they import ``hil.contract.qr`` directly;
then it goes.
"""

from hil.contract.qr import (
    CALIBRATION_PAYLOAD,
    DECODE_LIMIT_MS,
    IN_SPEC,
    AxisSpec,
    axis_spec,
    within_spec,
)

__all__ = [
    "CALIBRATION_PAYLOAD",
    "DECODE_LIMIT_MS",
    "IN_SPEC",
    "AxisSpec",
    "axis_spec",
    "within_spec",
]
