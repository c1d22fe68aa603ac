"""Make a clean render of the terminal's face look photographed.

The camera path is tested on the sim's renders twice: as drawn, and as a camera in a
lab would see them: the face seen at an angle inside a larger frame (perspective),
slightly out of focus (blur), a reflection of a ceiling light (glare), the beat between
the LCD's pixel grid and the sensor's (moiré), and sensor noise. Everything is seeded,
so a figure computed on these frames is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Corners = NDArray[np.float32]

#: The frame a lab camera delivers (pixels).
CAMERA_FRAME = (1280, 960)


@dataclass(frozen=True)
class PhotoConditions:
    """How the face is photographed; every field 0 is a clean, straight shot."""

    #: corner displacement as a fraction of the face's size (perspective and rotation)
    perspective: float = 0.06
    #: Gaussian blur sigma, pixels of the frame
    blur_sigma: float = 1.2
    #: peak brightness added by the reflection (0-255)
    glare: float = 70.0
    #: amplitude of the moiré fringes (fraction of brightness)
    moire: float = 0.08
    #: standard deviation of sensor noise (0-255)
    noise: float = 4.0
    seed: int = 0


CLEAN = PhotoConditions(perspective=0, blur_sigma=0, glare=0, moire=0, noise=0)
PHOTOGRAPHED = PhotoConditions()


def photograph(face: Image, conditions: PhotoConditions = PHOTOGRAPHED) -> tuple[Image, Corners]:
    """``face`` (BGR) placed in a camera frame as ``conditions`` say. Returns the frame
    and the homography that maps face pixels to frame pixels (3x3, float32), from which
    a test knows where every point of the face landed."""
    rng = np.random.default_rng(conditions.seed)
    frame_w, frame_h = CAMERA_FRAME
    face_h, face_w = face.shape[:2]
    scale = 0.8 * min(frame_w / face_w, frame_h / face_h)
    w, h = face_w * scale, face_h * scale
    x0, y0 = (frame_w - w) / 2, (frame_h - h) / 2
    target = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.float32)
    jitter = rng.uniform(-1, 1, size=(4, 2)) * conditions.perspective * np.array([w, h])
    target = (target + jitter).astype(np.float32)
    source = np.array([[0, 0], [face_w, 0], [face_w, face_h], [0, face_h]], np.float32)
    homography = cv2.getPerspectiveTransform(source, target)
    frame = cv2.warpPerspective(
        face,
        homography,
        (frame_w, frame_h),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(70, 66, 60),  # the bench behind the terminal
    )
    work: NDArray[np.float32] = frame.astype(np.float32)
    if conditions.moire > 0:
        yy, xx = np.mgrid[0:frame_h, 0:frame_w].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(5.0, 9.0)
        fringes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        beat = np.sin((xx * np.cos(angle + 0.05) + yy * np.sin(angle + 0.05)) * 2 * np.pi / period)
        work *= (1 + conditions.moire * fringes * beat)[..., None]
    if conditions.glare > 0:
        cx, cy = rng.uniform(0.3, 0.7) * frame_w, rng.uniform(0.3, 0.7) * frame_h
        yy, xx = np.mgrid[0:frame_h, 0:frame_w].astype(np.float32)
        radius = 0.18 * frame_w
        spot = np.exp(-(((xx - cx) ** 2 + ((yy - cy) * 1.6) ** 2) / (2 * radius**2)))
        work += (conditions.glare * spot)[..., None]
    if conditions.blur_sigma > 0:
        work = np.asarray(cv2.GaussianBlur(work, (0, 0), conditions.blur_sigma), np.float32)
    if conditions.noise > 0:
        work += rng.normal(0, conditions.noise, size=work.shape).astype(np.float32)
    return np.clip(work, 0, 255).astype(np.uint8), homography.astype(np.float32)


def map_points(homography: Corners, points: NDArray[np.float32]) -> NDArray[np.float32]:
    """``points`` (N x 2, face pixels) where ``homography`` puts them in the frame."""
    mapped = cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float32), homography)
    return mapped.reshape(-1, 2).astype(np.float32)
