"""Offline OCR of a deskewed screen image into text lines, Chinese and English.

Two engines, both installed from package registries with their models, nothing
fetched at run time:

- ``rapidocr`` (the default): PyPI ``rapidocr-onnxruntime``, PP-OCRv4 detection and
  recognition models shipped inside the wheel, run by onnxruntime (the ``camera``
  extra of pos-hil).
- ``tesseract``: Debian ``tesseract-ocr`` with ``tesseract-ocr-chi-sim`` and
  ``tesseract-ocr-eng``, run as the ``tesseract`` program.

docs/decisions.md ("Camera OCR") has the comparison on the sim's screens that chose
the default. An engine that is not installed raises ``OcrUnavailable`` naming what to
install; the camera turns it into a rig fault (exit 3).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

OcrEngineName = Literal["rapidocr", "tesseract"]
OCR_ENGINES: tuple[OcrEngineName, ...] = ("rapidocr", "tesseract")
TESSERACT_LANGUAGES = ("chi_sim", "eng")
#: A tesseract run that takes longer than this is stuck: the camera reports it, never hangs.
TESSERACT_TIMEOUT_S = 60.0

Image = NDArray[np.uint8]


class OcrUnavailable(RuntimeError):
    """The engine or its model is not installed; the message says what to install."""


class OcrEngine(Protocol):
    name: str

    def read_lines(self, image: Image) -> list[str]:
        """The text lines of ``image`` (BGR), top to bottom."""


@dataclass(frozen=True)
class TextBox:
    """One piece of text the engine found, with its box (pixels)."""

    text: str
    left: float
    top: float
    right: float
    bottom: float

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def height(self) -> float:
        return self.bottom - self.top


def group_lines(boxes: Sequence[TextBox]) -> list[str]:
    """Boxes joined into lines: a box whose vertical middle lies within the current
    line's band joins it; lines top to bottom, boxes left to right, joined by a space."""
    lines: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: b.middle):
        if lines:
            current = lines[-1]
            band = sum(b.height for b in current) / len(current)
            centre = sum(b.middle for b in current) / len(current)
            if abs(box.middle - centre) < band / 2:
                current.append(box)
                continue
        lines.append([box])
    return [" ".join(b.text for b in sorted(line, key=lambda b: b.left)) for line in lines]


class RapidOcr:
    """PP-OCRv4 through rapidocr-onnxruntime; one model load per process."""

    name = "rapidocr"
    _shared: Any = None

    def __init__(self) -> None:
        if RapidOcr._shared is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as e:
                raise OcrUnavailable(
                    "OCR engine rapidocr is not installed: pip install 'pos-hil[camera]' "
                    f"(PyPI rapidocr-onnxruntime) ({e})"
                ) from e
            try:
                RapidOcr._shared = RapidOCR()
            except Exception as e:  # its model files missing or unreadable
                raise OcrUnavailable(
                    f"OCR engine rapidocr cannot load its models: {type(e).__name__}: {e}; "
                    "reinstall rapidocr-onnxruntime"
                ) from e
        self._engine = RapidOcr._shared

    def read_lines(self, image: Image) -> list[str]:
        # The screen is upright after the deskew: no text-direction classifier needed.
        result, _ = self._engine(image, use_cls=False)
        boxes = []
        for corners, text, _score in result or []:
            xs = [float(p[0]) for p in corners]
            ys = [float(p[1]) for p in corners]
            boxes.append(TextBox(str(text), min(xs), min(ys), max(xs), max(ys)))
        return group_lines(boxes)


class Tesseract:
    """Tesseract 5 with the chi_sim and eng models, one block of uniform text (psm 6)."""

    name = "tesseract"

    def __init__(self) -> None:
        program = shutil.which("tesseract")
        if program is None:
            raise OcrUnavailable(
                "OCR engine tesseract is not installed: apt-get install tesseract-ocr "
                "tesseract-ocr-chi-sim"
            )
        self._program = program
        listed = subprocess.run(
            [program, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
        missing = [lang for lang in TESSERACT_LANGUAGES if lang not in listed.stdout.split()]
        if missing:
            raise OcrUnavailable(
                f"OCR engine tesseract lacks the model(s) {', '.join(missing)}: apt-get "
                "install tesseract-ocr-chi-sim tesseract-ocr-eng"
            )

    def read_lines(self, image: Image) -> list[str]:
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise OcrUnavailable("cannot encode the screen image for tesseract")
        try:
            done = subprocess.run(
                [
                    self._program,
                    "stdin",
                    "stdout",
                    "-l",
                    "+".join(TESSERACT_LANGUAGES),
                    "--psm",
                    "6",
                ],
                input=png.tobytes(),
                capture_output=True,
                timeout=TESSERACT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise OcrUnavailable(f"tesseract took over {TESSERACT_TIMEOUT_S:.0f} s") from e
        if done.returncode != 0:
            why = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise OcrUnavailable(f"tesseract failed: {why[0] if why else done.returncode}")
        text = done.stdout.decode("utf-8", errors="replace")
        return [line.strip() for line in text.splitlines() if line.strip()]


def ocr_engine(name: OcrEngineName) -> OcrEngine:
    """The engine called ``name``, loaded; ``OcrUnavailable`` when it is not installed."""
    if name == "rapidocr":
        return RapidOcr()
    return Tesseract()
