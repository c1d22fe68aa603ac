"""The camera path without OCR: the sim's render, photographing it, finding the screen,
reading LEDs, frame sources, the calibration file edit, and the text folding rules.

Everything runs on real pixels drawn by the sim's renderer (``hil.sim.render``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from hil.camera.calibrate import calibration_toml, parse_corners, replace_calibration
from hil.camera.calibration import NoScreenFound, detect_screen, order_corners
from hil.camera.frames import NoFrame, frame_source
from hil.camera.leds import LED_COLOURS, led_colour
from hil.camera.photograph import CLEAN, PhotoConditions, map_points, photograph
from hil.camera.text import fold, line_match_rate, same_line
from hil.contract.screens import documented_screens, identify_screen, reader_led_for
from hil.errors import RigError
from hil.instruments.camera import CalibrationOptions, Camera
from hil.sim.display import READER_LED
from hil.sim.render import LCD_BOX, READER_LED_CENTRE, render_face


def face(lines: list[str], led: str = "off") -> np.ndarray:
    return cv2.cvtColor(np.array(render_face(lines, {"reader": led})), cv2.COLOR_RGB2BGR)


LCD_CORNERS = np.array(
    [
        [LCD_BOX[0], LCD_BOX[1]],
        [LCD_BOX[2], LCD_BOX[1]],
        [LCD_BOX[2], LCD_BOX[3]],
        [LCD_BOX[0], LCD_BOX[3]],
    ],
    np.float32,
)


def test_folding_forgives_only_what_a_camera_cannot_see() -> None:
    assert same_line("E COMM NO HOST 未配置 主机", "E_COMM_NO_HOST 未配置主机")
    assert same_line("故障 FauIts：", "故障 Faults:")  # I for l, full-width colon
    assert same_line("WarningS", "Warnings")
    assert not same_line("E_COMM_NO_HOST", "E_COMM_NO_H0ST")  # a zero is not an O
    assert not same_line("未配置主机", "未配置主")
    assert not same_line("E_TID_INVALID", "E_TID_INVALlD2")
    assert line_match_rate(["a b", "x"], ["ab", "c"]) == (1, 2)


def test_no_two_documented_lines_fold_alike() -> None:
    """Folding must not make two different documented lines equal (or the camera
    could take one for the other)."""
    lines = {line for _, screen in documented_screens() for line in screen}
    folded: dict[str, str] = {}
    for line in sorted(lines):
        assert fold(line) not in folded, f"{line!r} folds like {folded[fold(line)]!r}"
        folded[fold(line)] = line


def test_every_documented_screen_is_identified_by_its_text() -> None:
    for screen, lines in documented_screens():
        assert identify_screen(lines) == screen, lines
    assert identify_screen([]) == "unknown"
    assert identify_screen(["whatever"]) == "unknown"


def test_the_sims_reader_led_follows_the_documented_table() -> None:
    """The sim's own table and the rig's statement of the contract agree."""
    for screen, _ in documented_screens():
        assert READER_LED.get(screen, "off") == reader_led_for(screen)


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_the_screen_is_found_in_a_photographed_face(seed: int) -> None:
    image = face(["请刷卡/插卡/挥卡", "Present card", "T0000001"])
    frame, homography = photograph(image, PhotoConditions(seed=seed))
    truth = map_points(homography, LCD_CORNERS)
    found = np.array(detect_screen(frame))
    assert np.abs(found - truth).max() < 4.0, (found, truth)


def test_no_screen_in_a_dark_frame() -> None:
    with pytest.raises(NoScreenFound, match="give the four corners"):
        detect_screen(np.full((480, 640, 3), 20, np.uint8))


def test_corners_are_ordered_whatever_order_they_are_given_in() -> None:
    assert parse_corners("100,90 10,10 110,5 5,100") == [
        (10.0, 10.0),
        (110.0, 5.0),
        (100.0, 90.0),
        (5.0, 100.0),
    ]
    with pytest.raises(ValueError, match="4 corners"):
        order_corners([(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="x,y"):
        parse_corners("1 2 3 4")


@pytest.mark.parametrize("colour", LED_COLOURS)
@pytest.mark.parametrize("photographed", [False, True])
def test_the_reader_led_colour_is_read_at_its_spot(colour: str, photographed: bool) -> None:
    image = face(["读卡中", "Reading card..."], led=colour)
    conditions = PhotoConditions(seed=5) if photographed else CLEAN
    if photographed:
        frame, homography = photograph(image, conditions)
        spot = map_points(homography, np.array([READER_LED_CENTRE], np.float32))[0]
    else:
        frame, spot = image, np.array(READER_LED_CENTRE, np.float32)
    assert led_colour(frame, (float(spot[0]), float(spot[1])), 8) == colour


def test_an_led_spot_outside_the_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        led_colour(np.zeros((10, 10, 3), np.uint8), (50, 50), 3)


def test_frame_sources(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    with pytest.raises(NoFrame, match="no image"):
        frame_source("frames", folder=tmp_path).grab()
    for n, value in enumerate((10, 20)):
        cv2.imwrite(str(folder / f"{n:02d}.png"), np.full((8, 8, 3), value, np.uint8))
    source = frame_source("frames", folder=tmp_path)
    assert [int(source.grab()[0, 0, 0]) for _ in range(3)] == [10, 20, 20]
    single = frame_source(str(folder / "01.png"), folder=tmp_path)
    assert int(single.grab()[0, 0, 0]) == 20
    with pytest.raises(NoFrame, match="missing"):
        frame_source("gone.png", folder=tmp_path).grab()
    video = frame_source("no-such-video.mp4", folder=tmp_path)
    with pytest.raises(NoFrame, match="cannot open"):
        video.grab()
    video.close()


def test_an_uncalibrated_camera_and_a_camera_without_frames_are_rig_faults(
    tmp_path: Path,
) -> None:
    cv2.imwrite(str(tmp_path / "f.png"), face(["POS-SIM", "Starting..."]))
    uncalibrated = Camera(frame_source("f.png", folder=tmp_path), ocr="rapidocr", calibration=None)
    with pytest.raises(RigError, match=r"camera: not calibrated: run `hil camera calibrate"):
        uncalibrated.read()
    blind = Camera(
        frame_source("none.png", folder=tmp_path),
        ocr="rapidocr",
        calibration=CalibrationOptions(screen=[[0, 0], [9, 0], [9, 9], [0, 9]], size=[16, 16]),
    )
    with pytest.raises(RigError, match=r"camera: no frame: .*check the camera is connected"):
        blind.preflight()


def test_the_calibration_replaces_only_its_own_tables() -> None:
    rig = (
        '[rig]\nname = "x"\n\n[camera]\ndriver = "sim"\n\n[camera.calibration]\n'
        "screen = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\nsize = [16, 16]\n\n"
        "[camera.calibration.leds.reader]\nat = [1.0, 1.0]\n\n[limits]\nboot_selfcheck_s = 1.0\n"
    )
    block = calibration_toml(
        [(1, 2), (30, 2), (30, 40), (1, 40)], (29, 38), {"reader": ([5, 6], 4.0)}
    )
    written = tomllib.loads(replace_calibration(rig, block))
    assert written["limits"] == {"boot_selfcheck_s": 1.0}
    assert written["camera"]["driver"] == "sim"
    assert written["camera"]["calibration"] == {
        "screen": [[1.0, 2.0], [30.0, 2.0], [30.0, 40.0], [1.0, 40.0]],
        "size": [29, 38],
        "leds": {"reader": {"at": [5.0, 6.0], "radius": 4.0}},
    }


def test_an_ocr_engine_that_is_not_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hil.camera import ocr

    monkeypatch.setattr(ocr.RapidOcr, "_shared", None)
    monkeypatch.setitem(__import__("sys").modules, "rapidocr_onnxruntime", None)
    with pytest.raises(ocr.OcrUnavailable, match=r"pip install 'pos-hil\[camera\]'"):
        ocr.RapidOcr()
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ocr.OcrUnavailable, match="apt-get install tesseract-ocr"):
        ocr.Tesseract()
