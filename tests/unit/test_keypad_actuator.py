"""The serial key-press actuator driver, byte for byte, against a scripted device on a
real pty; and digit keys never named in what it reports."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest
import serial

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.errors import ConfigError, RigError
from hil.instruments.keypad import SerialKeypad


class ScriptedActuator:
    """The device end of a pty: records every byte, answers each line with ``reply``."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self._slave = slave
        self.received = bytearray()
        self._reply = reply
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pending = b""
        while not self._stop:
            try:
                chunk = os.read(self.master, 256)
            except OSError:
                return
            self.received += chunk
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                answer = self._reply(line)
                if answer is not None:
                    os.write(self.master, answer)

    def close(self) -> None:
        self._stop = True
        os.close(self.master)
        os.close(self._slave)


def _keypad(device: ScriptedActuator, timeout: float = 1.0) -> SerialKeypad:
    port = serial.serial_for_url(device.path, baudrate=9600, timeout=timeout)
    port.reset_input_buffer()
    return SerialKeypad(port, ProfileLibrary(DEFAULT_PROFILES), timeout=timeout)


def test_keys_go_out_byte_exact_and_ping_identifies_the_actuator() -> None:
    def reply(line: bytes) -> bytes:
        return b"PONG KPA-1 v2\n" if line == b"PING" else b"OK\n"

    device = ScriptedActuator(reply)
    keypad = _keypad(device)
    try:
        assert keypad.preflight().endswith("PONG KPA-1 v2")
        keypad.press(["7", "3", "clear", "0", "enter", "cancel"])
        assert bytes(device.received) == (
            b"PING\nKEY 7\nKEY 3\nKEY CLEAR\nKEY 0\nKEY ENTER\nKEY CANCEL\n"
        )
    finally:
        keypad.close()
        device.close()


def test_a_refused_key_is_a_rig_fault_that_never_names_a_digit() -> None:
    device = ScriptedActuator(lambda line: b"ERR solenoid 4 jammed\n")
    keypad = _keypad(device)
    try:
        with pytest.raises(RigError, match="refused a digit key: solenoid 4 jammed") as raised:
            keypad.press(["9", "enter"])
        assert "9" not in str(raised.value).replace("solenoid 4", "")
        with pytest.raises(RigError, match="refused key enter"):
            keypad.press(["enter"])
    finally:
        keypad.close()
        device.close()


def test_a_silent_actuator_is_a_rig_fault_not_a_hang() -> None:
    device = ScriptedActuator(lambda line: None)
    keypad = _keypad(device, timeout=0.3)
    try:
        with pytest.raises(RigError, match=r"did not answer a digit key within 0\.3 s"):
            keypad.press(["5"])
        with pytest.raises(RigError, match="did not answer PING"):
            keypad.preflight()
    finally:
        keypad.close()
        device.close()


def test_unknown_keys_are_refused_before_anything_is_sent() -> None:
    device = ScriptedActuator(lambda line: b"OK\n")
    keypad = _keypad(device)
    try:
        with pytest.raises(ConfigError, match="unknown key"):
            keypad.press(["1", "F1"])
        assert bytes(device.received) == b""
    finally:
        keypad.close()
        device.close()
