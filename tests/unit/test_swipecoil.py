"""The swipe-emulation coil driver (pos-hil coil/1): byte-exact against a scripted coil
on a real pty, faults made on the rig side, no track data in any error or report."""

from __future__ import annotations

import os
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.cards.track import build_track1, build_track2
from hil.config import parse_rig
from hil.errors import RigError
from hil.instruments.magstripe import Magstripe
from hil.instruments.swipecoil import SerialCoil
from hil.rig import Rig


class ScriptedCoil:
    """A coil/1 device on the master end of a pty: records every byte, answers each line
    as the command set says; ``mute`` answers nothing, ``broken`` answers SWIPE with
    ``ERR E_COIL``."""

    def __init__(self, *, mute: bool = False, broken: bool = False) -> None:
        self.received = bytearray()
        self.tracks: dict[str, str] = {}
        self.swiped: list[tuple[str, str, int]] = []
        self.mute = mute
        self.broken = broken
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._buffer = b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data = os.read(self._master, 256)
            except OSError:
                return
            self.received += data
            self._buffer += data
            while b"\r\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\r\n", 1)
                answer = self._answer(line.decode("ascii"))
                if not self.mute:
                    os.write(self._master, answer.encode("ascii") + b"\r\n")

    def _answer(self, line: str) -> str:
        verb, _, argument = line.partition(" ")
        if verb == "ID":
            return "OK COIL MSE-1 1.2"
        if verb == "CLEAR":
            self.tracks.clear()
            return "OK"
        if verb in ("T1", "T2"):
            self.tracks[verb] = bytes.fromhex(argument).decode("ascii")
            return "OK"
        if verb == "SWIPE":
            if self.broken:
                return "ERR E_COIL open coil"
            if not self.tracks:
                return "ERR E_NO_TRACK load a track first"
            self.swiped.append((self.tracks["T1"], self.tracks["T2"], int(argument)))
            self.tracks.clear()
            return "OK SWIPED"
        return "ERR E_SYNTAX unknown command"

    def close(self) -> None:
        os.close(self._master)
        os.close(self._slave)


@pytest.fixture
def coil() -> Iterator[ScriptedCoil]:
    scripted = ScriptedCoil()
    yield scripted
    scripted.close()


PROFILES = ProfileLibrary(DEFAULT_PROFILES)


def _driver(coil: ScriptedCoil) -> SerialCoil:
    return SerialCoil(coil.path, PROFILES, timeout=1.0, speed_mm_s=400)


def test_a_swipe_loads_both_tracks_in_hex_and_swipes_at_the_set_speed(coil: ScriptedCoil) -> None:
    driver = _driver(coil)
    assert isinstance(driver, Magstripe)
    card = PROFILES.get("visa-credit")
    driver.swipe(card)
    track1 = build_track1(card.pan, card.cardholder_name, card.expiry, card.service_code, "0000000")
    track2 = build_track2(card.pan, card.expiry, card.service_code, "0000000")
    expected = (
        b"CLEAR\r\n"
        + b"T1 "
        + track1.encode().hex().upper().encode()
        + b"\r\n"
        + b"T2 "
        + track2.encode().hex().upper().encode()
        + b"\r\n"
        + b"SWIPE 400\r\n"
    )
    assert bytes(coil.received) == expected
    assert coil.swiped == [(track1, track2, 400)]
    driver.close()


def test_faults_are_made_on_the_rig_side(coil: ScriptedCoil) -> None:
    driver = _driver(coil)
    card = PROFILES.get("visa-credit")
    driver.swipe(card, fault="partial")
    track1, track2, _ = coil.swiped[-1]
    assert not track1.endswith("?") and "?" not in track2, "a partial swipe has no end sentinel"
    driver.close()


def test_preflight_is_the_id_answer(coil: ScriptedCoil) -> None:
    driver = _driver(coil)
    assert driver.preflight() == f"COIL MSE-1 1.2 on {coil.path}"
    driver.close()


def test_a_coil_that_does_not_answer_is_one_line_without_track_data() -> None:
    mute = ScriptedCoil(mute=True)
    try:
        driver = SerialCoil(mute.path, PROFILES, timeout=0.3)
        card = PROFILES.get("visa-credit")
        with pytest.raises(RigError) as caught:
            driver.swipe(card)
        text = str(caught.value)
        assert text == (
            f"magstripe: the swipe coil at {mute.path} did not answer CLEAR within 0.3 s: "
            "is it a pos-hil coil/1 device, powered?"
        )
        driver.close()
    finally:
        mute.close()


def test_a_refused_swipe_names_the_verb_and_the_coil_error_never_the_tracks() -> None:
    broken = ScriptedCoil(broken=True)
    try:
        driver = SerialCoil(broken.path, PROFILES, timeout=0.5)
        card = PROFILES.get("visa-credit")
        with pytest.raises(RigError, match=r"refused SWIPE: ERR E_COIL open coil$") as caught:
            driver.swipe(card)
        assert card.pan not in str(caught.value) and card.pan[-4:] not in str(caught.value)
        driver.close()
    finally:
        broken.close()


def test_the_rig_file_builds_it(coil: ScriptedCoil, tmp_path: Path) -> None:
    text = f"""
[rig]
name = "coil-bench"

[dut]
driver = "physical"
model = "POS-X"
serial_number = "SN1"
terminal_id = "T0000001"
merchant_id = "898310058120001"

[console]
driver = "pyserial"
url = "socket://127.0.0.1:9"

[magstripe]
driver = "serial-coil"
url = "{coil.path}"
speed_mm_s = 300
"""
    rig = Rig(parse_rig(text, tmp_path / "coil.toml"))
    try:
        rig.build(["magstripe"])
        head = rig.instrument("magstripe")
        assert isinstance(head, Magstripe)
        head.swipe(PROFILES.get("stripe-only"))
        assert coil.swiped[-1][2] == 300
    finally:
        rig.close()
