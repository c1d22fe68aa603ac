"""Calibrated degradations of a QR frame, each a named number with a documented meaning.

Axes (docs/qr.md has the table with units and how each is measured back):

- ``blur_sigma`` (px, >= 0): Gaussian blur of the frame the camera sees; a step edge
  rises 10-90% over 2.563 sigma.
- ``contrast`` ((0, 1]): Michelson contrast (L_light - L_dark) / (L_light + L_dark)
  between light and dark modules; 1 = black on white.
- ``luminance`` ((0, 1]): level of the light modules as a fraction of full scale (low
  light); the dark level follows from ``contrast``.
- ``tilt_deg`` ([0, 80]): the screen turned about its vertical axis, seen by a pinhole
  camera ``VIEW_DISTANCE_FRAMES`` frame widths away.
- ``rotation_deg`` (any): in-plane rotation, counter-clockwise on the image.
- ``glare`` ([0, 1]): a Gaussian highlight (sigma = 20% of the symbol side) adding up
  to this fraction of full scale, saturating at white.
- ``occlusion_pct`` ([0, 75]): an opaque mid-grey elliptical smudge covering this
  percentage of the symbol's area ("dirty window"), placed over data modules.
- ``noise_sigma`` (grey levels of 255, >= 0): additive Gaussian sensor noise.
- ``seed``: places the glare spot and the smudge and draws the noise; the same seed
  gives the same frame.

Degradations compose: one ``Degradation`` may set any number of axes, and
``compose(a, b)`` merges two that set different axes. They are applied in the
physical order: screen tone (contrast, luminance) -> smudge -> glare -> geometry
(rotation, then tilt) -> optics (blur) -> sensor (noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from hil.qr.render import CodeLayout, Image

#: viewing distance of the simulated camera, in frame widths (sets the perspective)
VIEW_DISTANCE_FRAMES = 2.0
#: glare spot sigma as a fraction of the symbol side
GLARE_SIGMA_FRACTION = 0.2
#: random placements tried for a smudge (the one sparing function patterns is kept)
SMUDGE_CANDIDATES = 200


@dataclass(frozen=True)
class Degradation:
    blur_sigma: float = 0.0
    contrast: float = 1.0
    luminance: float = 1.0
    tilt_deg: float = 0.0
    rotation_deg: float = 0.0
    glare: float = 0.0
    occlusion_pct: float = 0.0
    noise_sigma: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "blur_sigma": 0 <= self.blur_sigma <= 50,
            "contrast": 0 < self.contrast <= 1,
            "luminance": 0 < self.luminance <= 1,
            "tilt_deg": 0 <= self.tilt_deg <= 80,
            "rotation_deg": math.isfinite(self.rotation_deg),
            "glare": 0 <= self.glare <= 1,
            "occlusion_pct": 0 <= self.occlusion_pct <= 75,
            "noise_sigma": 0 <= self.noise_sigma <= 255,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"degradation {name}={getattr(self, name)} out of range")

    # --- description -----------------------------------------------------------------

    def active(self) -> dict[str, float]:
        """The axes that differ from a clean frame (seed excluded)."""
        clean = Degradation()
        return {
            f.name: float(getattr(self, f.name))
            for f in fields(self)
            if f.name != "seed" and getattr(self, f.name) != getattr(clean, f.name)
        }

    def describe(self) -> str:
        active = self.active()
        if not active:
            return "none"
        return ", ".join(f"{k}={v:g}" for k, v in active.items())

    def with_seed(self, seed: int) -> Degradation:
        return replace(self, seed=seed)

    @staticmethod
    def parse(text: str) -> Degradation:
        """``"blur_sigma=1.5, contrast=0.4"`` or ``"none"``; ValueError names the bad part."""
        text = text.strip()
        if text.lower() in ("", "none", "clean"):
            return Degradation()
        names = {f.name for f in fields(Degradation)}
        values: dict[str, Any] = {}
        for part in text.replace(";", ",").split(","):
            name, sep, raw = part.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise ValueError(
                    f"degradation {part.strip()!r}: expected NAME=NUMBER with NAME one of "
                    f"{', '.join(sorted(names))}"
                )
            if name in values:
                raise ValueError(f"degradation {name} given twice")
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                raise ValueError(f"degradation {name}: {raw.strip()!r} is not a number") from None
        return Degradation(**values)


AXES: tuple[str, ...] = tuple(f.name for f in fields(Degradation) if f.name != "seed")


def compose(*parts: Degradation) -> Degradation:
    """Merge degradations that set different axes; the same axis twice is an error."""
    merged: dict[str, Any] = {}
    seed = 0
    for part in parts:
        for name, value in part.active().items():
            if name in merged:
                raise ValueError(f"two degradations both set {name}")
            merged[name] = value
        seed = seed or part.seed
    return Degradation(**merged, seed=seed)


# --- the pipeline ------------------------------------------------------------------------


@dataclass(frozen=True)
class Degraded:
    image: Image
    corners: npt.NDArray[np.float32]  # symbol corners on the output, clockwise from top-left
    light_level: float
    dark_level: float


def tone_levels(d: Degradation) -> tuple[float, float]:
    """(light, dark) grey levels of 255 for the requested luminance and contrast."""
    light = 255.0 * d.luminance
    dark = light * (1 - d.contrast) / (1 + d.contrast)
    return light, dark


def tilt_homography(d_tilt_deg: float, width: int, height: int) -> npt.NDArray[np.float64]:
    """Homography of the screen plane turned about its vertical centre line."""
    theta = math.radians(d_tilt_deg)
    distance = VIEW_DISTANCE_FRAMES * width
    cx, cy = width / 2, height / 2
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    dst = []
    for x, y in src:
        xr = (x - cx) * math.cos(theta)
        z = (x - cx) * math.sin(theta)
        scale = distance / (distance + z)
        dst.append([cx + xr * scale, cy + (y - cy) * scale])
    return cv2.getPerspectiveTransform(src, np.array(dst, dtype=np.float32)).astype(np.float64)


def rotation_homography(degrees: float, width: int, height: int) -> npt.NDArray[np.float64]:
    affine = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return np.vstack([affine, [0.0, 0.0, 1.0]]).astype(np.float64)


def _ellipse_mask(
    shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float]
) -> npt.NDArray[np.bool_]:
    mask = np.zeros(shape, dtype=np.uint8)
    shift = 4  # sub-pixel drawing so the area matches the request closely
    k = 1 << shift
    cv2.ellipse(
        mask,
        (round(centre[0] * k), round(centre[1] * k)),
        (round(axes[0] * k), round(axes[1] * k)),
        0.0,
        0,
        360,
        255,
        -1,
        cv2.LINE_8,
        shift,
    )
    return mask > 0


def smudge_mask(layout: CodeLayout, pct: float, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Symbol-sized mask of an ellipse covering ``pct``% of the symbol's area.

    Of ``SMUDGE_CANDIDATES`` random placements inside the symbol, the one covering the
    fewest function-pattern modules (finder, separator, timing, alignment, format,
    version) is kept, so the smudge damages data and error-correction modules: the
    damage a QR code's error correction is designed to survive.
    """
    side = layout.side_px
    area = pct / 100.0 * side * side
    aspect = float(rng.uniform(0.6, 1.0))
    a = math.sqrt(area / (math.pi * aspect))
    b = a * aspect
    if a > side / 2:  # too wide to fit: flatten the other way, keeping the area
        a = side / 2
        b = min(area / (math.pi * a), side / 2)
    px = layout.module_px
    function = np.kron(~layout.data, np.ones((px, px), dtype=bool))
    best: npt.NDArray[np.bool_] | None = None
    best_centre = (side / 2, side / 2)
    best_hit = -1
    for _ in range(SMUDGE_CANDIDATES):
        cx = float(rng.uniform(a, side - a)) if side - a > a else side / 2
        cy = float(rng.uniform(b, side - b)) if side - b > b else side / 2
        mask = _ellipse_mask((side, side), (cx, cy), (a, b))
        hit = int(np.count_nonzero(mask & function))
        if best is None or hit < best_hit:
            best, best_centre, best_hit = mask, (cx, cy), hit
        if hit == 0:
            break
    assert best is not None
    # Rasterising adds the boundary pixels (about 3% for a small ellipse): rescale the
    # axes until the pixel count matches the requested area.
    for _ in range(3):
        drawn = int(np.count_nonzero(best))
        if drawn == 0 or abs(drawn - area) <= max(2.0, 0.005 * area):
            break
        k = math.sqrt(area / drawn)
        a, b = a * k, b * k
        best = _ellipse_mask((side, side), best_centre, (a, b))
    return best


