"""Where a camera's frames come from.

``source`` in the rig file is one of:

- a device index (``"0"``: ``/dev/video0``), a stream URL (``rtsp://``, ``http://``) or
  a video file: read through ``cv2.VideoCapture``, with open and read timeouts so a
  dead stream is a rig fault, never a hang;
- an image file: read again at every capture (a program may rewrite it: the sim
  terminal's ``display`` channel does);
- a folder of images: one image per capture in name order, the last one repeated (a
  scripted sequence of screens, for tests and for replaying a recorded session).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: How long opening a stream or reading one frame may take before the camera says so.
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000


class NoFrame(RuntimeError):
    """The source gave no frame; the message says which source and why."""


class FrameSource(Protocol):
    description: str

    def grab(self) -> Image:
        """The latest frame (BGR); ``NoFrame`` when there is none."""

    def close(self) -> None: ...


def _read_image(path: Path) -> Image:
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise NoFrame(f"{path}: no image there (missing, empty or not an image)")
    return image.astype(np.uint8)


class ImageFileSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"image file {path}"

    def grab(self) -> Image:
        return _read_image(self.path)

    def close(self) -> None:
        return None


class ImageFolderSource:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"image folder {folder}"
        self._next = 0

    def grab(self) -> Image:
        images = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise NoFrame(f"{self.folder}: the folder holds no image")
        path = images[min(self._next, len(images) - 1)]
        self._next += 1
        return _read_image(path)

    def close(self) -> None:
        return None


class VideoCaptureSource:
    """``cv2.VideoCapture`` on a device index, URL or video file, opened on first grab."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.description = f"video source {spec!r}"
        self._capture: cv2.VideoCapture | None = None

    def _open(self) -> cv2.VideoCapture:
        if self._capture is not None:
            return self._capture
        target: int | str = int(self.spec) if self.spec.isdigit() else self.spec
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            READ_TIMEOUT_MS,
        ]
        capture = cv2.VideoCapture(target, cv2.CAP_ANY, params)
        if not capture.isOpened():
            capture.release()
            raise NoFrame(f"{self.description}: cannot open it (no such device, file or stream)")
        self._capture = capture
        return capture

    def grab(self) -> Image:
        capture = self._open()
        ok, frame = capture.read()
        if not ok or frame is None:
            raise NoFrame(f"{self.description}: opened, but it gave no frame")
        return np.asarray(frame, dtype=np.uint8)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def frame_source(source: str, *, folder: Path) -> FrameSource:
    """The frame source ``source`` names (a path is relative to ``folder``, the rig
    file's folder)."""
    if not source.isdigit() and "://" not in source:
        path = Path(source) if Path(source).is_absolute() else folder / source
        if path.is_dir():
            return ImageFolderSource(path)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFileSource(path)
        return VideoCaptureSource(str(path))
    return VideoCaptureSource(source)
