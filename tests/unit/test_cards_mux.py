"""The serial card multiplexer driver against a scripted device on a real pty."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.cards.profile import DEFAULT_PROFILES, ProfileLibrary
from hil.errors import ConfigError, RigError
from hil.instruments.cards import CardSlot, SerialCardMux

LIB = ProfileLibrary(DEFAULT_PROFILES)


class ScriptedMux:
    """The device end: a tiny card multiplexer speaking the documented command set."""

    def __init__(self, master: int, cards: int = 8) -> None:
        self.master = master
        self.cards = cards
        self.state = "IDLE"
        self.received: list[str] = []
        self.mute = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _answer(self, line: str) -> str:
        words = line.split()
        match words:
            case ["PING"]:
                return "OK PONG HIL-CARDMUX 1.0"
            case ["STATUS"]:
                return f"OK {self.state}"
            case ["RELEASE"]:
                self.state = "IDLE"
                return "OK"
            case ["INSERT", n] if n.isdigit():
                if not 1 <= int(n) <= self.cards:
                    return f"ERR RANGE no card {n}"
                if self.state.startswith("INSERTED"):
                    return "ERR BUSY slot occupied"
                self.state = f"INSERTED {n}"
                return "OK"
            case ["TAP", n, ms] if n.isdigit() and ms.isdigit():
                self.state = f"TAP {n}"
                return "OK"
        return "ERR SYNTAX unknown command"

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = os.read(self.master, 256)
            except OSError:
                return
            buffer += chunk
            while b"\r\n" in buffer:
                raw, buffer = buffer.split(b"\r\n", 1)
                line = raw.decode()
                self.received.append(line)
                if not self.mute:
                    os.write(self.master, self._answer(line).encode() + b"\r\n")

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture
def mux() -> Iterator[tuple[SerialCardMux, ScriptedMux]]:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    device = ScriptedMux(master)
    # Open the device end first: pyserial flushes input on open (FACTS.md).
    driver = SerialCardMux(
        path, LIB, {"visa-credit": 3, "unionpay-debit": 5}, timeout=0.5, tap_hold_s=1.5
    )
    yield driver, device
    driver.close()
    device.stop()
    os.close(slave)
    os.close(master)


def test_commands_on_the_wire(mux: tuple[SerialCardMux, ScriptedMux]) -> None:
    driver, device = mux
    assert isinstance(driver, CardSlot)
    assert "PONG" in driver.preflight()
    driver.insert(LIB.get("visa-credit"))
    assert driver.status() == "INSERTED 3"
    driver.remove()
    driver.tap(LIB.get("unionpay-debit"))
    assert driver.status() == "TAP 5"
    driver.put_back()
    assert device.received == [
        "PING",
        "STATUS",
        "INSERT 3",
        "STATUS",
        "RELEASE",
        "TAP 5 1500",
        "STATUS",
        "RELEASE",
    ]
    assert driver.take_trace() == ""


def test_device_errors_are_rig_faults(mux: tuple[SerialCardMux, ScriptedMux]) -> None:
    driver, _ = mux
    driver.insert(LIB.get("visa-credit"))
    with pytest.raises(RigError, match="'INSERT 3' answered 'ERR BUSY slot occupied'"):
        driver.insert(LIB.get("visa-credit"))
    with pytest.raises(ConfigError, match="no multiplexer position for card 'mute'"):
        driver.insert(LIB.get("mute"))


def test_silent_device_is_a_rig_fault(mux: tuple[SerialCardMux, ScriptedMux]) -> None:
    driver, device = mux
    device.mute = True
    with pytest.raises(RigError, match="no answer to 'PING'"):
        driver.preflight()


def test_unopenable_port_is_a_rig_fault(tmp_path: Path) -> None:
    with pytest.raises(RigError, match="cannot open card multiplexer"):
        SerialCardMux(str(tmp_path / "no-such-tty"), LIB, {})
