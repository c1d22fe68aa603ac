"""The scanner requirement the QR feature certifies against, and the calibration target.

``IN_SPEC`` is the documented envelope (docs/qr.md): a terminal must read every code
shown with one axis degraded up to its limit (rendered at the rig's nominal module
size, ECC level M). Beyond it, a terminal may fail to read, but only cleanly: no
crash and never a payload other than the one shown.

The limits were set from decode-rate sweeps of the simulated terminal's scanner
(OpenCV QRCodeDetector) with margin: 100% of frames decoded at every level up to the
limit (bench/bench_qr.py prints the curves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the terminal imports this module; keep OpenCV out of its start-up
    from hil.qr.degrade import Degradation

#: What the screen shows when blank: a reserved payload the terminal's self-check reads
#: to prove its camera path, and which a scan never reports as a customer's code.
CALIBRATION_PAYLOAD = "HIL-CAL/1 POS-HIL SCANNER CALIBRATION TARGET"


#: A terminal must decode a code in view within this time (one frame's decode, ms).
DECODE_LIMIT_MS = 300.0


@dataclass(frozen=True)
class AxisSpec:
    axis: str
    limit: float
    worse: Literal["higher", "lower"]  # which way the axis degrades the image
    unit: str

    def within(self, value: float) -> bool:
        return value <= self.limit if self.worse == "higher" else value >= self.limit


IN_SPEC: tuple[AxisSpec, ...] = (
    AxisSpec("blur_sigma", 1.5, "higher", "px"),
    AxisSpec("contrast", 0.2, "lower", ""),
    AxisSpec("luminance", 0.2, "lower", "of full scale"),
    AxisSpec("tilt_deg", 40.0, "higher", "deg"),
    AxisSpec("rotation_deg", 360.0, "higher", "deg"),
    AxisSpec("glare", 0.5, "higher", "of full scale"),
    AxisSpec("occlusion_pct", 5.0, "higher", "%"),
    AxisSpec("noise_sigma", 20.0, "higher", "grey levels"),
)


def axis_spec(axis: str) -> AxisSpec:
    for spec in IN_SPEC:
        if spec.axis == axis:
            return spec
    raise KeyError(f"no scanner spec for axis {axis!r}")


def within_spec(degradation: Degradation) -> bool:
    """True when every active axis is inside its limit."""
    return all(axis_spec(axis).within(value) for axis, value in degradation.active().items())
