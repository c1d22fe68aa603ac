"""QR screen drivers sim and file, and the camera channel (pos-hil camera/1) on loopback."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from hil.config import parse_rig
from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.errors import RigError
from hil.instruments.qrscreen import FileQrScreen, QrScreen, SimQrScreen
from hil.qr.degrade import Degradation
from hil.qr.framelink import FrameClient, FrameLinkError, FrameServer, parse_endpoint
from hil.qr.render import RenderOptions
from hil.rig import Rig
from tests.conftest import write_sim_rig


def zxing_text(image: np.ndarray) -> str | None:
    found = zxingcpp.read_barcodes(image)
    return found[0].text if found else None


def test_sim_screen_serves_what_it_shows() -> None:
    screen = SimQrScreen(RenderOptions())
    try:
        assert isinstance(screen, QrScreen)
        client = FrameClient(screen.endpoint)
        seq, image = client.grab()
        assert zxing_text(image) == CALIBRATION_PAYLOAD  # blank = calibration target
        assert screen.shown.calibration
        shown = screen.show("HELLO QR", Degradation(rotation_deg=30))
        seq2, image2 = client.grab()
        assert seq2 == shown.seq > seq
        assert np.array_equal(image2, shown.image)
        assert zxing_text(image2) == "HELLO QR"
        assert "640x480" in screen.preflight()
        screen.put_back()
        assert zxing_text(client.grab()[1]) == CALIBRATION_PAYLOAD
        client.close()
    finally:
        screen.close()
    with pytest.raises(FrameLinkError):
        FrameClient(screen.endpoint, timeout=0.5).grab()


def test_calibration_frame_is_rendered_once_and_shared_read_only() -> None:
    screen = SimQrScreen(RenderOptions())
    try:
        first = screen.shown  # the rest image put up at start
        screen.show("HELLO QR")
        screen.put_back()
        again = screen.shown
        assert again.calibration and again.seq > first.seq
        assert again.image is first.image  # cached, not rendered again
        assert not again.image.flags.writeable
        client = FrameClient(screen.endpoint)
        assert zxing_text(client.grab()[1]) == CALIBRATION_PAYLOAD
        client.close()
    finally:
        screen.close()


def test_sim_screen_refuses_what_does_not_fit() -> None:
    screen = SimQrScreen(RenderOptions())
    try:
        with pytest.raises(RigError, match="cannot render"):
            screen.show("x" * 2000)
    finally:
        screen.close()


def test_file_screen_writes_pngs_and_an_index(tmp_path: Path) -> None:
    screen = FileQrScreen(RenderOptions(module_px=4), tmp_path / "frames")
    frame = screen.show("6212345678901234567", Degradation(blur_sigma=1.0))
    pngs = sorted((tmp_path / "frames").glob("frame-*.png"))
    assert [p.name for p in pngs] == ["frame-00001.png", "frame-00002.png"]
    image = cv2.imread(str(pngs[1]), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(image, frame.image)
    assert zxing_text(image) == "6212345678901234567"
    lines = (tmp_path / "frames" / "frames.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    assert record["degradation"] == "blur_sigma=1" and record["module_px"] == 4
    assert json.loads(lines[0])["calibration_target"] is True
    assert "writing frames" in screen.preflight()


def test_drivers_wire_camera_for_sim_only(tmp_path: Path) -> None:
    rig_file = write_sim_rig(tmp_path / "rig.toml")
    base = rig_file.read_text()
    rig = Rig(parse_rig(base + '\n[qr_screen]\ndriver = "file"\ndirectory = "out"\n', rig_file))
    try:
        rig.build(["qr_screen"])
        assert isinstance(rig.instrument("qr_screen"), FileQrScreen)
        assert rig.wired == {}
        assert (tmp_path / "out" / "frame-00001.png").is_file()  # relative to the rig file
    finally:
        rig.close()
    rig = Rig(parse_rig(base + '\n[qr_screen]\ndriver = "sim"\n', rig_file))
    try:
        rig.build(["qr_screen"])
        endpoint = rig.wired["camera"]
        assert endpoint.startswith("127.0.0.1:")
        assert zxing_text(FrameClient(endpoint).grab()[1]) == CALIBRATION_PAYLOAD
    finally:
        rig.close()


def test_frame_server_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FrameServer(lambda: (0, np.zeros((2, 2), np.uint8)), host="0.0.0.0")


@pytest.mark.parametrize("text", ["nohost", ":80", "host:0", "host:99999", "host:x"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(FrameLinkError, match="ADDRESS:PORT"):
        parse_endpoint(text)


def test_client_reports_garbage_and_silence() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def garbage() -> None:
        conn, _ = listener.accept()
        conn.recv(1)
        conn.sendall(b"NOPE" + bytes(12))
        conn.close()
        conn, _ = listener.accept()  # the retry
        conn.recv(1)
        conn.sendall(b"NOPE" + bytes(12))
        conn.close()

    thread = threading.Thread(target=garbage, daemon=True)
    thread.start()
    with pytest.raises(FrameLinkError, match="bad frame magic"):
        FrameClient(f"127.0.0.1:{port}").grab()
    thread.join(2)
    listener.close()
    with pytest.raises(FrameLinkError, match=r"camera 127\.0\.0\.1"):
        FrameClient(f"127.0.0.1:{port}", timeout=0.5).grab()


def test_unknown_request_byte_closes_the_connection() -> None:
    server = FrameServer(lambda: (1, np.zeros((4, 4), np.uint8)))
    try:
        host, port = parse_endpoint(server.endpoint)
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"X")
            assert sock.recv(16) == b""
    finally:
        server.close()
