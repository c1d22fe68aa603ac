"""Where the screen and the LEDs are in the camera's frame, and the deskew.

A calibration is four points, the screen's corners in the frame (top-left, top-right,
bottom-right, bottom-left as a person facing the terminal sees them), the size of the
upright screen image they are warped to, and a spot (centre and radius, frame pixels)
per indicator LED. It lives in the rig file (``[camera.calibration]``), written by
``hil camera calibrate`` from a captured frame and either four corner points given by
hand or the screen's quadrilateral found automatically (``detect_screen``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Point = tuple[float, float]

#: A detected screen must cover at least this fraction of the frame.
MIN_SCREEN_AREA = 0.05
#: ... and leave some bezel or bench in view around it.
MAX_SCREEN_AREA = 0.95
#: Grey levels between the frame's dark and bright parts (5th and 95th percentiles)
#: below which there is no lit screen to find.
MIN_SCREEN_CONTRAST = 40


class NoScreenFound(ValueError):
    """Automatic detection found no screen-like quadrilateral in the frame."""


def order_corners(points: Sequence[Point]) -> list[Point]:
    """Four points as top-left, top-right, bottom-right, bottom-left."""
    if len(points) != 4:
        raise ValueError(f"a screen has 4 corners, got {len(points)}")
    array = np.array(points, dtype=np.float64)
    sums = array.sum(axis=1)
    diffs = array[:, 1] - array[:, 0]
    ordered = [
        array[np.argmin(sums)],
        array[np.argmin(diffs)],
        array[np.argmax(sums)],
        array[np.argmax(diffs)],
    ]
    if len({(float(p[0]), float(p[1])) for p in ordered}) != 4:
        raise ValueError("the four corners do not form a quadrilateral")
    return [(float(p[0]), float(p[1])) for p in ordered]


def deskew(frame: Image, corners: Sequence[Point], size: tuple[int, int]) -> Image:
    """The screen cut out of ``frame`` and warped upright to ``size`` (width, height)."""
    width, height = size
    source = np.array(corners, dtype=np.float32)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    transform = cv2.getPerspectiveTransform(source, target)
    warped = cv2.warpPerspective(frame, transform, (width, height), flags=cv2.INTER_CUBIC)
    return np.asarray(warped, dtype=np.uint8)


def detect_screen(frame: Image) -> list[Point]:
    """The corners of the largest bright quadrilateral in ``frame`` (a lit screen in its
    darker bezel), ordered; ``NoScreenFound`` when there is none."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    grey = cv2.GaussianBlur(grey, (5, 5), 0)
    low, high = np.percentile(grey, (5, 95))
    if high - low < MIN_SCREEN_CONTRAST:
        raise NoScreenFound(
            "no screen found in the frame (nothing brighter than its surroundings: is the "
            "terminal on and in view?): give the four corners by hand"
        )
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # Close the dark text inside the screen so the screen is one blob.
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (25, 25))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    frame_area = float(grey.shape[0] * grey.shape[1])
    best: list[Point] | None = None
    best_area = 0.0
    for contour in contours:
        area = float(cv2.contourArea(contour))
        if not MIN_SCREEN_AREA * frame_area <= area <= MAX_SCREEN_AREA * frame_area:
            continue
        if area <= best_area:
            continue
        hull = cv2.convexHull(contour)
        perimeter = cv2.arcLength(hull, True)
        for tolerance in (0.02, 0.03, 0.05):
            polygon = cv2.approxPolyDP(hull, tolerance * perimeter, True)
            if len(polygon) == 4:
                best = order_corners([(float(p[0][0]), float(p[0][1])) for p in polygon])
                best_area = area
                break
    if best is None:
        raise NoScreenFound(
            "no screen found in the frame (no bright four-cornered area covering "
            f"{MIN_SCREEN_AREA:.0%} of it): give the four corners by hand"
        )
    return best


def upright_size(corners: Sequence[Point]) -> tuple[int, int]:
    """A size for the deskewed screen that keeps its resolution: its longest top/bottom
    edge by its longest left/right edge."""
    tl, tr, br, bl = (np.array(p) for p in corners)
    width = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    return round(float(width)), round(float(height))
