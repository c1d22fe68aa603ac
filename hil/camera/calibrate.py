"""``hil camera calibrate``: from one frame to the ``[camera.calibration]`` of a rig file.

The frame is a saved image (``--frame``) or one the rig's camera captures with the
terminal booted to idle (its screen lit). The screen's corners are given by hand
(``--corners "x,y x,y x,y x,y"``, any order) or found automatically (the largest bright
quadrilateral). LED spots come from ``--led reader=x,y[,radius]`` or are kept from the
rig file. The result is printed as TOML and, with ``--write``, replaces the rig file's
``[camera.calibration]`` tables (everything else in the file is kept as it was).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from hil.camera.calibration import Point, detect_screen, order_corners, upright_size


def parse_corners(text: str) -> list[Point]:
    """``"x,y x,y x,y x,y"`` as four ordered corners; ValueError says what is wrong."""
    points: list[Point] = []
    for pair in text.replace(";", " ").split():
        x, sep, y = pair.partition(",")
        if not sep:
            raise ValueError(f"--corners: {pair!r} is not x,y")
        points.append((float(x), float(y)))
    return order_corners(points)


def parse_led(text: str) -> tuple[str, list[float], float]:
    """``reader=x,y[,radius]``."""
    name, sep, spec = text.partition("=")
    parts = spec.split(",")
    if not sep or not name.isidentifier() or len(parts) not in (2, 3):
        raise ValueError(f"--led: {text!r} is not name=x,y[,radius]")
    values = [float(p) for p in parts]
    return name, values[:2], values[2] if len(values) == 3 else 8.0


def calibration_toml(
    corners: Sequence[Point],
    size: tuple[int, int],
    leds: Mapping[str, tuple[Sequence[float], float]],
) -> str:
    lines = [
        "[camera.calibration]",
        "screen = [" + ", ".join(f"[{x:.1f}, {y:.1f}]" for x, y in corners) + "]",
        f"size = [{size[0]}, {size[1]}]",
    ]
    for name, (at, radius) in sorted(leds.items()):
        lines += [
            "",
            f"[camera.calibration.leds.{name}]",
            f"at = [{at[0]:.1f}, {at[1]:.1f}]",
            f"radius = {radius:.1f}",
        ]
    return "\n".join(lines) + "\n"


_CALIBRATION_HEADER = re.compile(r"^\s*\[camera\.calibration(\.[^\]]*)?\]\s*$")
_ANY_HEADER = re.compile(r"^\s*\[")


def replace_calibration(rig_text: str, block: str) -> str:
    """``rig_text`` without its ``[camera.calibration...]`` tables, ``block`` appended."""
    kept: list[str] = []
    skipping = False
    for line in rig_text.splitlines():
        if _CALIBRATION_HEADER.match(line):
            skipping = True
            continue
        if skipping and _ANY_HEADER.match(line):
            skipping = False
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    text = "\n".join(kept) + "\n\n" + block
    tomllib.loads(text)  # never write a rig file that no longer parses
    return text


def calibrate_frame(
    frame_corners: Sequence[Point] | None, frame: object
) -> tuple[list[Point], tuple[int, int]]:
    """The corners (given, or detected in ``frame``) and the upright size they give."""
    import numpy as np

    corners = list(frame_corners) if frame_corners else detect_screen(np.asarray(frame))
    return corners, upright_size(corners)


def write_calibration(rig_path: Path, block: str) -> None:
    rig_path.write_text(replace_calibration(rig_path.read_text(encoding="utf-8"), block))
