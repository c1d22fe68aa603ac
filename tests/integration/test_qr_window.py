"""The window driver on a real X server (Xvfb), read back from the server's own pixels.

The test starts its own Xvfb; it skips, saying why, only when Xvfb cannot start
(not installed: scripts/setup.sh installs the Debian package ``xvfb``).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp

from hil.config import parse_rig
from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.errors import RigError
from hil.instruments.qrscreen import QrScreen, WindowQrScreen, capture_display
from hil.qr.degrade import Degradation
from hil.qr.fixtures import merchant_payload
from hil.qr.render import RenderOptions
from hil.rig import Rig
from tests.conftest import write_sim_rig

pytestmark = pytest.mark.integration

SCREEN = (1024, 768)


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb not installed (Debian package xvfb, see scripts/setup.sh)")
    read_end, write_end = os.pipe()
    # -displayfd: Xvfb picks a free display and writes its number when it is ready,
    # so there is nothing to poll and no display number to guess.
    process = subprocess.Popen(
        [
            binary,
            "-displayfd",
            str(write_end),
            "-screen",
            "0",
            f"{SCREEN[0]}x{SCREEN[1]}x24",
            "-nolisten",
            "tcp",
        ],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 15)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        if not number:
            process.kill()
            err = process.stderr.read().decode(errors="replace")[-300:] if process.stderr else ""
            pytest.skip(f"Xvfb did not start: {err or 'no display number within 15 s'}")
        yield f":{number}"
    finally:
        os.close(read_end)
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_window_shows_the_code_full_screen(xvfb: str) -> None:
    screen = WindowQrScreen(RenderOptions(module_px=8), xvfb)
    try:
        assert isinstance(screen, QrScreen)
        assert (screen.options.frame_width, screen.options.frame_height) == SCREEN
        assert xvfb in screen.preflight()
        # blank: the calibration target, as the X server holds it
        seen = capture_display(xvfb)
        assert seen.shape == (SCREEN[1], SCREEN[0])
        assert zxingcpp.read_barcodes(seen)[0].text == CALIBRATION_PAYLOAD

        payload = merchant_payload("dynamic_cny")
        shown = screen.show(payload, Degradation(rotation_deg=20, contrast=0.5))
        seen = capture_display(xvfb)
        assert (seen == shown.image).all()  # pixel for pixel what was rendered
        assert zxingcpp.read_barcodes(seen)[0].text == payload

        screen.put_back()
        assert zxingcpp.read_barcodes(capture_display(xvfb))[0].text == CALIBRATION_PAYLOAD
    finally:
        screen.close()


def test_window_driver_from_the_rig_file(xvfb: str, tmp_path: Path) -> None:
    rig_file = write_sim_rig(tmp_path / "rig.toml")
    text = rig_file.read_text() + f'\n[qr_screen]\ndriver = "window"\ndisplay = "{xvfb}"\n'
    rig = Rig(parse_rig(text, rig_file))
    try:
        rig.build(["qr_screen"])
        assert rig.wired == {}  # a real scanner looks at the monitor
        assert isinstance(rig.instrument("qr_screen"), WindowQrScreen)
    finally:
        rig.close()


def test_window_on_a_missing_display_is_a_rig_error() -> None:
    with pytest.raises(RigError, match="cannot open X display"):
        WindowQrScreen(RenderOptions(), ":987")
