"""OCR engines compared on the sim's screens: exact-line match rate and time per screen.

Every documented screen (``hil.contract.screens.documented_screens``) is drawn by the
sim's renderer (``hil.sim.render``), then read by each engine twice: clean (the LCD cut
straight out of the render) and photographed (``hil.camera.photograph``: perspective,
blur, glare, moiré, noise; then cut out with the known corners and deskewed, as a
calibrated camera does). A line counts when the text read equals the documented text
after folding (NFKC, no whitespace: ``hil.camera.text``). docs/decisions.md ("Camera
OCR") records a run of this script.

Run: ``.venv/bin/python bench/bench_ocr.py [--engines rapidocr,tesseract] [--limit N]``.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from hil.camera.calibration import deskew
from hil.camera.ocr import OCR_ENGINES, ocr_engine
from hil.camera.photograph import CLEAN, PHOTOGRAPHED, PhotoConditions, map_points, photograph
from hil.camera.text import fold, line_match_rate
from hil.contract.screens import documented_screens
from hil.sim.render import LCD_BOX, render_face


def screen_image(lines: list[str], conditions: PhotoConditions, seed: int) -> np.ndarray:
    face = cv2.cvtColor(np.array(render_face(lines, {"reader": "off"})), cv2.COLOR_RGB2BGR)
    left, top, right, bottom = LCD_BOX
    lcd = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)
    if conditions == CLEAN:
        return face[top:bottom, left:right].copy()
    frame, homography = photograph(face, PhotoConditions(**{**conditions.__dict__, "seed": seed}))
    corners = [(float(x), float(y)) for x, y in map_points(homography, lcd)]
    return deskew(frame, corners, (right - left, bottom - top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default=",".join(OCR_ENGINES))
    parser.add_argument("--limit", type=int, default=0, help="only the first N screens")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    screens = documented_screens()
    if args.limit:
        screens = screens[: args.limit]
    for name in args.engines.split(","):
        engine = ocr_engine(name)  # type: ignore[arg-type]
        engine.read_lines(np.full((64, 64, 3), 255, np.uint8))  # load the models first
        for label, conditions in (("clean", CLEAN), ("photographed", PHOTOGRAPHED)):
            matched = total = 0
            elapsed = 0.0
            misses: list[tuple[str, str]] = []
            for seed, (_screen, lines) in enumerate(screens):
                image = screen_image(lines, conditions, seed)
                started = time.perf_counter()
                read = engine.read_lines(image)
                elapsed += time.perf_counter() - started
                got, of = line_match_rate(read, lines)
                matched += got
                total += of
                folded = [fold(r) for r in read]
                misses += [(line, " | ".join(read)) for line in lines if fold(line) not in folded]
            print(
                f"{name:10s} {label:13s} lines {matched}/{total} = {matched / total:.1%}  "
                f"{elapsed / len(screens) * 1000:.0f} ms/screen"
            )
            if args.show_misses:
                for line, read_text in misses[:40]:
                    print(f"    missed {line!r}\n      read {read_text!r}")


if __name__ == "__main__":
    main()
