"""The simulated terminal's QR scanner: a camera on the ``camera`` channel and a decoder.

The camera pulls frames from the rig's screen over ``pos-hil camera/1``
(``hil.qr.framelink``) at up to ``CAMERA_FPS`` frames a second; each frame is decoded
with OpenCV's ``QRCodeDetector`` (the one decoder of this firmware). A scan ends at
the first code read that is not the calibration target, or at its timeout. Merchant
QR codes (EMVCo MPM) are validated (TLV, CRC) before they are reported; an invalid
one is rejected with ``E_QR_CRC`` or ``E_QR_FORMAT``. Documented in
docs/test-port-protocol.md (``scanner.scan``) and docs/qr.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.protocol.endpoint import CommandFailed
from hil.qr.payloads import PayloadError, classify_wallet, kind_of, parse_mpm
from hil.sim import defects as seeded
from hil.sim.state import atomic_write_bytes

if TYPE_CHECKING:
    from hil.qr.framelink import FrameClient, RawFrame
    from hil.qr.render import Image

# OpenCV and numpy load on the first use of the camera (about 0.3 s): a terminal
# without a camera boots without them.

CAMERA_FPS = 30.0
SCAN_DEFAULT_TIMEOUT_MS = 5000
SCAN_MAX_TIMEOUT_MS = 60000
SCAN_MAX_FRAMES = 1000
#: the self-check reads the calibration target for at most this long / this many frames
CALIBRATION_TIMEOUT_S = 0.5
CALIBRATION_FRAMES = 3

Emit = Callable[[str, dict[str, Any]], None]
Sleep = Callable[[float], None]
Log = Callable[[str, str, str], Any]


@dataclass(frozen=True)
class Decode:
    text: str  # "" when nothing was read
    decode_ms: float


def new_detector() -> Any:
    import cv2

    return cv2.QRCodeDetector()


def decode_frame(detector: Any, image: Image) -> Decode:
    import cv2

    started = time.perf_counter()
    try:
        text, _points, _straight = detector.detectAndDecode(image)
    except cv2.error:
        text = ""  # OpenCV raises on some degenerate detections: nothing read
    return Decode(str(text or ""), (time.perf_counter() - started) * 1000.0)


@dataclass(frozen=True)
class CalibrationReading:
    """What the self-check saw through the camera."""

    camera: str
    decoded: str | None  # text of the code read, None if none
    decode_ms: float
    frames: int
    luminance_pct: float  # mean grey level of the last frame, % of full scale
    error: str | None = None  # the camera did not answer


class DecodeMemo:
    """What the camera's decoder read from frames it decoded before, kept by their pixels.

    The decoder is a pure function of the pixels, and the calibration target is the
    same frame at every power-on: decoding it again (and loading numpy and OpenCV for
    that, about 0.2 s of CPU) at each boot tells nothing new. The memo is a folder the
    rig gives the sim (``HIL_DECODE_MEMO``, in the rig's work folder, so it lasts one
    rig session): one file per frame decoded, named by the SHA-256 of its size and
    pixels, holding the text read ("" for none) and the time the decode took then.
    A frame that differs in one pixel (a dark or dirty scan window, another code) is
    decoded afresh. A missing or unreadable entry is a miss, never an error.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def read(self, frame: RawFrame, decode: Callable[[RawFrame], Decode]) -> Decode:
        """What ``decode`` made of these pixels before, or ``decode(frame)`` now, kept."""
        digest = hashlib.sha256(f"{frame.width}x{frame.height}:".encode("ascii"))
        digest.update(frame.pixels)
        path = self.folder / f"{digest.hexdigest()}.json"
        try:
            entry = json.loads(path.read_bytes())
            return Decode(str(entry["text"]), float(entry["decode_ms"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # not decoded before, or the entry is unreadable: decoded now
        result = decode(frame)
        entry = {"text": result.text, "decode_ms": result.decode_ms}
        with contextlib.suppress(OSError):  # a memo that cannot be written is a miss later
            atomic_write_bytes(path, json.dumps(entry).encode("utf-8"))
        return result


def _mean_luminance_pct(frame: RawFrame) -> float:
    """Mean grey level in % of full scale; the exact integer sum, as numpy's mean of
    these bytes gives (every partial sum is an integer well below 2**53)."""
    return sum(frame.pixels) / len(frame.pixels) / 255.0 * 100.0


def read_calibration_target(endpoint: str, memo: DecodeMemo | None = None) -> CalibrationReading:
    """Pull a few frames and try to read them: the qr_scanner self-check's measurement.

    With ``memo``, a frame decoded before (the same pixels) is read from it, and numpy
    and OpenCV are loaded only for a frame that is not in it."""
    from hil.qr.framelink import FrameClient, FrameLinkError

    try:
        client = FrameClient(endpoint, timeout=1.0)
    except FrameLinkError as e:
        return CalibrationReading(endpoint, None, 0.0, 0, 0.0, str(e))
    detector: Any = None

    def decode(frame: RawFrame) -> Decode:
        nonlocal detector
        if detector is None:  # OpenCV loads for the first frame that is not remembered
            detector = new_detector()
        return decode_frame(detector, frame.image())

    deadline = time.monotonic() + CALIBRATION_TIMEOUT_S
    frames = 0
    luminance = 0.0
    total_ms = 0.0
    try:
        while True:
            try:
                frame = client.grab_raw()
            except FrameLinkError as e:
                return CalibrationReading(endpoint, None, 0.0, frames, 0.0, str(e))
            frames += 1
            luminance = _mean_luminance_pct(frame)
            result = memo.read(frame, decode) if memo is not None else decode(frame)
            total_ms += result.decode_ms
            if result.text:
                return CalibrationReading(
                    endpoint, result.text, result.decode_ms, frames, luminance
                )
            if frames >= CALIBRATION_FRAMES or time.monotonic() >= deadline:
                return CalibrationReading(endpoint, None, total_ms / frames, frames, luminance)
    finally:
        client.close()


def _int_arg(
    args: dict[str, Any], name: str, default: int | None, low: int, high: int
) -> int | None:
    value = args.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CommandFailed("E_BAD_ARGS", f"{name} must be an integer from {low} to {high}")
    return value


class Scanner:
    """One terminal's scanner. ``scan`` is called from command worker threads."""

    def __init__(self, camera: str | None, *, emit: Emit, sleep: Sleep, log: Log) -> None:
        self.camera = camera
        self._emit = emit
        self._sleep = sleep
        self._log = log
        self._busy = threading.Lock()
        self._client: FrameClient | None = None
        self._detector: Any = None
        #: seeded defects of the running image (hil.sim.defects) the scanner honours
        self.defects: frozenset[str] = frozenset()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def scan_command(self, args: dict[str, Any]) -> dict[str, Any]:
        """``scanner.scan``: args ``timeout_ms`` (default 5000), ``max_frames`` (optional)."""
        unknown = sorted(set(args) - {"timeout_ms", "max_frames"})
        if unknown:
            raise CommandFailed(
                "E_BAD_ARGS",
                f"unknown argument(s) {', '.join(unknown)}; expected: timeout_ms, max_frames",
            )
        timeout_ms = _int_arg(args, "timeout_ms", SCAN_DEFAULT_TIMEOUT_MS, 1, SCAN_MAX_TIMEOUT_MS)
        max_frames = _int_arg(args, "max_frames", None, 1, SCAN_MAX_FRAMES)
        assert timeout_ms is not None
        if self.camera is None:
            raise CommandFailed("E_CAMERA_ABSENT", "no QR scanner camera connected")
        if not self._busy.acquire(blocking=False):
            raise CommandFailed("E_BUSY", "a scan is already running")
        try:
            return self._scan(timeout_ms, max_frames)
        finally:
            self._busy.release()

    def scan_for_sale(self, timeout_ms: int) -> dict[str, Any]:
        """The customer's code for a QR sale: the same scan as ``scanner.scan``."""
        if self.camera is None:
            raise CommandFailed("E_CAMERA_ABSENT", "no QR scanner camera connected")
        if not self._busy.acquire(blocking=False):
            raise CommandFailed("E_BUSY", "a scan is already running")
        try:
            return self._scan(timeout_ms, None)
        finally:
            self._busy.release()

    def _scan(self, timeout_ms: int, max_frames: int | None) -> dict[str, Any]:
        from hil.qr.framelink import FrameClient, FrameLinkError

        assert self.camera is not None
        if self._client is None:
            try:
                self._client = FrameClient(self.camera, timeout=1.0)
            except FrameLinkError as e:
                raise CommandFailed("E_CAMERA_ABSENT", f"camera not answering: {e}") from None
            self._detector = new_detector()
        started = time.monotonic()
        deadline = started + timeout_ms / 1000.0
        frames = 0
        while True:
            frame_due = time.monotonic() + 1.0 / CAMERA_FPS
            try:
                seq, image = self._client.grab()
            except FrameLinkError as e:
                raise CommandFailed("E_CAMERA_ABSENT", f"camera not answering: {e}") from None
            frames += 1
            result = decode_frame(self._detector, image)
            if result.text and result.text != CALIBRATION_PAYLOAD:
                scan_ms = (time.monotonic() - started) * 1000.0
                return self._report(result, frames, seq, scan_ms)
            now = time.monotonic()
            if (max_frames is not None and frames >= max_frames) or now >= deadline:
                break
            # The camera delivers a new frame at its own rate, not faster.
            self._sleep(max(0.0, min(frame_due, deadline) - now))
        scan_ms = round((time.monotonic() - started) * 1000.0, 1)
        data = {"scan_ms": scan_ms, "frames": frames, "timeout_ms": timeout_ms}
        self._emit("scanner.no_code", data)
        raise CommandFailed(
            "E_QR_NO_CODE", f"no QR code read in {scan_ms:.0f} ms ({frames} frames)"
        )

    def _report(self, result: Decode, frames: int, seq: int, scan_ms: float) -> dict[str, Any]:
        payload = result.text
        kind = kind_of(payload)
        timing = {
            "decode_ms": round(result.decode_ms, 2),
            "scan_ms": round(scan_ms, 1),
            "frames": frames,
            "frame_seq": seq,
        }
        fields: dict[str, str] | None = None
        if kind == "emv_mpm":
            try:
                fields = parse_mpm(payload).fields
            except PayloadError as e:
                crc_skipped = e.code == "E_QR_CRC" and seeded.QR_CRC_NOT_CHECKED in self.defects
                if not crc_skipped:  # seeded defect: the CRC (tag 63) is never compared
                    self._emit("scanner.rejected", {"code": e.code, "message": str(e), **timing})
                    self._log("warn", e.code, f"scanner: {e}")
                    raise CommandFailed(e.code, str(e)) from None
        data: dict[str, Any] = {
            "payload": payload,
            "kind": kind,
            "wallet": classify_wallet(payload),
            "fields": fields,
            **timing,
        }
        self._emit("scanner.decoded", data)
        return data
