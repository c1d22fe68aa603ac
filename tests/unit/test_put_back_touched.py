"""Put-backs redo only what a scenario touched, and still restore all of it.

The biometric sensor is driven over its real loopback channel (the sim terminal's own
``TerminalEndClient`` answers), the QR screen through its camera channel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hil.contract.qr import CALIBRATION_PAYLOAD
from hil.instruments.biometrics import SimBiometricSensor
from hil.instruments.qrscreen import SimQrScreen
from hil.jsonlines.terminal_end import TerminalEndClient
from hil.qr.framelink import FrameClient
from hil.qr.render import RenderOptions


class _SensorTerminal:
    """The terminal's end: acks every message and keeps what lies on the sensor."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[str] = []
        self.on_sensor: set[str] = set()

    def on_message(self, message: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.received.append(str(message.get("type")))
            if message.get("type") == "present":
                self.on_sensor.add(str(message.get("modality")))
            elif message.get("type") == "lift":
                self.on_sensor.clear()
        return {"type": "ack", "id": message.get("id")}


@pytest.fixture
def sensor() -> Iterator[tuple[SimBiometricSensor, _SensorTerminal]]:
    instrument = SimBiometricSensor(ack_timeout=5.0)
    terminal = _SensorTerminal()
    client = TerminalEndClient("biometric", instrument.address, terminal.on_message)
    client.start()
    try:
        assert instrument.server.wait_connected(5.0)
        yield instrument, terminal
    finally:
        client.close()
        instrument.close()


def test_untouched_sensor_is_not_lifted_again(
    sensor: tuple[SimBiometricSensor, _SensorTerminal],
) -> None:
    instrument, terminal = sensor
    instrument.put_back()
    instrument.put_back()
    assert terminal.received == []  # nothing presented: no round trip to the terminal


def test_touched_sensor_is_lifted_once(
    sensor: tuple[SimBiometricSensor, _SensorTerminal],
) -> None:
    instrument, terminal = sensor
    instrument.present("fingerprint", "alice")
    assert terminal.on_sensor == {"fingerprint"}
    instrument.put_back()
    assert terminal.on_sensor == set()  # restored
    assert terminal.received == ["present", "lift"]
    instrument.put_back()  # the next scenario touched nothing
    assert terminal.received == ["present", "lift"]


def test_sensor_lifted_by_the_scenario_is_still_lifted_after_a_later_present(
    sensor: tuple[SimBiometricSensor, _SensorTerminal],
) -> None:
    instrument, terminal = sensor
    instrument.present("face", "bob")
    instrument.lift()
    instrument.present("fingerprint", "bob")
    instrument.put_back()
    assert terminal.on_sensor == set()
    assert terminal.received[-1] == "lift"


def test_untouched_screen_keeps_its_frame_and_a_touched_one_is_blanked() -> None:
    screen = SimQrScreen(RenderOptions())
    try:
        rest = screen.shown
        screen.put_back()
        assert screen.shown is rest  # nothing shown: the same frame, no new number
        screen.show("HELLO QR")
        screen.put_back()
        again = screen.shown
        assert again.calibration and again.seq > rest.seq
        client = FrameClient(screen.endpoint)
        try:
            assert client.grab()[0] == again.seq
        finally:
            client.close()
        assert again.payload == CALIBRATION_PAYLOAD
    finally:
        screen.close()
