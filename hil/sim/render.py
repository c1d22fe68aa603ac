"""The simulated terminal's face as a picture: its screen and its reader LED.

A real terminal's display is seen by a camera; the sim's is drawn here, so the rig's
camera path (capture, calibration, OCR, LED spots) is exercised on real pixels. The
layout is fixed and documented (docs/test-port-protocol.md, "Channel display"): a dark
bezel, the reader LED above the screen, and the LCD below it with dark text on a pale
background. Text is drawn with a CJK font (Debian ``fonts-wqy-microhei``, installed by
scripts/setup.sh); ``HIL_DISPLAY_FONT`` names another.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from hil.sim.display import Screen
from hil.sim.state import atomic_write_bytes

#: The face: bezel size, LCD rectangle (left, top, right, bottom), reader LED centre.
FACE_SIZE = (1040, 760)
LCD_BOX = (40, 100, 1000, 730)
READER_LED_CENTRE = (520, 50)
READER_LED_RADIUS = 20
LCD_MARGIN = 18
LARGEST_FONT_PX = 40
SMALLEST_FONT_PX = 14
LINE_SPACING = 1.45

BEZEL_RGB = (34, 36, 40)
LCD_RGB = (222, 232, 218)
TEXT_RGB = (16, 20, 16)
#: What each documented LED colour looks like when lit; ``off`` is the dark lens.
LED_RGB: Mapping[str, tuple[int, int, int]] = {
    "off": (58, 60, 62),
    "green": (30, 210, 60),
    "red": (230, 30, 30),
    "blue": (40, 90, 240),
    "amber": (250, 170, 20),
}

#: Where a CJK font is looked for, first found wins (Debian package paths).
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
FONT_ENV = "HIL_DISPLAY_FONT"


class NoCjkFont(RuntimeError):
    """No font that draws Chinese was found."""


def find_cjk_font() -> Path:
    """The font the display is drawn with; ``NoCjkFont`` says how to get one."""
    named = os.environ.get(FONT_ENV, "")
    if named:
        if Path(named).is_file():
            return Path(named)
        raise NoCjkFont(f"{FONT_ENV}={named}: no such font file")
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise NoCjkFont(
        "no CJK font for the display render: install Debian fonts-wqy-microhei "
        f"(scripts/setup.sh does) or set {FONT_ENV}"
    )


@lru_cache(maxsize=32)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _line_fonts(font_path: Path, lines: Sequence[str]) -> list[ImageFont.FreeTypeFont]:
    """A font per line: the largest at which all lines fit the LCD's height, made
    smaller for a line that would not fit its width (a long fault summary)."""
    width = LCD_BOX[2] - LCD_BOX[0] - 2 * LCD_MARGIN
    height = LCD_BOX[3] - LCD_BOX[1] - 2 * LCD_MARGIN
    size = LARGEST_FONT_PX
    while size > SMALLEST_FONT_PX and len(lines) * size * LINE_SPACING > height:
        size -= 1
    fonts = []
    for line in lines:
        line_size = size
        while (
            line_size > SMALLEST_FONT_PX
            and _font(str(font_path), line_size).getlength(line) > width
        ):
            line_size -= 1
        fonts.append(_font(str(font_path), line_size))
    return fonts


def render_face(
    lines: Sequence[str], leds: Mapping[str, str], *, font_path: Path | None = None
) -> Image.Image:
    """The terminal's face showing ``lines`` with the reader LED in ``leds["reader"]``."""
    font_file = font_path or find_cjk_font()
    image = Image.new("RGB", FACE_SIZE, BEZEL_RGB)
    draw = ImageDraw.Draw(image)
    x, y = READER_LED_CENTRE
    r = READER_LED_RADIUS
    colour = LED_RGB.get(leds.get("reader", "off"), LED_RGB["off"])
    draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(90, 92, 96), width=2)
    draw.rectangle(LCD_BOX, fill=LCD_RGB)
    fonts = _line_fonts(font_file, lines)
    pitch = int(max((int(f.size) for f in fonts), default=LARGEST_FONT_PX) * LINE_SPACING)
    top = LCD_BOX[1] + LCD_MARGIN
    for n, (line, font) in enumerate(zip(lines, fonts, strict=True)):
        draw.text((LCD_BOX[0] + LCD_MARGIN, top + n * pitch), line, font=font, fill=TEXT_RGB)
    return image


def render_png(
    lines: Sequence[str], leds: Mapping[str, str], *, font_path: Path | None = None
) -> bytes:
    buffer = io.BytesIO()
    render_face(lines, leds, font_path=font_path).save(buffer, format="PNG")
    return buffer.getvalue()


LogEntry = Callable[[str, str, str], object]


class DisplayFace:
    """The sim's face on channel ``display``: a PNG at the channel's path, replaced
    atomically at every display change (a reader never sees half a picture). A face
    that cannot be drawn (no CJK font, the path unwritable) is logged once as
    ``E_DISPLAY_RENDER`` and the picture is left as it was: the rig's camera then
    reports what it sees, or that it sees nothing."""

    def __init__(self, path: Path, log: LogEntry) -> None:
        self.path = path
        self._log = log
        self._failed = False

    def draw(self, screen: Screen) -> None:
        try:
            png = render_png(screen.lines, screen.leds)
            atomic_write_bytes(self.path, png)
        except (NoCjkFont, OSError) as e:
            if not self._failed:
                self._failed = True
                self._log("error", "E_DISPLAY_RENDER", f"display face not drawn: {e}")
