"""Power through a USB relay board: Devantech USB-RLY (USB-RLY02, -RLY08, -RLY16, -RLY16L).

Chosen because its command set is published in the data sheets and has a read-back
(the rig checks every switch instead of trusting it), and because labs buy it. The
board is a USB CDC serial device (``/dev/ttyACM0``, or a ser2net ``rfc2217://`` URL);
baud rate and framing do not matter to it. Commands are single bytes, answered only
where noted (data sheet, "Commands"):

==========  =================================================================
byte        meaning
==========  =================================================================
``0x5A``    software version: answers 2 bytes, module ID then version
            (USB-RLY02: ID 10, USB-RLY16: 9, USB-RLY16L: 15)
``0x5B``    relay states: answers 1 byte, bit n-1 set = relay n energised
``0x64``    all relays energised
``0x65+n``  relay n+1 energised (``0x65`` relay 1 ... ``0x6C`` relay 8)
``0x6E``    all relays released
``0x6F+n``  relay n+1 released (``0x6F`` relay 1 ... ``0x76`` relay 8)
==========  =================================================================

Driver ``devantech-relay`` (``[power]``): the terminal's supply runs through one relay
channel. ``on`` energises it (or releases it, for a supply wired through the normally
closed contact: ``energised_is_on = false``), ``off`` and ``cut`` both open the supply:
a relay has one way off, so a graceful power-off is as hard as a cut on this driver
(a terminal that must save its state needs its own shutdown first, e.g. a reboot or a
power-key actuator; docs/rig-files.md says so). Every switch is read back.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import Field

from hil import reporting
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import RigError

VERSION = 0x5A
STATES = 0x5B
ALL_ON = 0x64
ON_BASE = 0x65
ALL_OFF = 0x6E
OFF_BASE = 0x6F
RELAYS = 8

#: module IDs the data sheets give, for the preflight line
MODULES = {9: "USB-RLY16", 10: "USB-RLY02", 15: "USB-RLY16L"}


class RelayBoard:
    """One Devantech USB-RLY board on a serial line (any pyserial URL)."""

    def __init__(self, url: str, *, timeout: float = 1.0, name: str = "relay board") -> None:
        import serial

        self.name = name
        self.url = url
        self._lock = threading.Lock()
        try:
            self._port: Any = serial.serial_for_url(url, baudrate=9600, timeout=timeout)
        except (serial.SerialException, ValueError) as e:
            raise RigError(
                f"{name}: cannot open {url}: {e} (is the board plugged in? `ls /dev/ttyACM*`)",
                instrument=name,
            ) from e

    def _ask(self, command: int, answer_bytes: int) -> bytes:
        with self._lock:
            self._port.reset_input_buffer()
            self._port.write(bytes([command]))
            if answer_bytes == 0:
                self._port.flush()
                return b""
            answer: bytes = self._port.read(answer_bytes)
        if len(answer) != answer_bytes:
            raise RigError(
                f"{self.name}: no answer to 0x{command:02X} from {self.url} "
                f"({len(answer)} of {answer_bytes} bytes): is it a Devantech USB-RLY board?",
                instrument=self.name,
                last_io=f"0x{command:02X}",
            )
        return answer

    def version(self) -> tuple[int, int]:
        module, version = self._ask(VERSION, 2)
        return module, version

    def states(self) -> int:
        """Bit n-1 set = relay n energised."""
        return self._ask(STATES, 1)[0]

    def energised(self, relay: int) -> bool:
        return bool(self.states() & (1 << (relay - 1)))

    def set(self, relay: int, energised: bool) -> None:
        """Energise or release ``relay`` (1-8) and check the board says so."""
        if not 1 <= relay <= RELAYS:
            raise RigError(f"{self.name}: relay {relay} is not 1 to {RELAYS}", instrument=self.name)
        self._ask((ON_BASE if energised else OFF_BASE) + relay - 1, 0)
        if self.energised(relay) != energised:
            raise RigError(
                f"{self.name}: relay {relay} did not {'energise' if energised else 'release'} "
                f"(states byte 0b{self.states():08b})",
                instrument=self.name,
            )

    def close(self) -> None:
        self._port.close()


class SharedBoards:
    """One open board per URL, shared by the sections that use it (the supply on relay
    1 and the fault lines on relays 2-4 of one USB-RLY08): a serial port opened twice
    would interleave their commands and answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: dict[str, tuple[RelayBoard, int]] = {}

    def open(self, url: str, *, timeout: float) -> RelayBoard:
        with self._lock:
            board, users = self._boards.get(url, (None, 0))
            if board is None:
                board = RelayBoard(url, timeout=timeout)
            self._boards[url] = (board, users + 1)
            return board

    def release(self, board: RelayBoard) -> None:
        with self._lock:
            _, users = self._boards.get(board.url, (board, 1))
            if users <= 1:
                self._boards.pop(board.url, None)
                board.close()
            else:
                self._boards[board.url] = (board, users - 1)


