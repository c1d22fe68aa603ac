"""The simulated terminal's scanner and its qr_scanner self-check, over a real frame server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.instruments.qrscreen import SimQrScreen
from hil.protocol.endpoint import CommandFailed
from hil.qr.degrade import Degradation
from hil.qr.fixtures import merchant_payload
from hil.qr.framelink import FrameClient
from hil.qr.payloads import wallet_auth_code, with_crc
from hil.qr.render import RenderOptions
from hil.sim import scanner, selfcheck
from hil.sim.channels import parse_channels
from hil.sim.hardware import Hardware
from hil.sim.scanner import CalibrationReading, DecodeMemo, Scanner, read_calibration_target


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.logs: list[tuple[str, str, str]] = []

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))

    def log(self, level: str, code: str, message: str) -> None:
        self.logs.append((level, code, message))


@pytest.fixture
def screen() -> Iterator[SimQrScreen]:
    s = SimQrScreen(RenderOptions())
    yield s
    s.close()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def make_scanner(camera: str | None, rec: Recorder, sleep: Any = time.sleep) -> Scanner:
    return Scanner(camera, emit=rec.emit, sleep=sleep, log=rec.log)


def failure(scanner: Scanner, **args: Any) -> CommandFailed:
    with pytest.raises(CommandFailed) as e:
        scanner.scan_command(args)
    return e.value


def test_scan_decodes_and_validates_a_merchant_code(screen: SimQrScreen, rec: Recorder) -> None:
    payload = merchant_payload("dynamic_cny")
    frame = screen.show(payload)
    scanner = make_scanner(screen.endpoint, rec)
    result = scanner.scan_command({"timeout_ms": 2000})
    assert result["payload"] == payload
    assert result["kind"] == "emv_mpm" and result["wallet"] is None
    assert result["fields"]["54"] == "23.72"
    assert result["frames"] == 1 and result["frame_seq"] == frame.seq
    assert 0 < result["decode_ms"] <= result["scan_ms"] + 0.1
    assert rec.events == [("scanner.decoded", result)]
    scanner.close()


@pytest.mark.parametrize("wallet", ["wechat", "alipay", "unionpay"])
def test_scan_classifies_wallet_codes(screen: SimQrScreen, rec: Recorder, wallet: str) -> None:
    code = wallet_auth_code(wallet, seed=2)
    screen.show(code)
    result = make_scanner(screen.endpoint, rec).scan_command({})
    assert (result["payload"], result["kind"], result["wallet"]) == (code, "wallet", wallet)


def test_scan_rejects_a_wrong_crc(screen: SimQrScreen, rec: Recorder) -> None:
    screen.show(with_crc(merchant_payload("static_shop"), "0000"))
    e = failure(make_scanner(screen.endpoint, rec))
    assert e.code == "E_QR_CRC" and "payload says 0000" in e.message
    assert rec.events[0][0] == "scanner.rejected" and rec.events[0][1]["code"] == "E_QR_CRC"
    assert rec.logs[0][:2] == ("warn", "E_QR_CRC")


def test_scan_rejects_malformed_merchant_tlv(screen: SimQrScreen, rec: Recorder) -> None:
    screen.show("0002010102")
    e = failure(make_scanner(screen.endpoint, rec))
    assert e.code == "E_QR_FORMAT"


def test_scan_never_reports_the_calibration_target(screen: SimQrScreen, rec: Recorder) -> None:
    assert screen.shown.payload == CALIBRATION_PAYLOAD
    e = failure(make_scanner(screen.endpoint, rec), max_frames=2)
    assert e.code == "E_QR_NO_CODE" and "2 frames" in e.message
    assert rec.events[-1][0] == "scanner.no_code"


def test_scan_times_out_cleanly_at_camera_rate(screen: SimQrScreen, rec: Recorder) -> None:
    screen.show("X", Degradation(blur_sigma=8))
    started = time.monotonic()
    e = failure(make_scanner(screen.endpoint, rec), timeout_ms=200)
    elapsed = time.monotonic() - started
    assert e.code == "E_QR_NO_CODE"
    assert 0.2 <= elapsed < 1.5
    frames = rec.events[-1][1]["frames"]
    assert 2 <= frames <= 8  # 30 frames a second, not a busy loop


def test_scan_argument_and_camera_errors(screen: SimQrScreen, rec: Recorder) -> None:
    assert failure(make_scanner(None, rec)).code == "E_CAMERA_ABSENT"
    scanner = make_scanner(screen.endpoint, rec)
    for args in ({"timeout": 1}, {"timeout_ms": 0}, {"timeout_ms": True}, {"max_frames": 0}):
        assert failure(scanner, **args).code == "E_BAD_ARGS"
    assert failure(make_scanner("shm:frames", rec)).code == "E_CAMERA_ABSENT"
    screen.close()
    e = failure(scanner, timeout_ms=100)
    assert e.code == "E_CAMERA_ABSENT" and "camera not answering" in e.message


def test_second_scan_while_one_runs_is_busy(screen: SimQrScreen, rec: Recorder) -> None:
    release = threading.Event()
    waiting = threading.Event()

    def sleep(seconds: float) -> None:
        waiting.set()
        release.wait(5)

    scanner = make_scanner(screen.endpoint, rec, sleep=sleep)
    outcome: list[str] = []

    def first() -> None:
        try:
            scanner.scan_command({"timeout_ms": 50})
        except CommandFailed as e:
            outcome.append(e.code)

    thread = threading.Thread(target=first)
    thread.start()
    assert waiting.wait(5)
    assert failure(scanner).code == "E_BUSY"
    release.set()
    thread.join(5)
    assert outcome == ["E_QR_NO_CODE"]


def test_calibration_reading_through_the_real_camera(screen: SimQrScreen) -> None:
    reading = read_calibration_target(screen.endpoint)
    assert reading.decoded == CALIBRATION_PAYLOAD and reading.error is None
    assert reading.frames == 1 and reading.luminance_pct > 80
    screen.show(CALIBRATION_PAYLOAD, Degradation(occlusion_pct=30))
    reading = read_calibration_target(screen.endpoint)
    assert reading.decoded is None and reading.frames >= 1


def test_calibration_memo_reads_the_same_pixels_without_decoding(
    screen: SimQrScreen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memo = DecodeMemo(tmp_path / "memo")
    first = read_calibration_target(screen.endpoint, memo)
    assert first.decoded == CALIBRATION_PAYLOAD and len(list(memo.folder.iterdir())) == 1
    # The same frame again: read from the memo, with the decode time measured the first
    # time; a decoder call would now fail the test.
    monkeypatch.setattr(scanner, "decode_frame", _no_decoding)
    again = read_calibration_target(screen.endpoint, memo)
    assert (again.decoded, again.decode_ms) == (first.decoded, first.decode_ms)
    assert again.luminance_pct == first.luminance_pct
    # One pixel changed (a dirty window, a dark screen, another code) is another frame.
    screen.show(CALIBRATION_PAYLOAD, Degradation(occlusion_pct=30))
    with pytest.raises(AssertionError, match="decoded"):
        read_calibration_target(screen.endpoint, memo)


def test_calibration_memo_entry_unreadable_is_a_miss(screen: SimQrScreen, tmp_path: Path) -> None:
    memo = DecodeMemo(tmp_path)
    read_calibration_target(screen.endpoint, memo)
    (entry,) = tmp_path.iterdir()
    entry.write_text('{"text": ')  # torn or tampered with: decoded again, and rewritten
    assert read_calibration_target(screen.endpoint, memo).decoded == CALIBRATION_PAYLOAD
    assert json.loads(entry.read_text())["text"] == CALIBRATION_PAYLOAD


def test_luminance_without_numpy_is_numpys_mean(screen: SimQrScreen) -> None:
    client = FrameClient(screen.endpoint)
    try:
        for degradation in (Degradation(), Degradation(luminance=0.2)):
            screen.show(CALIBRATION_PAYLOAD, degradation)
            frame = client.grab_raw()
            image = np.frombuffer(frame.pixels, dtype=np.uint8)
            assert scanner._mean_luminance_pct(frame) == float(np.mean(image)) / 255.0 * 100.0
    finally:
        client.close()


def test_a_remembered_calibration_loads_neither_numpy_nor_opencv(
    screen: SimQrScreen, tmp_path: Path
) -> None:
    read_calibration_target(screen.endpoint, DecodeMemo(tmp_path))
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from hil.sim.scanner import DecodeMemo, read_calibration_target\n"
        f"reading = read_calibration_target({screen.endpoint!r}, DecodeMemo(Path(sys.argv[1])))\n"
        "print('numpy' in sys.modules, 'cv2' in sys.modules, reading.decoded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"False False {CALIBRATION_PAYLOAD}"


def _no_decoding(detector: Any, image: Any) -> Any:
    raise AssertionError("decoded: the frame was not taken from the memo")


class CameraHardware(Hardware):
    def __init__(self, reading: CalibrationReading) -> None:
        super().__init__()
        self.reading = reading
        self.asked: list[str] = []

    def read_calibration_target(self, camera: str) -> CalibrationReading:
        self.asked.append(camera)
        return self.reading


def run_item(reading: CalibrationReading, channels: str = "camera=127.0.0.1:9") -> Any:
    hw = CameraHardware(reading)
    ctx = selfcheck.CheckContext(
        channels=parse_channels(channels),
        config={},
        firmware=None,  # type: ignore[arg-type]
        layout=None,  # type: ignore[arg-type]
        log_store=None,  # type: ignore[arg-type]
        hardware=hw,
    )
    return selfcheck.run_item("qr_scanner", ctx, delay_s=0, sleep=lambda s: None), hw


@pytest.mark.parametrize(
    ("reading", "status", "code", "words"),
    [
        (
            CalibrationReading("c", CALIBRATION_PAYLOAD, 18.4, 1, 90.0),
            "pass",
            "OK",
            "calibration target read in 18.4 ms",
        ),
        (
            CalibrationReading("c", "6212345678901234560", 18.0, 1, 90.0),
            "pass",
            "OK",
            "a code (not the calibration target)",
        ),
        (CalibrationReading("c", None, 20.0, 3, 4.9), "warn", "E_CAMERA_LOW_LIGHT", "4.9%"),
        (
            CalibrationReading("c", None, 20.0, 3, 80.0),
            "warn",
            "E_CAMERA_WINDOW_DIRTY",
            "scan window dirty",
        ),
        (
            CalibrationReading("c", None, 0.0, 0, 0.0, "camera c: Connection refused"),
            "fail",
            "E_CAMERA_ABSENT",
            "Connection refused",
        ),
    ],
)
def test_qr_scanner_item_codes(
    reading: CalibrationReading, status: str, code: str, words: str
) -> None:
    result, hw = run_item(reading)
    assert (result.status, result.code) == (status, code)
    assert words in result.message
    assert hw.asked == ["127.0.0.1:9"]
    assert result.details["luminance_pct"] == round(reading.luminance_pct, 1)


def test_qr_scanner_item_without_camera_does_not_look() -> None:
    result, hw = run_item(CalibrationReading("c", CALIBRATION_PAYLOAD, 1, 1, 90), channels="")
    assert (result.status, result.code) == ("fail", "E_CAMERA_ABSENT")
    assert hw.asked == []


def test_every_qr_code_has_a_screen_text() -> None:
    spec = selfcheck.spec("qr_scanner")
    codes = {o.code for o in spec.outcomes}
    assert codes == {"OK", "E_CAMERA_ABSENT", "E_CAMERA_LOW_LIGHT", "E_CAMERA_WINDOW_DIRTY"}
    from hil.contract.selfcheck import codes_of

    documented = codes_of("qr_scanner")
    assert {c.code for c in documented} == codes - {"OK"}
    for code in documented:
        assert spec.outcome(code.code).screen == code.screen_text
