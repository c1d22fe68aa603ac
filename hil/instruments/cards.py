"""Card slots: put a known test card in front of the terminal's chip or contactless reader.

``CardSlot`` is what steps see. Drivers (rig file ``[cards] driver``):

- ``vpcd`` (sim rig): virtual EMV cards (hil.cards.emv) served to pcscd through
  vsmartcard's vpcd. One vpcd reader gives two slots: slot 0 is the chip (contact)
  reader, slot 1 the contactless one. Inserting connects the card to its slot,
  removing closes the connection, exactly what pcscd sees of a real card. The
  terminal reads it through PC/SC: channel ``pcsc`` names the chip reader,
  ``pcsc_cl`` the contactless one.
- ``serial-mux``: a card multiplexer (robot or relay matrix) that routes real test
  cards to the terminal's own reader, driven over a serial line with the command set
  below. It sees no APDUs, so its trace is empty.

Serial multiplexer command set (ASCII lines ending CR LF, answers one line):

=====================  ==========================  =========================================
command                answer                      meaning
=====================  ==========================  =========================================
``PING``               ``OK PONG``                 alive
``INSERT <n>``         ``OK``                      card at position n into the chip slot
``TAP <n> <ms>``       ``OK``                      card n held on the antenna for ms
``RELEASE``            ``OK``                      every card back to its magazine position
``STATUS``             ``OK IDLE``,                what is presented now
                       ``OK INSERTED <n>``,
                       ``OK TAP <n>``
(any error)            ``ERR <CODE> <text>``       e.g. ``ERR BUSY slot occupied``,
                                                   ``ERR RANGE no card 12``
=====================  ==========================  =========================================
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, field_validator

from hil import reporting
from hil.cards.emv import CardState, EmvCard
from hil.cards.pcscd import PcscdClaim, ReadersBusy, VpcdPool, claim_reader, list_readers
from hil.cards.profile import DEFAULT_PROFILES, CardProfile, ProfileLibrary
from hil.cards.trace import ApduTrace
from hil.cards.vpcd import VpcdCardConnection
from hil.config import RigFolder
from hil.drivers import BuildContext, Built, Driver, DriverConfig, register
from hil.errors import ConfigError, RigError
from hil.lifecycle import notice

SLOT_CONTACT = 0
SLOT_CONTACTLESS = 1


@runtime_checkable
class CardSlot(Protocol):
    """A card slot and antenna in front of the terminal, as steps see them."""

    name: str
    profiles: ProfileLibrary

    def insert(self, profile: CardProfile) -> None:
        """Insert the card into the chip reader; it stays until ``remove``."""

    def remove(self) -> None:
        """Pull the inserted card out (also mid-transaction)."""

    def tap(self, profile: CardProfile) -> None:
        """Present the card to the contactless antenna; it leaves the field by itself
        once the terminal is done with it (or after the driver's hold time)."""

    def take_trace(self) -> str:
        """The masked APDU trace since the last call ("" if the driver cannot see APDUs)."""

    def put_back(self) -> None: ...

    def preflight(self) -> str: ...

    def close(self) -> None: ...


class VpcdCardSlot:
    """Virtual cards in the two slots of one vpcd reader, claimed from hil's pool."""

    def __init__(
        self,
        claim: PcscdClaim,
        profiles: ProfileLibrary,
        *,
        tap_hold_s: float,
        name: str = "cards",
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.profiles = profiles
        self.tap_hold_s = tap_hold_s
        self._host = host
        self.trace = ApduTrace()
        self._lock = threading.Lock()
        self._states: dict[str, CardState] = {}
        self._contact: VpcdCardConnection | None = None
        self._field: VpcdCardConnection | None = None
        self._claim = claim
        self.reader = claim.reader

    @property
    def contact_reader(self) -> str:
        return self.reader.slot_name(SLOT_CONTACT)

    @property
    def contactless_reader(self) -> str:
        return self.reader.slot_name(SLOT_CONTACTLESS)

    def _card(self, profile: CardProfile) -> EmvCard:
        # The same physical card keeps its counters (ATC, PIN tries) between insertions.
        state = self._states.setdefault(
            profile.name, CardState(profile.atc, profile.pin_try_counter)
        )
        return EmvCard(profile, state)

    def insert(self, profile: CardProfile) -> None:
        with reporting.action(
            f"{self.name}: insert card", profile=profile.name, pan=profile.masked_pan
        ):
            if not profile.has_interface("contact"):
                raise ConfigError(f"card profile '{profile.name}' has no chip (interfaces)")
            with self._lock:
                if self._contact is not None:
                    raise RigError(
                        f"{self.name}: a card is already in the chip slot; remove it first",
                        instrument=self.name,
                    )
                connection = VpcdCardConnection(
                    self._card(profile),
                    (self._host, self.reader.slot_port(SLOT_CONTACT)),
                    trace=self.trace,
                    label=f"{profile.name} (chip)",
                )
                connection.connect()
                self._contact = connection

    def remove(self) -> None:
        with reporting.action(f"{self.name}: remove card"):
            with self._lock:
                connection, self._contact = self._contact, None
            if connection is not None:
                connection.close()

    def tap(self, profile: CardProfile) -> None:
        with reporting.action(
            f"{self.name}: tap card", profile=profile.name, pan=profile.masked_pan
        ):
            if not profile.has_interface("contactless"):
                raise ConfigError(f"card profile '{profile.name}' has no contactless interface")
            with self._lock:
                previous, self._field = self._field, None
            if previous is not None:
                previous.close()
            connection = VpcdCardConnection(
                self._card(profile),
                (self._host, self.reader.slot_port(SLOT_CONTACTLESS)),
                trace=self.trace,
                label=f"{profile.name} (contactless)",
            )
            connection.connect()
            with self._lock:
                self._field = connection
            threading.Thread(
                target=self._leave_field, args=(connection,), name="tap-hold", daemon=True
            ).start()

    def _leave_field(self, connection: VpcdCardConnection) -> None:
        connection.wait_used_and_released(self.tap_hold_s)
        with self._lock:
            if self._field is connection:
                self._field = None
        connection.close()

    def take_trace(self) -> str:
        return self.trace.take()

    def put_back(self) -> None:
        """Cards out of both slots, card counters back to their profiles."""
        with self._lock:
            connections = [c for c in (self._contact, self._field) if c is not None]
            self._contact = self._field = None
            self._states.clear()
        for connection in connections:
            connection.close()

    def preflight(self) -> str:
        if not self._claim.alive():
            raise RigError(f"{self.name}: pcscd is not running: {self._claim.log_tail()}")
        listed = list_readers() or []
        wanted = [self.contact_reader, self.contactless_reader]
        missing = [w for w in wanted if w not in listed]
        if missing:
            raise RigError(f"{self.name}: pcscd does not list {missing} (it lists {listed})")
        return (
            f"{self._claim.describe()}: chip '{self.contact_reader}' (port "
            f"{self.reader.slot_port(0)}), contactless '{self.contactless_reader}' "
            f"(port {self.reader.slot_port(1)})"
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.put_back()
        self._claim.close()


class UnavailableCardSlot:
    """The ``[cards]`` instrument of a run that got no card reader (every reader of the
    pool stayed in use for as long as it would wait).

    The run goes on: no pcsc channel is wired, so the terminal reports its reader
    absent, and scenarios that need no card run as usual. Presenting a card is a rig
    fault naming who holds the readers, so card scenarios are *broken*, never blamed
    on the terminal. Card profiles stay available (a swipe needs no reader)."""

    def __init__(self, profiles: ProfileLibrary, reason: str, *, name: str = "cards") -> None:
        self.name = name
        self.profiles = profiles
        self.reason = reason

    def _unavailable(self) -> RigError:
        return RigError(
            f"{self.name}: no card reader for this run: {self.reason}", instrument=self.name
        )

    def insert(self, profile: CardProfile) -> None:
        raise self._unavailable()

    def remove(self) -> None:
        raise self._unavailable()

    def tap(self, profile: CardProfile) -> None:
        raise self._unavailable()

    def take_trace(self) -> str:
        return ""  # no card was ever presented

    def put_back(self) -> None:
        return None

    def preflight(self) -> str:
        raise self._unavailable()

    def close(self) -> None:
        return None


class SerialCardMux:
    """A card multiplexer on a serial line (command set in the module docstring)."""

    def __init__(
        self,
        url: str,
        profiles: ProfileLibrary,
        positions: dict[str, int],
        *,
        baudrate: int = 9600,
        timeout: float = 2.0,
        tap_hold_s: float = 3.0,
        name: str = "cards",
    ) -> None:
        import serial

        self.name = name
        self.profiles = profiles
        self.positions = dict(positions)
        self.tap_hold_s = tap_hold_s
        self._lock = threading.Lock()
        try:
            self._port: Any = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout)
        except (serial.SerialException, ValueError) as e:
            raise RigError(
                f"{name}: cannot open card multiplexer {url}: {e}", instrument=name
            ) from e
        self.url = url

    def command(self, line: str) -> str:
        """Send one command, return the text after ``OK``; RigError on ERR or silence."""
        with self._lock:
            self._port.reset_input_buffer()
            self._port.write(line.encode("ascii") + b"\r\n")
            answer: bytes = self._port.readline()
        text = answer.decode("ascii", "replace").strip()
        if not answer.endswith(b"\n"):
            raise RigError(
                f"{self.name}: no answer to '{line}' from {self.url}",
                instrument=self.name,
                last_io=line,
            )
        if text == "OK" or text.startswith("OK "):
            return text[3:]
        raise RigError(
            f"{self.name}: '{line}' answered '{text}'", instrument=self.name, last_io=line
        )

    def _position(self, profile: CardProfile) -> int:
        try:
            return self.positions[profile.name]
        except KeyError:
            raise ConfigError(
                f"{self.name}: no multiplexer position for card '{profile.name}' "
                f"([cards] positions has {sorted(self.positions)})"
            ) from None

    def insert(self, profile: CardProfile) -> None:
        with reporting.action(
            f"{self.name}: insert card", profile=profile.name, pan=profile.masked_pan
        ):
            self.command(f"INSERT {self._position(profile)}")

    def remove(self) -> None:
        with reporting.action(f"{self.name}: remove card"):
            self.command("RELEASE")

    def tap(self, profile: CardProfile) -> None:
        with reporting.action(
            f"{self.name}: tap card", profile=profile.name, pan=profile.masked_pan
        ):
            self.command(f"TAP {self._position(profile)} {round(self.tap_hold_s * 1000)}")

    def status(self) -> str:
        return self.command("STATUS")

    def take_trace(self) -> str:
        return ""

    def put_back(self) -> None:
        self.command("RELEASE")

    def preflight(self) -> str:
        pong = self.command("PING")
        return f"{self.url}: {pong}, {self.status()}"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._port.close()


class CardsOptions(DriverConfig):
    """What every card driver has: the profiles of the cards it can present."""

    profiles: RigFolder | None = Field(
        default=None, description="card profile folder; default pos-hil's test cards"
    )
    tap_hold_s: float = Field(default=3.0, gt=0, le=60)

    def library(self) -> ProfileLibrary:
        return ProfileLibrary(self.profiles or DEFAULT_PROFILES)


class VpcdCardsConfig(CardsOptions):
    reader: str = Field(default="HIL Virtual Card", min_length=1, description="vpcd reader name")
    port: int = Field(default=29990, ge=1024, le=65000, description="vpcd port of reader 1")
    readers: int = Field(default=4, ge=1, le=16, description="vpcd readers in the pool")
    reader_wait_s: float = Field(
        default=60.0, ge=0, le=3600, description="how long to wait for a free reader of the pool"
    )


def _check_positions(value: dict[str, int]) -> dict[str, int]:
    if any(not 1 <= n <= 99 for n in value.values()):
        raise ValueError("card positions are 1 to 99")
    return value


class SerialMuxConfig(CardsOptions):
    url: str = Field(min_length=1, description="pyserial URL of the multiplexer")
    baud: int = Field(default=9600, gt=0)
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    positions: dict[str, int] = Field(default_factory=dict, description="profile -> position")

    _positions = field_validator("positions")(_check_positions)


@register("cards", "vpcd")
class VpcdCardsDriver(Driver):
    """Virtual cards served to pcscd (channels ``pcsc`` and ``pcsc_cl``)."""

    config_model = VpcdCardsConfig

    @classmethod
    def build(cls, config: VpcdCardsConfig, context: BuildContext) -> Built:
        try:
            claim = claim_reader(
                VpcdPool(config.reader, config.port, config.readers),
                wait_s=config.reader_wait_s,
                work_dir=context.work_dir,
            )
        except ReadersBusy as e:
            notice(f"cards: going on without a card reader, card scenarios are rig faults: {e}")
            return Built(UnavailableCardSlot(config.library(), str(e)))
        slot = VpcdCardSlot(claim, config.library(), tap_hold_s=config.tap_hold_s)
        channels = {"pcsc": slot.contact_reader, "pcsc_cl": slot.contactless_reader}
        return Built(slot, channels)


@register("cards", "serial-mux")
class SerialMuxDriver(Driver):
    """A card multiplexer routing real test cards to the terminal's own reader."""

    config_model = SerialMuxConfig

    @classmethod
    def build(cls, config: SerialMuxConfig, context: BuildContext) -> Built:
        mux = SerialCardMux(
            config.url,
            config.library(),
            config.positions,
            baudrate=config.baud,
            timeout=config.timeout_s,
            tap_hold_s=config.tap_hold_s,
        )
        return Built(mux)
