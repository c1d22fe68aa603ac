"""Where steps learn what the terminal's screen and reader LED show.

Two sources answer the same questions, so a screen step reads the same on every rig:

- ``TestPortScreen``: the terminal's own ``display.read`` and ``display.changed``
  events (the sim rig's default). Text compares exactly.
- ``CameraScreen``: the rig's camera on the terminal's face (``hil.instruments.camera``),
  the independent view a lab bench has. Text compares folded (``hil.camera.text``:
  spacing, underscores and I/l are what OCR cannot tell apart); the screen id is the
  documented screen the text is (``hil.contract.screens``). A camera sees only the
  present: waiting for a screen polls frames until it shows or the time is up.

``screen_source_for(rig, terminal)`` picks the camera when the rig has one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from hil import reporting
from hil.camera.text import same_line
from hil.errors import DutError, RigError
from hil.instruments.camera import DisplayCamera
from hil.terminal.port import TerminalEventTimeout
from hil.terminal.results import Screen, ScreenChanged, as_report
from hil.terminal.strategy import Terminal

#: How often a camera looks again while waiting for a screen (it reads as fast as the
#: OCR allows; this only spaces out frames when the OCR is quicker).
CAMERA_POLL_S = 0.2


class ScreenSource(Protocol):
    #: "test port" or "camera": said in every failure message
    kind: str

    def current(self) -> Screen:
        """What the screen shows now."""

    def mark(self) -> int:
        """A cursor to wait from (take it before provoking the screen)."""

    def wait_for(
        self, where: Callable[[Screen], bool], *, since: int, timeout: float, what: str
    ) -> Screen:
        """The first screen at or after ``since`` that satisfies ``where``; DutError
        naming ``what`` and the last screen seen after ``timeout`` seconds."""

    def same_line(self, shown: str, documented: str) -> bool: ...

    def reader_led(self) -> str:
        """The reader LED now: off, green, red, blue or amber."""


def shows(source: ScreenSource, screen: Screen, *words: str) -> bool:
    """Every one of ``words`` appears in some line of ``screen`` (as the source compares)."""
    from hil.camera.text import fold

    if source.kind == "test port":
        return screen.shows(*words)
    text = fold(" ".join(screen.lines))
    return all(fold(word) in text for word in words)


def same_lines(source: ScreenSource, shown: Sequence[str], documented: Sequence[str]) -> bool:
    return len(shown) == len(documented) and all(
        source.same_line(a, b) for a, b in zip(shown, documented, strict=True)
    )


class TestPortScreen:
    kind = "test port"

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    def current(self) -> Screen:
        return self.terminal.display()

    def mark(self) -> int:
        return self.terminal.mark()

    def wait_for(
        self, where: Callable[[Screen], bool], *, since: int, timeout: float, what: str
    ) -> Screen:
        try:
            event = self.terminal.wait_event(
                ScreenChanged, since=since, timeout=timeout, where=lambda e: where(e.screen)
            )
        except TerminalEventTimeout as e:
            raise DutError(f"the screen never showed {what} within {timeout:.1f} s: {e}") from e
        return event.screen

    def same_line(self, shown: str, documented: str) -> bool:
        return shown == documented

    def reader_led(self) -> str:
        led = self.terminal.display().reader_led
        if led is None:
            raise DutError("the terminal's display.read reports no reader LED (leds.reader)")
        return led


class CameraScreen:
    kind = "camera"

    def __init__(self, camera: DisplayCamera) -> None:
        self.camera = camera

    def _look(self) -> tuple[Screen, dict[str, str]]:
        reading = self.camera.read()
        screen = Screen(screen=reading.screen, lines=reading.lines)
        return screen, reading.leds

    def current(self) -> Screen:
        screen, _ = self._look()
        reporting.attach_json("screen read by the camera", as_report(screen))
        return screen

    def mark(self) -> int:
        return 0  # a camera has no history: it waits from now

    def wait_for(
        self, where: Callable[[Screen], bool], *, since: int, timeout: float, what: str
    ) -> Screen:
        deadline = time.monotonic() + timeout
        seen: list[tuple[str, ...]] = []
        while True:
            screen, _ = self._look()
            if where(screen):
                reporting.attach_json("screen read by the camera", as_report(screen))
                return screen
            seen.append(screen.lines)
            if time.monotonic() >= deadline:
                raise DutError(
                    f"the camera never saw {what} within {timeout:.1f} s; last read "
                    f"{list(seen[-1])}"
                )
            time.sleep(CAMERA_POLL_S)

    def same_line(self, shown: str, documented: str) -> bool:
        return same_line(shown, documented)

    def reader_led(self) -> str:
        _, leds = self._look()
        if "reader" not in leds:
            raise RigError(
                "camera: no reader LED spot in its calibration: add "
                "[camera.calibration.leds.reader] (hil camera calibrate --led reader=x,y)",
                instrument="camera",
            )
        return leds["reader"]


def screen_source_for(instruments: dict[str, object], terminal: Terminal) -> ScreenSource:
    """The camera when the rig has one, else the terminal's test port."""
    camera = instruments.get("camera")
    if isinstance(camera, DisplayCamera):
        return CameraScreen(camera)
    return TestPortScreen(terminal)
