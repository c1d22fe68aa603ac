"""A camera on the terminal's display: what the screen says and how its LEDs are lit.

``DisplayCamera.read()`` captures a frame, deskews the screen with the calibration
from the rig file, reads its text with an offline OCR and judges each calibrated LED
spot. Steps that check the screen or the reader LED use it instead of the terminal's
own ``display.read`` when the rig has a camera (``hil.terminal.screensource``): the rig
then sees the screen as a person would, independently of what the terminal says.

Drivers:

- ``opencv``: ``cv2.VideoCapture`` on a device index, URL or video file, or an image
  file, or a folder of images (``hil.camera.frames``).
- ``sim``: the sim terminal's face, drawn by the sim on channel ``display`` (a PNG the
  sim replaces at every change), optionally made to look photographed (perspective,
  blur, glare, moiré, noise) so the calibration and OCR are exercised as on a bench.

Bad input is a rig fault with one line naming the camera and what to do: no frame,
no calibration, an OCR engine or model not installed (exit 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
from pydantic import Field, model_validator

from hil import reporting
from hil.camera.calibration import deskew
from hil.camera.frames import FrameSource, Image, NoFrame, frame_source
from hil.camera.leds import led_colour
from hil.camera.ocr import OcrEngine, OcrEngineName, OcrUnavailable, ocr_engine
from hil.camera.photograph import PhotoConditions, photograph
from hil.contract.screens import identify_screen
from hil.drivers import BuildContext, Built, Driver, DriverConfig, StrictOptions, register
from hil.errors import RigError


@dataclass(frozen=True)
class CameraReading:
    """One look at the terminal: the screen's text lines (as read), the documented
    screen they are (``unknown`` when none), and each calibrated LED's colour."""

    lines: tuple[str, ...]
    screen: str
    leds: dict[str, str] = field(default_factory=dict)
    ocr_ms: float = 0.0


@runtime_checkable
class DisplayCamera(Protocol):
    name: str

    def read(self) -> CameraReading:
        """Capture a frame now and read it."""

    def capture(self) -> Image:
        """The raw frame (BGR), as the camera delivers it."""

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class LedSpotOptions(StrictOptions):
    at: list[float] = Field(description="the LED's centre in the frame: [x, y] pixels")
    radius: float = Field(default=8.0, gt=0, le=200)

    @model_validator(mode="after")
    def _point(self) -> LedSpotOptions:
        if len(self.at) != 2:
            raise ValueError("at: an LED spot is [x, y]")
        return self


class CalibrationOptions(StrictOptions):
    """What ``hil camera calibrate`` writes: the screen's corners in the frame (top-left,
    top-right, bottom-right, bottom-left), the upright size it is warped to, LED spots."""

    screen: list[list[float]] = Field(description="four [x, y] corners of the screen")
    size: list[int] = Field(description="[width, height] of the deskewed screen image")
    leds: dict[str, LedSpotOptions] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> CalibrationOptions:
        if len(self.screen) != 4 or any(len(p) != 2 for p in self.screen):
            raise ValueError("screen: four [x, y] corners")
        if len(self.size) != 2 or min(self.size) < 16:
            raise ValueError("size: [width, height], each at least 16 pixels")
        return self


class CameraOptions(DriverConfig):
    ocr: OcrEngineName = "rapidocr"
    calibration: CalibrationOptions | None = None


class OpenCvCameraConfig(CameraOptions):
    source: str = Field(
        description="device index ('0'), stream URL, video file, image file or image folder"
    )


class SimCameraConfig(CameraOptions):
    photographed: bool = Field(
        default=False, description="make the sim's face look photographed (seeded)"
    )
    photo_seed: int = 7


