"""QR display screen: payload -> image -> calibrated degradations -> what the scanner sees.

Steps see only the ``QrScreen`` Protocol: ``show(payload, degradation)`` and
``blank()``. A blank screen shows its rest image, the calibration target (a reserved
payload, ``hil.contract.qr.CALIBRATION_PAYLOAD``), so a terminal's power-on self-check
always has a known code in view; a scan never reports it as a customer's code.

Drivers, picked by ``[qr_screen] driver`` in the rig file (docs/qr.md):

- ``sim``: frames served on loopback over ``pos-hil camera/1``; wires channel
  ``camera=127.0.0.1:PORT`` into the simulated terminal.
- ``window``: a full-screen window on an X display (a monitor facing a real scanner).
  The frame is rendered with OpenCV; it is put on the display with python-xlib,
  because opencv-python-headless has no highgui windows (see docs/decisions.md).
- ``file``: every frame written as a PNG (and a JSON line) into a folder; wires no
  channel (nothing reads it back as a camera).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import Field

from hil import reporting
from hil.config import RigPath
from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError
from hil.masking import mask_text
from hil.qr.degrade import Degradation, apply
from hil.qr.framelink import FrameClient, FrameLinkError, FrameServer
from hil.qr.render import CodeLayout, Image, RenderOptions, render, to_png


@dataclass(frozen=True)
class ShownFrame:
    """One frame a screen showed: what, how degraded, and the pixels."""

    seq: int
    payload: str
    degradation: Degradation
    image: Image
    layout: CodeLayout
    corners: npt.NDArray[np.float32]
    calibration: bool  # the rest image (blank screen)

    def png(self) -> bytes:
        return to_png(self.image)

    def describe(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "payload": self.payload,
            "calibration_target": self.calibration,
            "degradation": self.degradation.describe(),
            "seed": self.degradation.seed,
            "qr_version": self.layout.version,
            "modules": self.layout.modules,
            "module_px": self.layout.module_px,
            "frame": f"{self.image.shape[1]}x{self.image.shape[0]}",
        }


@runtime_checkable
class QrScreen(Protocol):
    """A screen facing the terminal's scanner, as steps see it."""

    name: str

    def show(self, payload: str, degradation: Degradation | None = None) -> ShownFrame:
        """Show ``payload`` as a QR code with ``degradation`` applied; returns the frame."""

    def blank(self) -> ShownFrame:
        """Show no customer code: the rest image, the undegraded calibration target."""

    @property
    def shown(self) -> ShownFrame:
        """The frame on the screen now."""

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class _RenderingScreen:
    """Rendering and bookkeeping shared by the drivers; ``_present`` puts pixels out."""

    driver = "?"

    def __init__(self, options: RenderOptions, *, name: str = "qr_screen") -> None:
        self.name = name
        self.options = options
        self._lock = threading.Lock()
        self._seq = 0
        self._shown: ShownFrame | None = None
        # The rest image is the same pixels every time (fixed payload, options and no
        # degradation) and is put back after every scenario: rendered once. Read-only,
        # since every blank frame shares it.
        self._calibration: tuple[Image, CodeLayout, npt.NDArray[np.float32]] | None = None

    def _frame(self, payload: str, degradation: Degradation, calibration: bool) -> ShownFrame:
        if calibration and degradation == Degradation() and self._calibration is not None:
            image, layout, corners = self._calibration
        else:
            try:
                clean, layout = render(payload, self.options)
            except ValueError as e:
                raise RigError(
                    f"{self.name}: cannot render payload: {e}", instrument=self.name
                ) from e
            degraded = apply(clean, layout, degradation)
            image, corners = degraded.image, degraded.corners
            if calibration and degradation == Degradation():
                image.flags.writeable = False
                corners.flags.writeable = False
                self._calibration = (image, layout, corners)
        with self._lock:
            self._seq += 1
            seq = self._seq
        return ShownFrame(seq, payload, degradation, image, layout, corners, calibration)

    def _put(self, frame: ShownFrame) -> ShownFrame:
        self._present(frame)
        with self._lock:
            self._shown = frame
        return frame

    def _present(self, frame: ShownFrame) -> None:
        raise NotImplementedError

    def show(self, payload: str, degradation: Degradation | None = None) -> ShownFrame:
        d = degradation or Degradation()
        with reporting.action(
            f"{self.name}: show QR code", payload=mask_text(payload), degradation=d.describe()
        ):
            return self._put(self._frame(payload, d, calibration=False))

    def blank(self) -> ShownFrame:
        with reporting.action(f"{self.name}: blank (calibration target)"):
            return self._put(self._frame(CALIBRATION_PAYLOAD, Degradation(), calibration=True))

    @property
    def shown(self) -> ShownFrame:
        with self._lock:
            frame = self._shown
        if frame is None:
            raise RigError(f"{self.name}: nothing shown yet", instrument=self.name)
        return frame

    def put_back(self) -> None:
        """The calibration target again, unless it is what the screen shows already
        (the scenario showed nothing): the same pixels need not be put up twice, nor
        a new frame number handed to the terminal's camera."""
        with self._lock:
            shown = self._shown
        if shown is not None and shown.calibration:
            return
        self.blank()

    def preflight(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        return None


class SimQrScreen(_RenderingScreen):
    """Frames served to the simulated terminal's camera over ``pos-hil camera/1``."""

    driver = "sim"

    def __init__(self, options: RenderOptions, *, port: int = 0, name: str = "qr_screen") -> None:
        super().__init__(options, name=name)
        self.blank()
        self._server = FrameServer(self._current, port=port)

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    def _current(self) -> tuple[int, Image]:
        frame = self.shown
        return frame.seq, frame.image

    def _present(self, frame: ShownFrame) -> None:
        return None  # the server hands out whatever ``shown`` is at each request

    def preflight(self) -> str:
        client = FrameClient(self.endpoint, timeout=2.0)
        try:
            seq, image = client.grab()
        except FrameLinkError as e:
            raise RigError(f"{self.name}: {e}", instrument=self.name) from e
        finally:
            client.close()
        return f"camera channel {self.endpoint}: {image.shape[1]}x{image.shape[0]} frame {seq}"

    def close(self) -> None:
        self._server.close()


class FileQrScreen(_RenderingScreen):
    """Writes each frame as ``frame-NNNNN.png`` plus a line in ``frames.jsonl``."""

    driver = "file"

    def __init__(self, options: RenderOptions, directory: Path, *, name: str = "qr_screen") -> None:
        super().__init__(options, name=name)
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RigError(
                f"{name}: cannot create {directory}: {e.strerror or e}", instrument=name
            ) from e
        self.blank()

    def _present(self, frame: ShownFrame) -> None:
        path = self.directory / f"frame-{frame.seq:05d}.png"
        try:
            path.write_bytes(frame.png())
            with (self.directory / "frames.jsonl").open("a", encoding="utf-8") as index:
                record = {"file": path.name, **frame.describe()}
                index.write(mask_text(json.dumps(record, ensure_ascii=False)) + "\n")
        except OSError as e:
            raise RigError(
                f"{self.name}: cannot write {path}: {e.strerror or e}", instrument=self.name
            ) from e

    def preflight(self) -> str:
        if not os.access(self.directory, os.W_OK):
            raise RigError(f"{self.name}: {self.directory} is not writable", instrument=self.name)
        return f"writing frames to {self.directory}"


class WindowQrScreen(_RenderingScreen):
    """A full-screen, borderless window on an X display, owned by one thread.

    The window covers the whole display (override-redirect, so no window manager
    decorates or moves it); the frame is rendered at the display's size, so
    ``module_px`` is in the monitor's own pixels. Grey frames go out with XPutImage in
    strips that fit the server's request size; Expose events repaint the last frame.
    """

    driver = "window"

    def __init__(
        self, options: RenderOptions, display: str | None, *, name: str = "qr_screen"
    ) -> None:
        try:
            import Xlib.threaded  # noqa: F401  (the event thread shares the connection)
            from Xlib import X
            from Xlib import display as xdisplay
            from Xlib import error as xerror
        except ImportError as e:
            raise RigError(
                f"{name}: the window driver needs python-xlib: {e}", instrument=name
            ) from e
        self._X = X
        self.display_name = display or os.environ.get("DISPLAY", "")
        if not self.display_name:
            raise RigError(f"{name}: no X display (set qr_screen.display or DISPLAY)")
        try:
            self._display = xdisplay.Display(self.display_name)
        except (xerror.DisplayError, OSError) as e:
            raise RigError(
                f"{name}: cannot open X display {self.display_name!r}: {e}", instrument=name
            ) from e
        screen = self._display.screen()
        width, height = int(screen.width_in_pixels), int(screen.height_in_pixels)
        super().__init__(
            RenderOptions(
                module_px=options.module_px,
                ecc=options.ecc,
                quiet_zone=options.quiet_zone,
                frame_width=width,
                frame_height=height,
            ),
            name=name,
        )
        self._depth = int(screen.root_depth)
        formats = [f for f in self._display.display.info.pixmap_formats if f.depth == self._depth]
        if not formats or formats[0].bits_per_pixel not in (24, 32):
            self._display.close()
            raise RigError(f"{name}: display depth {self._depth} is not a true-colour visual")
        self._bpp = int(formats[0].bits_per_pixel)
        self._pad = int(formats[0].scanline_pad)
        self._window = screen.root.create_window(
            0,
            0,
            width,
            height,
            0,
            self._depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=screen.white_pixel,
            override_redirect=True,
            event_mask=X.ExposureMask,
        )
        self._window.set_wm_name("pos-hil QR screen")
        self._gc = self._window.create_gc(
            foreground=screen.black_pixel, background=screen.white_pixel
        )
        self._window.map()
        self._display.sync()
        self._closing = threading.Event()
        self._paint_lock = threading.Lock()
        self._events = threading.Thread(target=self._event_loop, name="qr-window", daemon=True)
        self._events.start()
        self.blank()

    def _pixels(self, image: Image) -> tuple[bytes, int]:
        """ZPixmap bytes for a grey image (R = G = B, so byte order does not matter)."""
        height, width = image.shape
        per_pixel = self._bpp // 8
        rows = np.repeat(image[:, :, None], per_pixel, axis=2).reshape(height, width * per_pixel)
        stride = -(-width * self._bpp // self._pad) * self._pad // 8
        if stride != width * per_pixel:
            rows = np.pad(rows, ((0, 0), (0, stride - width * per_pixel)))
        return np.ascontiguousarray(rows).tobytes(), stride

    def _present(self, frame: ShownFrame) -> None:
        with self._paint_lock:  # show() and the Expose repaint must not interleave strips
            self._paint(frame)

    def _paint(self, frame: ShownFrame) -> None:
        data, stride = self._pixels(frame.image)
        height, width = frame.image.shape
        # A request is at most max_request_length 4-byte units; leave room for the header.
        max_bytes = int(self._display.display.info.max_request_length) * 4 - 64
        rows_per_strip = max(1, max_bytes // stride)
        for top in range(0, height, rows_per_strip):
            count = min(rows_per_strip, height - top)
            strip = data[top * stride : (top + count) * stride]
            self._window.put_image(
                self._gc, 0, top, width, count, self._X.ZPixmap, self._depth, 0, strip
            )
        self._display.sync()

    def _event_loop(self) -> None:
        while not self._closing.is_set():
            try:
                event = self._display.next_event()
            except Exception:  # connection closed on close(): the loop ends
                return
            if event.type == self._X.Expose and event.count == 0 and self._shown is not None:
                try:
                    self._present(self._shown)
                except Exception:
                    return

    def preflight(self) -> str:
        self._display.sync()
        width, height = self.options.frame_width, self.options.frame_height
        return f"full-screen window on X display {self.display_name} ({width}x{height})"

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(Exception):  # the display may already be gone
            self._window.destroy()
            self._display.sync()
        with contextlib.suppress(Exception):
            self._display.close()
        self._events.join(timeout=2.0)


def capture_display(display: str) -> Image:
    """The whole X display as a grey image (what a camera facing the monitor would see).

    Used to check the window driver independently of it: a second X connection reads
    the pixels back from the server.
    """
    from Xlib import X
    from Xlib import display as xdisplay

    conn = xdisplay.Display(display)
    try:
        screen = conn.screen()
        width, height = int(screen.width_in_pixels), int(screen.height_in_pixels)
        formats = [f for f in conn.display.info.pixmap_formats if f.depth == screen.root_depth]
        bpp = int(formats[0].bits_per_pixel)
        pad = int(formats[0].scanline_pad)
        raw = screen.root.get_image(0, 0, width, height, X.ZPixmap, 0xFFFFFFFF).data
        stride = -(-width * bpp // pad) * pad // 8
        data = np.frombuffer(bytes(raw), dtype=np.uint8).reshape(height, stride)
        pixels = data[:, : width * bpp // 8].reshape(height, width, bpp // 8)[:, :, :3]
        return np.asarray(pixels.mean(axis=2).round(), dtype=np.uint8)
    finally:
        conn.close()


class _CodeOptions(DriverConfig):
    """How a code is drawn, whatever shows it."""

    module_px: int = Field(default=6, ge=1, le=64, description="screen pixels per QR module")
    ecc: Literal["L", "M", "Q", "H"] = "M"
    quiet_zone: int = Field(default=4, ge=0, le=16, description="white modules around the code")


class FrameOptions(_CodeOptions):
    """A screen of a fixed frame size (the sim camera, PNG files)."""

    frame_width: int = Field(default=640, ge=64, le=8192)
    frame_height: int = Field(default=480, ge=64, le=8192)

    def render_options(self) -> RenderOptions:
        return RenderOptions(
            module_px=self.module_px,
            ecc=self.ecc,
            quiet_zone=self.quiet_zone,
            frame_width=self.frame_width,
            frame_height=self.frame_height,
        )


class FileScreenConfig(FrameOptions):
    directory: RigPath = Field(description="folder the PNG frames are written to")


class WindowScreenConfig(_CodeOptions):
    """The window takes the display's size, so it has no frame size of its own."""

    display: str | None = Field(default=None, description="X display; default $DISPLAY")

    def render_options(self) -> RenderOptions:
        return RenderOptions(module_px=self.module_px, ecc=self.ecc, quiet_zone=self.quiet_zone)


class SimScreenConfig(FrameOptions):
    port: int = Field(default=0, ge=0, le=65535, description="loopback port; 0 = ephemeral")


@register("qr_screen", "sim")
class SimQrScreenDriver(Driver):
    """Frames on loopback for the sim terminal's camera (channel ``camera``)."""

    config_model = SimScreenConfig

    @classmethod
    def build(cls, config: SimScreenConfig, context: BuildContext) -> Built:
        screen = SimQrScreen(config.render_options(), port=config.port)
        return Built(screen, {"camera": screen.endpoint})


@register("qr_screen", "file")
class FileQrScreenDriver(Driver):
    config_model = FileScreenConfig

    @classmethod
    def build(cls, config: FileScreenConfig, context: BuildContext) -> Built:
        return Built(FileQrScreen(config.render_options(), config.directory))


@register("qr_screen", "window")
class WindowQrScreenDriver(Driver):
    config_model = WindowScreenConfig

    @classmethod
    def build(cls, config: WindowScreenConfig, context: BuildContext) -> Built:
        return Built(WindowQrScreen(config.render_options(), config.display))