def apply(frame: Image, layout: CodeLayout | None, d: Degradation) -> Degraded:
    """Degrade an undegraded frame (white background, black modules) in physical order."""
    height, width = frame.shape
    rng = np.random.default_rng(d.seed)
    light, dark = tone_levels(d)
    out: npt.NDArray[Any] = dark + frame.astype(np.float32) * ((light - dark) / 255.0)

    if layout is not None and d.occlusion_pct > 0:
        side = layout.side_px
        region = out[layout.y : layout.y + side, layout.x : layout.x + side]
        region[smudge_mask(layout, d.occlusion_pct, rng)] = (light + dark) / 2

    if layout is not None and d.glare > 0:
        side = layout.side_px
        gx = layout.x + float(rng.uniform(0.2, 0.8)) * side
        gy = layout.y + float(rng.uniform(0.2, 0.8)) * side
        sigma = GLARE_SIGMA_FRACTION * side
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        spot = np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * sigma * sigma))
        out = np.minimum(out + 255.0 * d.glare * spot, 255.0)

    corners: npt.NDArray[Any] = (
        layout.corners()
        if layout is not None
        else np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    )
    if d.rotation_deg or d.tilt_deg:
        h = tilt_homography(d.tilt_deg, width, height) @ rotation_homography(
            d.rotation_deg, width, height
        )
        out = cv2.warpPerspective(
            out,
            h,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=light,
        )
        corners = cv2.perspectiveTransform(corners.reshape(1, 4, 2), h).reshape(4, 2)

    if d.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=d.blur_sigma, sigmaY=d.blur_sigma)

    if d.noise_sigma > 0:
        out = out + rng.normal(0.0, d.noise_sigma, size=out.shape).astype(np.float32)

    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return Degraded(image, corners.astype(np.float32), light, dark)