BOARDS = SharedBoards()


class RelayPower:
    """A terminal supply switched by one relay channel (hil.instruments.power.Power)."""

    def __init__(
        self,
        board: RelayBoard,
        relay: int,
        *,
        energised_is_on: bool,
        settle_s: float,
        name: str = "power",
    ) -> None:
        self.name = name
        self.board = board
        self.relay = relay
        self.energised_is_on = energised_is_on
        self.settle_s = settle_s

    def _supply(self, on: bool) -> None:
        self.board.set(self.relay, on == self.energised_is_on)
        if not on and self.settle_s:
            # Let the terminal's input capacitors drain: a supply cut shorter than
            # that is no power cut at all.
            time.sleep(self.settle_s)

    def on(self) -> None:
        with reporting.action(f"{self.name}: on", relay=self.relay):
            self._supply(True)

    def off(self) -> None:
        # One way off: a relay opens the supply whatever we call it (module docstring).
        with reporting.action(f"{self.name}: off (relay: as hard as a cut)", relay=self.relay):
            self._supply(False)

    def cut(self) -> None:
        with reporting.action(f"{self.name}: cut (hard)", relay=self.relay):
            self._supply(False)

    @property
    def is_on(self) -> bool:
        return self.board.energised(self.relay) == self.energised_is_on

    def put_back(self) -> None:
        if not self.is_on:
            self.on()

    def preflight(self) -> str:
        module, version = self.board.version()
        model = MODULES.get(module, f"module ID {module}")
        state = "on" if self.is_on else "off"
        return f"{model} v{version} on {self.board.url}, relay {self.relay}: supply {state}"

    def close(self) -> None:
        try:
            if self.is_on:
                self.off()
        finally:
            BOARDS.release(self.board)


class DevantechRelayConfig(DriverConfig):
    url: str = Field(min_length=1, description="pyserial URL of the board, e.g. /dev/ttyACM0")
    relay: int = Field(
        ge=1, le=RELAYS, description="the channel the terminal's supply runs through"
    )
    energised_is_on: bool = Field(
        default=True, description="false when the supply is wired through the NC contact"
    )
    settle_s: float = Field(default=0.5, ge=0, le=30, description="wait after opening the supply")
    timeout_s: float = Field(default=1.0, gt=0, le=10, description="answer timeout")


@register("power", "devantech-relay")
class DevantechRelayDriver(Driver):
    """The terminal's supply through one relay of a Devantech USB-RLY board."""

    config_model = DevantechRelayConfig

    @classmethod
    def build(cls, config: DevantechRelayConfig, context: BuildContext) -> Built:
        board = BOARDS.open(config.url, timeout=config.timeout_s)
        return Built(
            RelayPower(
                board,
                config.relay,
                energised_is_on=config.energised_is_on,
                settle_s=config.settle_s,
            )
        )
