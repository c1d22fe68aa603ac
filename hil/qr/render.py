"""Payload -> QR image -> the frame a screen shows.

The QR symbol is encoded with segno (pure Python) and drawn with numpy: each module
is ``module_px`` square pixels, dark modules black (0), light modules and the quiet
zone white (255). The symbol is centred on a white frame of the screen's size.
Degradations (``hil.qr.degrade``) then act on the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import segno
from segno import consts as segno_consts

EccLevel = Literal["L", "M", "Q", "H"]
ECC_LEVELS: tuple[EccLevel, ...] = ("L", "M", "Q", "H")

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class RenderOptions:
    """How a payload becomes pixels: the screen's calibration, in its own pixels."""

    module_px: int = 6
    ecc: EccLevel = "M"
    quiet_zone: int = 4  # modules of white around the symbol (the standard asks for 4)
    frame_width: int = 640
    frame_height: int = 480

    def __post_init__(self) -> None:
        if not 1 <= self.module_px <= 64:
            raise ValueError(f"module_px must be 1-64, got {self.module_px}")
        if self.ecc not in ECC_LEVELS:
            raise ValueError(f"ecc must be one of {ECC_LEVELS}, got {self.ecc!r}")
        if not 0 <= self.quiet_zone <= 16:
            raise ValueError(f"quiet_zone must be 0-16 modules, got {self.quiet_zone}")
        if self.frame_width < 64 or self.frame_height < 64:
            raise ValueError("frame must be at least 64x64 pixels")


@dataclass(frozen=True)
class CodeLayout:
    """Where the symbol sits on the undegraded frame (screen plane)."""

    modules: int  # symbol size in modules, without quiet zone
    version: int
    module_px: int
    x: int  # left edge of the symbol (first module), pixels
    y: int  # top edge
    matrix: npt.NDArray[np.bool_]  # True = dark module
    data: npt.NDArray[np.bool_]  # True = data/ECC module; False = function pattern

    @property
    def side_px(self) -> int:
        return self.modules * self.module_px

    @property
    def centre(self) -> tuple[float, float]:
        half = self.side_px / 2
        return self.x + half, self.y + half

    def corners(self) -> npt.NDArray[np.float32]:
        """Symbol corners, clockwise from top-left, as (x, y)."""
        s = self.side_px
        return np.array(
            [
                [self.x, self.y],
                [self.x + s, self.y],
                [self.x + s, self.y + s],
                [self.x, self.y + s],
            ],
            dtype=np.float32,
        )

    def module_mask(self) -> npt.NDArray[np.bool_]:
        """Frame-sized mask of dark modules (for calibration measurements)."""
        big = np.kron(self.matrix, np.ones((self.module_px, self.module_px), dtype=bool))
        return big.astype(bool)


def encode(payload: str, ecc: EccLevel) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], int]:
    """QR matrix (True = dark), data-module mask and version for ``payload``.

    Byte mode (UTF-8) for non-ASCII text; segno picks the mode otherwise.
    """
    if not payload:
        raise ValueError("cannot encode an empty payload")
    mode = None if payload.isascii() else "byte"
    try:
        code = segno.make(
            payload, error=ecc.lower(), micro=False, boost_error=False, mode=mode, encoding="utf-8"
        )
    except segno.DataOverflowError as e:
        raise ValueError(f"payload of {len(payload)} characters does not fit a QR code: {e}") from e
    matrix = np.array(code.matrix, dtype=np.uint8).astype(bool)
    kinds = np.array(list(code.matrix_iter(scale=1, border=0, verbose=True)), dtype=np.int64)
    data = np.isin(kinds, (segno_consts.TYPE_DATA_DARK, segno_consts.TYPE_DATA_LIGHT))
    return matrix, data, int(code.version)


def render(payload: str, options: RenderOptions | None = None) -> tuple[Image, CodeLayout]:
    """The undegraded frame and where the symbol sits on it."""
    opts = options or RenderOptions()
    matrix, data, version = encode(payload, opts.ecc)
    modules = matrix.shape[0]
    side = modules * opts.module_px
    needed = (modules + 2 * opts.quiet_zone) * opts.module_px
    if needed > min(opts.frame_width, opts.frame_height):
        raise ValueError(
            f"a version {version} code ({modules} modules + quiet zone) at {opts.module_px} px "
            f"a module needs {needed} px, the frame is {opts.frame_width}x{opts.frame_height}"
        )
    frame = np.full((opts.frame_height, opts.frame_width), 255, dtype=np.uint8)
    x = (opts.frame_width - side) // 2
    y = (opts.frame_height - side) // 2
    layout = CodeLayout(modules, version, opts.module_px, x, y, matrix, data)
    dark = layout.module_mask()
    frame[y : y + side, x : x + side][dark] = 0
    return frame, layout


def blank_frame(options: RenderOptions | None = None) -> Image:
    opts = options or RenderOptions()
    return np.full((opts.frame_height, opts.frame_width), 255, dtype=np.uint8)


def to_png(image: Image) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return bytes(buffer.tobytes())
