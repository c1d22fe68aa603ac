"""The state of an indicator LED, read at a calibrated spot of the camera frame.

The spot's pixels are averaged (a disc of the calibrated radius) and judged in HSV: a
lit LED is bright and saturated; its hue names the colour. A dark lens, or a
reflection on it (bright but colourless), is ``off``.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
LedColour = Literal["off", "green", "red", "blue", "amber"]
LED_COLOURS: tuple[LedColour, ...] = ("off", "green", "red", "blue", "amber")

#: A lit LED is at least this bright and this saturated (OpenCV HSV, 0-255).
MIN_LIT_VALUE = 110
MIN_LIT_SATURATION = 90
#: Hue ranges (OpenCV hue, 0-180) of each colour.
HUES: tuple[tuple[LedColour, int, int], ...] = (
    ("red", 0, 10),
    ("amber", 11, 34),
    ("green", 35, 90),
    ("blue", 91, 140),
    ("red", 160, 180),
)


def led_colour(frame: Image, centre: tuple[float, float], radius: float) -> LedColour:
    """The LED at ``centre`` (frame pixels): off, or the colour it is lit in."""
    height, width = frame.shape[:2]
    x, y = round(centre[0]), round(centre[1])
    r = max(round(radius), 1)
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"LED spot ({x}, {y}) lies outside the {width}x{height} frame")
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.circle(mask, (x, y), r, 255, thickness=-1)
    mean_bgr = cv2.mean(frame, mask=mask)[:3]
    pixel = np.array([[[round(c) for c in mean_bgr]]], dtype=np.uint8)
    hsv = np.asarray(cv2.cvtColor(pixel, cv2.COLOR_BGR2HSV))
    hue, saturation, value = (int(v) for v in hsv[0, 0])
    if value < MIN_LIT_VALUE or saturation < MIN_LIT_SATURATION:
        return "off"
    for colour, low, high in HUES:
        if low <= hue <= high:
            return colour
    return "off"