class Camera:
    """Frames from a ``FrameSource``, read with a calibration and an OCR engine."""

    def __init__(
        self,
        source: FrameSource,
        *,
        ocr: OcrEngineName,
        calibration: CalibrationOptions | None,
        name: str = "camera",
    ) -> None:
        self.name = name
        self.source = source
        self.ocr_name = ocr
        self.calibration = calibration
        self._ocr: OcrEngine | None = None

    def _engine(self) -> OcrEngine:
        if self._ocr is None:
            try:
                self._ocr = ocr_engine(self.ocr_name)
            except OcrUnavailable as e:
                raise RigError(f"{self.name}: {e}", instrument=self.name) from e
        return self._ocr

    def _calibrated(self) -> CalibrationOptions:
        if self.calibration is None:
            raise RigError(
                f"{self.name}: not calibrated: run `hil camera calibrate --rig <rig file>` "
                "and keep the [camera.calibration] it writes",
                instrument=self.name,
            )
        return self.calibration

    def capture(self) -> Image:
        try:
            return self.source.grab()
        except NoFrame as e:
            raise RigError(
                f"{self.name}: no frame: {e}; check the camera is connected and [camera] source",
                instrument=self.name,
            ) from e

    def screen_image(self, frame: Image) -> Image:
        calibration = self._calibrated()
        corners = [(p[0], p[1]) for p in calibration.screen]
        return deskew(frame, corners, (calibration.size[0], calibration.size[1]))

    def leds(self, frame: Image) -> dict[str, str]:
        calibration = self._calibrated()
        try:
            return {
                name: led_colour(frame, (spot.at[0], spot.at[1]), spot.radius)
                for name, spot in calibration.leds.items()
            }
        except ValueError as e:
            raise RigError(f"{self.name}: calibration: {e}", instrument=self.name) from e

    def read(self) -> CameraReading:
        calibration = self._calibrated()
        engine = self._engine()
        frame = self.capture()
        screen = self.screen_image(frame)
        started = time.perf_counter()
        try:
            lines = tuple(engine.read_lines(screen))
        except OcrUnavailable as e:
            raise RigError(f"{self.name}: {e}", instrument=self.name) from e
        ocr_ms = (time.perf_counter() - started) * 1000
        reading = CameraReading(
            lines=lines,
            screen=identify_screen(lines),
            leds=self.leds(frame) if calibration.leds else {},
            ocr_ms=round(ocr_ms, 1),
        )
        ok, png = cv2.imencode(".png", screen)
        if ok:
            reporting.attach_bytes(
                f"{self.name}: screen as seen", png.tobytes(), mime="image/png", extension="png"
            )
        return reading

    def put_back(self) -> None:
        return None  # looking changes nothing

    def preflight(self) -> str:
        frame = self.capture()
        self._calibrated()
        self._engine()
        height, width = frame.shape[:2]
        return f"{self.source.description}: {width}x{height} frame, calibrated, OCR {self.ocr_name}"

    def close(self) -> None:
        self.source.close()


class SimFaceSource:
    """The sim's face from the PNG it keeps on channel ``display``. Before the terminal
    first draws it (switched off), the face is dark, as a real unpowered terminal's."""

    def __init__(self, path: Path, photo: PhotoConditions | None) -> None:
        self.path = path
        self.photo = photo
        self.description = f"sim display face {path}"

    def grab(self) -> Image:
        from hil.sim.render import FACE_SIZE

        data = np.fromfile(str(self.path), dtype=np.uint8) if self.path.is_file() else None
        face = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
        if face is None:
            face = np.full((FACE_SIZE[1], FACE_SIZE[0], 3), 30, dtype=np.uint8)
        image: Image = np.asarray(face, dtype=np.uint8)
        if self.photo is None:
            return image
        frame, _ = photograph(image, self.photo)
        return frame

    def close(self) -> None:
        return None


@register("camera", "opencv")
class OpenCvCameraDriver(Driver):
    """``cv2.VideoCapture`` (device, URL, video file), an image file or an image folder."""

    config_model = OpenCvCameraConfig

    @classmethod
    def build(cls, config: OpenCvCameraConfig, context: BuildContext) -> Built:
        source = frame_source(config.source, folder=context.folder)
        return Built(Camera(source, ocr=config.ocr, calibration=config.calibration))


@register("camera", "sim")
class SimCameraDriver(Driver):
    """The sim terminal's face (channel ``display``), clean or photographed."""

    config_model = SimCameraConfig
    needs = ("dut",)

    @classmethod
    def build(cls, config: SimCameraConfig, context: BuildContext) -> Built:
        path = context.work_dir / "display-face.png"
        path.unlink(missing_ok=True)  # the face of an earlier run is not this terminal's
        photo = PhotoConditions(seed=config.photo_seed) if config.photographed else None
        camera = Camera(SimFaceSource(path, photo), ocr=config.ocr, calibration=config.calibration)
        return Built(camera, {"display": str(path)})
