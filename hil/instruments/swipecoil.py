"""Swipe emulation on hardware: a coil held against the terminal's magnetic head.

Driver ``serial-coil`` (``[magstripe]``): a swipe-emulation coil driver on a serial
line (USB CDC, or ``rfc2217://`` through ser2net) speaking the **pos-hil coil/1**
command set below. It is a small set on purpose, so a lab can implement it on the
microcontroller that drives its coil (an H-bridge pulsing the coil at F2F timing),
or put a thin adapter in front of a commercial emulator.

pos-hil coil/1: ASCII lines, each ended by CR LF, at ``baud`` (default 9600) 8N1.
Every command is answered by exactly one line: ``OK ...`` or ``ERR <code> <text>``.

===============================  ==============================================
command                          answer and meaning
===============================  ==============================================
``ID``                           ``OK COIL <model> <firmware>``: who is there
``CLEAR``                        ``OK``: forget loaded tracks
``T1 <hex>``                     ``OK``: load track 1 (ISO/IEC 7813 format B,
                                 sentinels and LRC included), the characters'
                                 ASCII codes in upper-case hex (so no character
                                 of a track is ever mistaken for a line end)
``T2 <hex>``                     ``OK``: load track 2, the same way
``SWIPE <speed_mm_s>``           drive the coil with the loaded tracks at that
                                 speed (100-2000 mm/s); ``OK SWIPED`` once the
                                 last flux transition is out; then the tracks
                                 are forgotten (a swipe is never repeated)
===============================  ==============================================

Error codes: ``E_SYNTAX`` (unknown command or bad argument), ``E_NO_TRACK`` (SWIPE
with no track loaded), ``E_TOO_LONG`` (a track longer than the coil holds),
``E_COIL`` (the coil driver failed: open coil, over-current).

The rig sends ``CLEAR``, ``T1``, ``T2`` and ``SWIPE`` for every swipe; the faults
``bad_lrc`` and ``partial`` are made on the rig side (the tracks are built wrong),
so any coil/1 device provokes them. Track data travels only to the coil: it is never
logged, attached or put in an error message (a refused command is named by its verb).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import Field

from hil import reporting
from hil.cards.profile import DEFAULT_PROFILES, CardProfile, ProfileLibrary
from hil.config import RigFolder
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, RigError
from hil.instruments.magstripe import SwipeFault, swipe_tracks


class SerialCoil:
    """A coil/1 device on a serial line (hil.instruments.magstripe.Magstripe)."""

    def __init__(
        self,
        url: str,
        profiles: ProfileLibrary,
        *,
        baud: int = 9600,
        timeout: float = 2.0,
        speed_mm_s: int = 500,
        name: str = "magstripe",
    ) -> None:
        import serial

        self.name = name
        self.url = url
        self.profiles = profiles
        self.timeout = timeout
        self.speed_mm_s = speed_mm_s
        self._lock = threading.Lock()
        try:
            self._port: Any = serial.serial_for_url(url, baudrate=baud, timeout=0.05)
        except (serial.SerialException, ValueError) as e:
            raise RigError(
                f"{name}: cannot open the swipe coil at {url}: {e} (is it plugged in? "
                "check magstripe.url in the rig file)",
                instrument=name,
            ) from e

    def _ask(self, line: str, verb: str, *, timeout: float | None = None) -> str:
        """Send one command, return its OK answer; ``verb`` names it in errors (never
        the arguments: they may be track data)."""
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            self._port.reset_input_buffer()
            self._port.write(line.encode("ascii") + b"\r\n")
            self._port.flush()
            answer = bytearray()
            deadline = time.monotonic() + limit
            while not answer.endswith(b"\r\n"):
                if time.monotonic() > deadline:
                    raise RigError(
                        f"{self.name}: the swipe coil at {self.url} did not answer {verb} "
                        f"within {limit:g} s: is it a pos-hil coil/1 device, powered?",
                        instrument=self.name,
                        last_io=verb,
                    )
                answer += self._port.read(64)
        text = answer[:-2].decode("ascii", "replace")
        if text == "OK" or text.startswith("OK "):
            return text[3:]
        raise RigError(
            f"{self.name}: the swipe coil refused {verb}: {text[:80]}",
            instrument=self.name,
            last_io=verb,
        )

    def swipe(self, profile: CardProfile, *, fault: SwipeFault = "none") -> None:
        with reporting.action(f"{self.name}: swipe", profile=profile.name, fault=fault):
            if not profile.has_interface("magstripe"):
                raise ConfigError(f"card profile '{profile.name}' has no magnetic stripe")
            track1, track2 = swipe_tracks(profile, fault)
            self._ask("CLEAR", "CLEAR")
            self._ask(f"T1 {track1.encode('ascii').hex().upper()}", "T1")
            self._ask(f"T2 {track2.encode('ascii').hex().upper()}", "T2")
            # A swipe of a 85.6 mm card takes 85.6 / speed seconds, plus the answer.
            self._ask(f"SWIPE {self.speed_mm_s}", "SWIPE", timeout=self.timeout + 1.0)

    def put_back(self) -> None:
        self._ask("CLEAR", "CLEAR")

    def preflight(self) -> str:
        return f"{self._ask('ID', 'ID')} on {self.url}"

    def close(self) -> None:
        self._port.close()


class SerialCoilConfig(DriverConfig):
    url: str = Field(min_length=1, description="pyserial URL of the coil driver")
    baud: int = Field(default=9600, gt=0)
    profiles: RigFolder | None = Field(
        default=None, description="card profile folder; default pos-hil's test cards"
    )
    speed_mm_s: int = Field(default=500, ge=100, le=2000, description="swipe speed")
    timeout_s: float = Field(default=2.0, gt=0, le=30, description="answer timeout")


@register("magstripe", "serial-coil")
class SerialCoilDriver(Driver):
    """A swipe-emulation coil speaking pos-hil coil/1 on a serial line."""

    config_model = SerialCoilConfig

    @classmethod
    def build(cls, config: SerialCoilConfig, context: BuildContext) -> Built:
        coil = SerialCoil(
            config.url,
            ProfileLibrary(config.profiles or DEFAULT_PROFILES),
            baud=config.baud,
            timeout=config.timeout_s,
            speed_mm_s=config.speed_mm_s,
        )
        return Built(coil)
