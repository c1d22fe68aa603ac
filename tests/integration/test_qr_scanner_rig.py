"""The real sim rig (pty, terminal process, loopback camera channel) scanning QR codes.

What the camera channel serves is checked with zxing-cpp, a decoder independent of
the terminal's OpenCV, so "the terminal read what the screen showed" is judged by a
third party.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp

from hil.instruments.qrscreen import QrScreen, SimQrScreen
from hil.qr.degrade import Degradation
from hil.qr.fixtures import merchant_payload
from hil.qr.framelink import FrameClient
from hil.rig import Rig
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration


@pytest.fixture
def qr_rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig.from_file(
        write_sim_rig(tmp_path / "rig.toml", extra='\n[qr_screen]\ndriver = "sim"\n'),
        work_dir=tmp_path / "work",
    )
    try:
        rig.start().ensure_idle()
        yield rig
    finally:
        rig.close()


def test_terminal_reads_what_the_screen_shows(qr_rig: Rig) -> None:
    terminal = qr_rig.terminal
    assert terminal is not None
    screen = qr_rig.instrument("qr_screen")
    assert isinstance(screen, SimQrScreen) and isinstance(screen, QrScreen)
    assert qr_rig.wired == {"camera": screen.endpoint}
    payload = merchant_payload("dynamic_cny")
    shown = screen.show(payload, Degradation(tilt_deg=30, noise_sigma=10))

    # independent check: the frame on the camera channel reads as the payload
    seq, frame = FrameClient(screen.endpoint).grab()
    assert seq == shown.seq
    assert zxingcpp.read_barcodes(frame)[0].text == payload

    assert qr_rig.console is not None
    cursor = qr_rig.console.events.mark()
    result = terminal.scan(3000).decoded
    assert result is not None
    assert result.payload == payload and result.frame_seq == shown.seq
    # the sim also reports the read as an event (checked on the wire: the domain API
    # has no scanner events)
    event = qr_rig.console.events.wait_for("scanner.decoded", since=cursor, timeout=2)
    assert event.data["payload"] == payload


def test_self_check_passes_then_warns_then_fails_with_the_camera(
    qr_rig: Rig, tmp_path: Path
) -> None:
    terminal = qr_rig.terminal
    assert terminal is not None
    item = terminal.run_item("qr_scanner")
    assert (item.status, item.code) == ("pass", "OK")

    screen = qr_rig.instrument("qr_screen")
    assert isinstance(screen, SimQrScreen)
    screen.show("HIL-CAL/1 POS-HIL SCANNER CALIBRATION TARGET", Degradation(occlusion_pct=30))
    item = terminal.run_item("qr_scanner")
    assert (item.status, item.code) == ("warn", "E_CAMERA_WINDOW_DIRTY")
    assert "E_CAMERA_WINDOW_DIRTY 请清洁扫码窗 Clean the scan window" in terminal.display().lines

    qr_rig.put_back()  # screen blank again: the target reads
    item = terminal.run_item("qr_scanner")
    assert (item.status, item.code) == ("pass", "OK")
    # The sim remembers what it decoded by the pixels: the clean target (boot, and now)
    # and the dirty one are two frames, each decoded once (hil.sim.scanner.DecodeMemo).
    assert len(list((tmp_path / "work" / "decode-memo").iterdir())) == 2

    screen.close()  # the camera cable pulled
    item = terminal.run_item("qr_scanner")
    assert (item.status, item.code) == ("fail", "E_CAMERA_ABSENT")
    scan = terminal.scan(200)
    assert (scan.code, scan.decoded) == ("E_CAMERA_ABSENT", None)
    log_codes = [entry.code for entry in terminal.log(limit=1000)]
    assert "E_CAMERA_WINDOW_DIRTY" in log_codes and "E_CAMERA_ABSENT" in log_codes


def test_terminal_without_camera_says_so(tmp_path: Path) -> None:
    rig = Rig.from_file(write_sim_rig(tmp_path / "rig.toml"), work_dir=tmp_path / "work")
    try:
        terminal = rig.start()
        terminal.ensure_idle()
        scan = terminal.scan(5000)
        assert (scan.code, scan.decoded) == ("E_CAMERA_ABSENT", None)
        assert scan.message
        item = terminal.run_item("qr_scanner")
        assert (item.status, item.code) == ("fail", "E_CAMERA_ABSENT")
    finally:
        rig.close()
